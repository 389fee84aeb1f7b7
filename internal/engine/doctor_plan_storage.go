// The repair plan's parts about storage and files: what no record names
// and what gc would destroy now (leaves first, never another home's),
// WAL archives of volumes that go, the directory drivers' leftovers, and
// the socket directories and logs of branches that are gone.

package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// storage: what no record names, and what gc would destroy now.
func (p *planner) storage(ctx context.Context) {
	s := p.s
	facts := storageFacts{Branches: map[string]bool{}, LiveBranch: map[string]bool{}, Retired: map[string]bool{}, Snapshots: map[string]state.Snapshot{}}
	for _, b := range s.branches {
		if !p.dropped[b.b.ID] {
			facts.Branches[b.b.VolumeID] = true
			facts.LiveBranch[b.b.ID] = true
		}
	}
	for v := range s.retired {
		if !p.droppedRetired[v] {
			facts.Retired[v] = true
		}
	}
	for id, sn := range s.snapshots {
		if !p.droppedSnap[id] {
			facts.Snapshots[id] = sn
		}
	}
	for v := range facts.Branches {
		p.named[v] = true
	}
	for v := range facts.Retired {
		p.named[v] = true
	}
	for _, pl := range s.pools {
		if !pl.usable() {
			for id, en := range pl.entries {
				if en.Kind == storage.KindVolume {
					p.named[id] = true
				}
			}
			continue
		}
		f := facts
		f.Entries = nil
		seeds := map[string]string{}   // volume → the archive that names its home
		own := map[string]unrecorded{} // volumes of this home that lost their record
		for _, id := range sortedKeys(pl.entries) {
			en := pl.entries[id]
			f.Entries = append(f.Entries, en)
			if en.Kind == storage.KindVolume && !f.Branches[id] && !f.Retired[id] {
				if path, err := pl.d.Path(ctx, id); err == nil {
					if u, ok := p.e.homeVolume(s, path); ok && !s.journalNamed[id] {
						own[id] = u
					} else if archive, ok := pg.ForeignDataDir(dataDir(path), s.archiveBase); ok {
						seeds[id] = archive
					}
				}
			}
		}
		// What this home has without a record is kept as another home's
		// is, with the snapshots and clones linked to it.
		ownSeeds := map[string]string{}
		for id := range own {
			ownSeeds[id] = ""
		}
		ownClosure := foreignClosure(f, ownSeeds)
		f.Foreign = foreignClosure(f, seeds)
		for id := range ownClosure {
			f.Foreign[id] = true
		}
		steps, kept := planDestroy(f)
		for _, st := range steps {
			p.destroy(pl, st, facts)
			if st.Kind == storage.KindVolume {
				delete(p.named, st.ID)
			}
		}
		for _, en := range kept {
			if en.Kind == storage.KindVolume {
				p.named[en.ID] = true
			}
			fd := Finding{Section: SectionOrphans, Subject: string(en.Kind) + " " + en.ID, Status: LevelWarning,
				Message: fmt.Sprintf("%s %s in %s: no record names it, but a recorded volume was cloned from it", en.Kind, en.ID, pl.label()),
				Fix:     "nothing to do: it goes when what depends on it goes"}
			if ownClosure[en.ID] {
				u, seed := own[en.ID]
				p.left = append(p.left, s.keepUnrecordedEntry(string(en.Kind), en.ID, pl.label(), u, seed))
				continue
			}
			if f.Foreign[en.ID] {
				fd.Message = fmt.Sprintf("%s %s in %s belongs to another Velo home", en.Kind, en.ID, pl.label())
				if a := seeds[en.ID]; a != "" {
					fd.Message += ": it archives to " + a
				}
				fd.Fix = "run velo doctor with that home's VELO_HOME; pools are best not shared between homes"
			}
			p.left = append(p.left, fd)
		}
	}
}

// destroy adds the destroy of one pool entry planDestroy chose; f are the
// facts it chose from (a recorded entry goes with its record).
func (p *planner) destroy(pl *pool, st destroyStep, f storageFacts) {
	e, d, id := p.e, pl.d, st.ID
	_, recordedSnap := f.Snapshots[id]
	recordedVol := f.Retired[id]
	level, reason := LevelFailed, fmt.Sprintf("%s %s in %s: no record names it", st.Kind, id, pl.label())
	if recordedSnap || recordedVol {
		level = LevelWarning
		reason = fmt.Sprintf("%s %s in %s is no longer needed (nothing was cloned from it), but was not destroyed", st.Kind, id, pl.label())
	}
	if st.Kind == storage.KindVolume {
		p.orphan(level, RepairDestroyVolume, "volume "+id, fmt.Sprintf("destroy volume %s in %s", id, pl.label()), reason, "destroys it",
			func(ctx context.Context) error {
				if err := ignoreNotFound(d.DestroyVolume(ctx, id)); err != nil {
					return err
				}
				if recordedVol {
					return e.Store.Q().DeleteRetiredVolume(ctx, id)
				}
				return nil
			})
		return
	}
	p.orphan(level, RepairDestroySnapshot, "snapshot "+id, fmt.Sprintf("destroy snapshot %s in %s", id, pl.label()), reason, "destroys it",
		func(ctx context.Context) error {
			if err := ignoreNotFound(d.DestroySnapshot(ctx, id)); err != nil {
				return err
			}
			if recordedSnap {
				return e.Store.Q().DeleteSnapshot(ctx, id)
			}
			return nil
		})
}

