package engine

import (
	"context"
	"fmt"

	"github.com/velohq/velo/internal/diff"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// How velo diff narrows what it reads, by driver: a branch unchanged since
// its snapshot told from the files alone (btrfs, reflink), and the blocks
// each side may have changed (FIEMAP; ZFS's send streams; the bytes).

// sameAsOrigin answers velo diff P/B from the files alone when b has
// changed nothing since its origin snapshot (diff.Unchanged): no server is
// started on a copy of the snapshot. Only where the snapshot can be read
// in place and its clones share extents with it, so that finding out costs
// little whatever the size; nil when it cannot tell.
func (e *Engine) sameAsOrigin(ctx context.Context, d storage.Driver, b state.Branch, newer diff.Side, o diff.Options) (*diff.Result, error) {
	sr, ok := d.(storage.SnapshotReader)
	if !ok || !d.Capabilities().SharedExtents || b.OriginSnapshotID == "" {
		return nil, nil
	}
	snap, err := e.Store.Q().Snapshot(ctx, b.OriginSnapshotID)
	if err != nil {
		return nil, nil // originSide says why
	}
	dir, err := sr.SnapshotPath(ctx, snap.ID)
	if err != nil {
		return nil, nil
	}
	var res *diff.Result
	err = e.Progress.Step("Compare with the snapshot's files", func() (err error) {
		res, err = diff.Unchanged(ctx, newer.Name+"@"+snap.ID, dataDir(dir), newer, o)
		return err
	})
	return res, err
}

// blockFinder is how d tells the blocks in which two files of the sides
// may differ: FIEMAP where clones share extents (btrfs, reflink); on ZFS,
// what each side's volume wrote since base, a snapshot both descend from
// (an incremental send stream from base to a snapshot of each volume,
// both taken at the first comparison, after the checkpoints, and
// destroyed once listed); else the bytes.
func (e *Engine) blockFinder(op *op, p state.Project, d storage.Driver, base, oldVol, newVol string) diff.BlockFinder {
	if d.Capabilities().SharedExtents {
		return diff.ExtentFinder{}
	}
	cl, ok := d.(storage.ChangeLister)
	if !ok || base == "" || !cl.ListsChanges() {
		return diff.ByteFinder{}
	}
	return &diff.ObjectFinder{Load: func(ctx context.Context) (old, new map[uint64][]storage.ByteRange, err error) {
		var snaps []string
		defer func() {
			for _, id := range snaps {
				if derr := d.DestroySnapshot(context.WithoutCancel(ctx), id); derr != nil && err == nil {
					err = fmt.Errorf("remove the snapshot %s taken to list what a volume wrote: %w", id, derr)
				}
			}
		}()
		for _, vol := range []string{oldVol, newVol} {
			id, err := e.tempSnapshot(ctx, op, p, d, vol)
			if err != nil {
				return nil, nil, err
			}
			snaps = append(snaps, id)
		}
		if old, err = cl.Changes(ctx, base, snaps[0]); err == nil {
			new, err = cl.Changes(ctx, base, snaps[1])
		}
		return old, new, err
	}}
}

// tempSnapshot takes a snapshot of volume vol for the caller to destroy,
// journalled, so that a kill leaves it to velo doctor --repair, and
// destroyed by the journal's undo if a later step fails.
func (e *Engine) tempSnapshot(ctx context.Context, op *op, p state.Project, d storage.Driver, vol string) (string, error) {
	id := newID("s")
	if err := op.record(ctx, stepSnapshot, subject{Driver: d.Name(), Pool: p.Pool, ID: id}); err != nil {
		return "", err
	}
	if err := d.Snapshot(ctx, vol, id); err != nil {
		return "", err
	}
	op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroySnapshot(ctx, id)) })
	return id, nil
}

// commonSnapshot is a snapshot that the volumes of b and c both descend
// from, for blockFinder: their origin when they share it, or the origin of
// one when it was taken of the other's volume (a branch and its parent);
// "" when neither.
func (e *Engine) commonSnapshot(ctx context.Context, b, c state.Branch) string {
	if b.OriginSnapshotID != "" && b.OriginSnapshotID == c.OriginSnapshotID {
		return b.OriginSnapshotID
	}
	for _, x := range [][2]state.Branch{{b, c}, {c, b}} {
		if x[1].OriginSnapshotID == "" {
			continue
		}
		if snap, err := e.Store.Q().Snapshot(ctx, x[1].OriginSnapshotID); err == nil && snap.VolumeID == x[0].VolumeID {
			return snap.ID
		}
	}
	return ""
}
