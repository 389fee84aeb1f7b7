package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/state"
)

// PushedSnapshot is a snapshot stored in a project's archive bucket
// (velo snapshot push), as snapshot cleanup reports it.
type PushedSnapshot struct {
	ID        string
	Project   string
	Branch    string // the branch it was taken of, when pushed
	Archive   string // s3://BUCKET/PREFIX
	CreatedAt time.Time
	Size      int64
	Reason    string // why cleanup kept it
}

// cleanupPushed is snapshot cleanup's part in the buckets: of the projects
// in scope (ref's, or all with ref "") that have an archive in object
// storage, the pushed snapshots taken before cutoff (of ref's branch, when
// given) are removed, manifest first, so that no reader finds a manifest
// whose parts are gone; a kill between leaves parts without a manifest,
// which the next cleanup of the project removes. The project's newest
// pushed snapshot always stays: it is what --from-archive restores. The
// WAL the removed ones needed is then wal cleanup's to remove.
func (e *Engine) cleanupPushed(ctx context.Context, ref string, cutoff time.Time, dryRun bool, res *CleanupResult) error {
	projects, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return err
	}
	project, branch, _ := strings.Cut(ref, "/")
	for _, p := range projects {
		if p.Archive == "" || (ref != "" && p.Name != project) {
			continue
		}
		if err := e.cleanupProjectPushed(ctx, p, branch, cutoff, dryRun, res); err != nil {
			if dryRun {
				// The local part is listed all the same.
				e.Progress.Note("the snapshots pushed to %s are not listed: %v", p.Archive, err)
				continue
			}
			return fmt.Errorf("the local snapshots were removed, not those pushed to %s: %w", p.Archive, err)
		}
	}
	return nil
}

func (e *Engine) cleanupProjectPushed(ctx context.Context, p state.Project, branch string, cutoff time.Time, dryRun bool, res *CleanupResult) error {
	st, err := openArchive(ctx, p)
	if err != nil {
		return err
	}
	ms, skipped, err := e.readManifests(ctx, st)
	if err != nil {
		return err
	}
	info := func(m Manifest, reason string) PushedSnapshot {
		return PushedSnapshot{ID: m.Snapshot, Project: p.Name, Branch: m.Branch, Archive: p.Archive, CreatedAt: m.CreatedAt, Size: m.Size, Reason: reason}
	}
	var gone []Manifest
	for i, m := range ms { // oldest first
		if !m.CreatedAt.Before(cutoff) || (branch != "" && m.Branch != branch) {
			continue
		}
		if i == len(ms)-1 && len(skipped) == 0 {
			res.KeptPushed = append(res.KeptPushed, info(m, "the newest snapshot in "+p.Archive+": what velo project create --from-archive restores"))
			continue
		}
		gone = append(gone, m)
		res.RemovedPushed = append(res.RemovedPushed, info(m, ""))
	}
	if dryRun {
		return nil
	}
	for _, m := range gone {
		if err := st.Delete(ctx, snapshotKey(m.Snapshot, "manifest.json")); err != nil {
			return err
		}
		for _, part := range m.Parts {
			if err := st.Delete(ctx, part.Name); err != nil {
				return err
			}
		}
	}
	return e.removeOrphanParts(ctx, st, ms, skipped)
}

// removeOrphanParts removes the objects under snapshots/ of snapshots
// that have no manifest: a push or a cleanup killed half way. Pushes
// take the lock cleanup holds, so none is under way.
func (e *Engine) removeOrphanParts(ctx context.Context, st *objstore.Store, ms []Manifest, skipped []string) error {
	objs, err := st.List(ctx, "snapshots")
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, m := range ms {
		known[m.Snapshot] = true
	}
	for _, k := range skipped {
		known[snapshotOfKey(st, k)] = true // not ours to judge
	}
	for _, o := range objs {
		if id := snapshotOfKey(st, o.Key); id != "" && !known[id] {
			if err := st.Delete(ctx, strings.TrimPrefix(strings.TrimPrefix(o.Key, st.Loc.Key("")), "/")); err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshotOfKey is the snapshot ID in an object key
// PREFIX/snapshots/ID/NAME, or "".
func snapshotOfKey(st *objstore.Store, key string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(key, st.Loc.Key("")), "/")
	rest, ok := strings.CutPrefix(rel, "snapshots/")
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}