// archives: WAL archives of volumes that are gone or going.
func (p *planner) archives() {
	s := p.s
	for _, name := range s.archives {
		if p.named[name] || s.keepVolumes[name] {
			continue
		}
		dir := filepath.Join(s.archiveBase, name)
		level, reason := LevelFailed, fmt.Sprintf("WAL archive %s: no record names volume %s", dir, name)
		if s.retired[name] != "" || s.branchByVolume(name) != nil {
			level, reason = LevelWarning, fmt.Sprintf("WAL archive %s goes with volume %s", dir, name)
		}
		if !s.archiveOwn {
			p.left = append(p.left, Finding{Section: SectionOrphans, Subject: "archive " + name, Status: LevelWarning,
				Message: reason + "; it is in " + s.archiveBase + ", which other Velo homes may share",
				Fix:     "if no other VELO_HOME uses volume " + name + ": rm -r " + dir})
			continue
		}
		p.orphan(level, RepairRemoveArchive, "archive "+name, "remove WAL archive "+dir, reason, "removes it",
			func(ctx context.Context) error { return os.RemoveAll(dir) })
	}
}

// leftovers: what a crash left in the directory drivers' bookkeeping.
func (p *planner) leftovers() {
	for _, pl := range p.s.pools {
		if pl.tree == nil || !pl.usable() {
			continue
		}
		for _, path := range pl.leftovers {
			t := pl.tree
			p.orphan(LevelFailed, RepairRemoveLeftover, path, "remove leftover "+path,
				fmt.Sprintf("%s is left from an unfinished build or removal in %s", path, pl.label()), "removes it",
				func(ctx context.Context) error {
					if filepath.Base(filepath.Dir(path)) == "meta" {
						return ignoreNotExist(os.Remove(path))
					}
					return t.Ops.Remove(ctx, path)
				})
		}
	}
}

// strayFiles: socket directories and logs of branches that no longer exist.
func (p *planner) strayFiles() {
	s := p.s
	live := map[string]bool{}
	for _, b := range s.branches {
		if !p.dropped[b.b.ID] {
			live[b.b.ID] = true
		}
	}
	for _, path := range append(append([]string(nil), s.sockets...), s.logs...) {
		id := strings.TrimSuffix(filepath.Base(path), ".log")
		if live[id] || s.keepBranches[id] {
			continue
		}
		p.orphan(LevelWarning, RepairRemoveFile, path, "remove "+path, fmt.Sprintf("%s belongs to no branch", path), "removes it",
			func(ctx context.Context) error { return os.RemoveAll(path) })
	}
}

// ---- Pure logic: which entries go, in which order ----

// storageFacts are what decides the fate of one pool's entries.
type storageFacts struct {
	Entries    []storage.Entry
	Branches   map[string]bool           // volumes that branches use
	LiveBranch map[string]bool           // branch IDs that stay
	Retired    map[string]bool           // retired volumes still recorded
	Snapshots  map[string]state.Snapshot // recorded snapshots
	// Foreign entries belong to another Velo home sharing the pool: never touched.
	Foreign map[string]bool
}

type destroyStep struct {
	ID   string
	Kind storage.Kind
}

// planDestroy decides which entries to destroy, leaves first: an entry
// goes once nothing left depends on it, if no record names it (an
// orphan), or if gc would destroy it (a retired volume; a snapshot no
// user keeps for a live branch and that opens no branch's point-in-time
// window). kept are the unnamed entries that something named still
// depends on.
func planDestroy(f storageFacts) (steps []destroyStep, kept []storage.Entry) {
	gone := map[string]bool{}
	var recorded []state.Snapshot
	for _, s := range f.Snapshots {
		recorded = append(recorded, s)
	}
	bases := pitrBases(recorded, f.Branches)
	for {
		progress := false
		for _, en := range f.Entries {
			if gone[en.ID] || f.Foreign[en.ID] || hasDependents(f.Entries, gone, en.ID) {
				continue
			}
			destroy := false
			if en.Kind == storage.KindVolume {
				destroy = !f.Branches[en.ID]
			} else if s, ok := f.Snapshots[en.ID]; ok {
				destroy = !(s.User && f.LiveBranch[s.BranchID]) && !bases[s.ID]
			} else {
				destroy = true
			}
			if destroy {
				gone[en.ID] = true
				steps = append(steps, destroyStep{ID: en.ID, Kind: en.Kind})
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	for _, en := range f.Entries {
		_, snap := f.Snapshots[en.ID]
		if !gone[en.ID] && !f.Branches[en.ID] && !f.Retired[en.ID] && !snap {
			kept = append(kept, en)
		}
	}
	return steps, kept
}

// foreignClosure spreads foreignness from the volumes another home made
// (seeds) to the unnamed entries linked to them: their snapshots and those
// snapshots' clones, and the snapshot and volume a foreign clone came from.
func foreignClosure(f storageFacts, seeds map[string]string) map[string]bool {
	out := map[string]bool{}
	for id := range seeds {
		out[id] = true
	}
	unnamed := func(id string) bool {
		_, snap := f.Snapshots[id]
		return !f.Branches[id] && !f.Retired[id] && !snap
	}
	for {
		progress := false
		for _, en := range f.Entries {
			if en.Origin == "" || !unnamed(en.ID) || !unnamed(en.Origin) {
				continue
			}
			if out[en.Origin] && !out[en.ID] {
				out[en.ID], progress = true, true
			}
			if out[en.ID] && !out[en.Origin] {
				out[en.Origin], progress = true, true
			}
		}
		if !progress {
			return out
		}
	}
}

func hasDependents(entries []storage.Entry, gone map[string]bool, id string) bool {
	for _, en := range entries {
		if en.Origin == id && !gone[en.ID] {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
