package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// RebuildOptions are the flags of `velo doctor --rebuild-state`.
type RebuildOptions struct {
	// Force rebuilds even though state.db is healthy (it is kept aside).
	Force bool
	// DryRun says what the rebuilt records would hold and writes nothing.
	DryRun bool
	// Pools are searched besides those the records name, those the running
	// servers of this home use, and the default pool.
	Pools []string
}

// RebuildReport is what a rebuild made, or would make.
type RebuildReport struct {
	DryRun bool
	// Base is the database the rebuild started from: state.db itself (when
	// forced), the newest good backup, or "" (the storage alone).
	Base string
	// BaseTime is when Base was written.
	BaseTime time.Time
	// Damaged are backups skipped because they failed SQLite's check.
	Damaged []string
	// Pools are the pools searched, as DRIVER:POOL.
	Pools     []string
	Projects  []string
	Branches  []RebuiltBranch
	Snapshots int
	// Changes are what the storage and the processes corrected in the base.
	Changes []string
	// NotRecovered is what could not be made again, each saying why.
	NotRecovered []string
	// KeptAside is where the state.db that was replaced went.
	KeptAside string
}

// RebuiltBranch is one branch of the rebuilt records.
type RebuiltBranch struct {
	Branch  string
	Parent  string
	Port    int
	Volume  string
	Running bool
	// From is where its record came from: "records" (the base) or "storage".
	From string
}

// NewWithoutState is an engine whose state database is not opened: for the
// rebuild, which must run when it cannot be.
func NewWithoutState(c Config) *Engine {
	return newEngine(c)
}

// RebuildState makes the records again from the truth (DESIGN §5): it
// starts from the newest backup of state.db that passes SQLite's check (or
// from state.db itself when forced, or from nothing), then reconciles it
// with the storage (each volume's identity file, each snapshot's note) and
// the running servers: records whose volume is gone are dropped, volumes
// of this home that no record names are recorded, ports are those the
// servers use, passwords come from the home's secrets. It refuses while
// state.db is healthy unless forced, and lists what it could not recover.
func (e *Engine) RebuildState(ctx context.Context, o RebuildOptions) (RebuildReport, error) {
	rep := RebuildReport{DryRun: o.DryRun, Damaged: []string{}, Pools: []string{}, Projects: []string{},
		Branches: []RebuiltBranch{}, Changes: []string{}, NotRecovered: []string{}}
	lock, err := state.Acquire(ctx, e.Home, e.Command, e.LockWait, func(h state.Holder) {
		e.Progress.Note("waiting for another velo (pid %d, %q) to finish...", h.PID, h.Command)
	})
	if err != nil {
		return rep, err
	}
	defer lock.Release()

	path := filepath.Join(e.Home, "state.db")
	healthy := false
	if info, err := os.Stat(path); err == nil && info.Size() > 0 {
		healthy = state.Check(ctx, path) == nil
	}
	if healthy && !o.Force {
		return rep, errdefs.FailedPrecondition("%s is healthy: a rebuild would replace it; velo doctor says what it lacks (volumes and servers of this home with no record name velo doctor --rebuild-state as their fix: add --force, which keeps the current file aside)", path)
	}
	base := ""
	if healthy {
		base = path
	} else {
		for _, b := range state.Backups(e.Home) {
			if err := state.Check(ctx, b); err != nil {
				rep.Damaged = append(rep.Damaged, fmt.Sprintf("%s: %v", b, err))
				continue
			}
			base = b
			break
		}
	}
	rep.Base = base
	if base != "" {
		if info, err := os.Stat(base); err == nil {
			rep.BaseTime = info.ModTime()
		}
	}

	tmp := path + ".rebuild"
	removeDB(tmp)
	defer removeDB(tmp)
	if base != "" {
		if err := state.CopyFile(ctx, base, tmp); err != nil {
			return rep, fmt.Errorf("copy %s: %w", base, err)
		}
	}
	st, err := state.OpenFile(ctx, tmp)
	if err != nil {
		return rep, err
	}
	defer st.Close()
	e.Store = st
	defer func() { e.Store = nil }()

	m, err := e.reconcile(ctx, st, o.Pools, &rep)
	if err != nil {
		return rep, err
	}
	if o.DryRun {
		return rep, nil
	}
	if err := m.write(ctx, st); err != nil {
		return rep, fmt.Errorf("write the rebuilt records: %w", err)
	}
	if err := st.Close(); err != nil {
		return rep, err
	}
	if err := state.Check(ctx, tmp); err != nil {
		return rep, fmt.Errorf("the rebuilt records fail SQLite's check: %w", err)
	}
	// The file being replaced is kept, damaged or not: it may hold what
	// the rebuild could not find.
	if _, err := os.Stat(path); err == nil {
		aside := fmt.Sprintf("%s.replaced-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if err := moveDB(path, aside); err != nil {
			return rep, err
		}
		rep.KeptAside = aside
	} else if !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	if err := moveDB(tmp, path); err != nil {
		return rep, err
	}
	final, err := state.Open(ctx, e.Home)
	if err != nil {
		return rep, err
	}
	defer final.Close()
	if _, err := final.Backup(ctx, state.KeepBackups); err != nil {
		e.Progress.Note("could not back up the rebuilt state database: %v", err)
	}
	return rep, nil
}

// moveDB renames a SQLite database with its -wal and -shm files: a stale
// WAL left beside another database must not meet it.
func moveDB(from, to string) error {
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Rename(from+suffix, to+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}
