// The survey's pools: each one opened and listed once, without creating
// anything, and the question "is this directory in a Velo volume".

package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
	"github.com/velohq/velo/internal/storage/drivers"
)

// pool is one storage pool in use by projects.
type pool struct {
	driver, name string
	projects     []string
	d            storage.Driver
	tree         *dirtree.Tree // the directory drivers' bookkeeping; nil for zfs
	root         string        // canonical Tree root, for the directory drivers
	err          error         // the pool could not be opened or listed
	entries      map[string]storage.Entry
	stats        storage.PoolStats
	statsErr     error
	leftovers    []string
	// recorded counts the volumes the records place here and present those
	// the storage holds: none of several present means this is not the
	// filesystem it was (unmounted), and nothing in it is touched.
	recorded, present int
	volPaths          map[string]string // canonical volume path → ID, filled when needed
	// journalOnly: no project lives here; an interrupted command's journal
	// names it, so its orphans are looked for.
	journalOnly bool
}

func (p *pool) label() string { return fmt.Sprintf("%s (%s)", p.name, p.driver) }

// usable reports whether repair may act on what the pool holds.
func (p *pool) usable() bool { return p.err == nil && (p.recorded == 0 || p.present > 0) }

// openPool opens a project's pool and reads what it holds, without
// creating anything: a pool path that is missing, or lacks Velo's
// directory, is reported, not made.
func (e *Engine) openPool(ctx context.Context, p state.Project) *pool {
	pl := &pool{driver: p.Driver, name: p.Pool, entries: map[string]storage.Entry{}}
	if filepath.IsAbs(p.Pool) {
		if _, err := os.Stat(drivers.Root(p.Pool)); err != nil {
			pl.err = fmt.Errorf("%s holds no %s directory (%v): is the right filesystem mounted there?", p.Pool, filepath.Base(drivers.Root(p.Pool)), err)
			return pl
		}
	}
	d, err := e.driver(ctx, p)
	if err != nil {
		pl.err = err
		return pl
	}
	pl.d = d
	pl.stats, pl.statsErr = d.Pool(ctx)
	entries, err := d.List(ctx)
	if err != nil {
		pl.err = fmt.Errorf("list %s: %w", p.Pool, err)
		return pl
	}
	for _, en := range entries {
		pl.entries[en.ID] = en
	}
	if t, ok := d.(*dirtree.Tree); ok {
		pl.tree = t
		pl.root = canonical(t.Root)
		pl.leftovers, err = t.Leftovers()
		if err != nil {
			pl.err = fmt.Errorf("leftovers in %s: %w", t.Root, err)
		}
	}
	return pl
}

// volumeOf tells whether a data directory lies in a Velo pool, and in which
// volume: under a directory driver's root, or in a zfs volume's mount.
func (e *Engine) volumeOf(ctx context.Context, s *survey, dir string) (*pool, string) {
	for _, pl := range s.pools {
		if pl.err != nil {
			continue
		}
		if pl.tree != nil {
			if !isUnder(dir, pl.root) {
				continue
			}
			rel, _ := filepath.Rel(pl.root, dir)
			parts := strings.Split(rel, string(filepath.Separator))
			if len(parts) >= 2 && parts[0] == "vol" {
				return pl, parts[1]
			}
			return pl, ""
		}
		if pl.volPaths == nil {
			pl.volPaths = map[string]string{}
			for id, en := range pl.entries {
				if en.Kind != storage.KindVolume {
					continue
				}
				if p, err := pl.d.Path(ctx, id); err == nil {
					pl.volPaths[canonical(p)] = id
				}
			}
		}
		for p, id := range pl.volPaths {
			if isUnder(dir, p) {
				return pl, id
			}
		}
	}
	return nil, ""
}
