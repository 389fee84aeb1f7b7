package engine

import (
	"context"
	"errors"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// snapshotParent resolves --from-snapshot within p: the snapshot, and the
// parent the new branch gets, the branch the snapshot was taken of, or
// main when that branch is gone (a reset then takes main's data).
func (e *Engine) snapshotParent(ctx context.Context, p state.Project, prefix string) (*state.Snapshot, state.Branch, error) {
	snap, err := e.resolveSnapshot(ctx, prefix)
	if err != nil {
		return nil, state.Branch{}, err
	}
	pid, err := e.Store.Q().SnapshotProject(ctx, snap.ID)
	if err != nil {
		return nil, state.Branch{}, err
	}
	if pid != p.ID {
		other := pid
		if op, err := e.Store.Q().ProjectByID(ctx, pid); err == nil {
			other = op.Name
		}
		return nil, state.Branch{}, errdefs.Invalid("--from-snapshot %s is a snapshot of project %s, not of %s; a branch comes from its own project's snapshots (velo snapshot list)", snap.ID, other, p.Name)
	}
	if snap.BackupLabel != "" {
		// A copy made inside the backup protocol needs the WAL from the
		// backup's start to its stop replayed from the archive.
		return nil, state.Branch{}, errdefs.FailedPrecondition("snapshot %s is a file-by-file copy of a running server (%s storage): Velo cannot branch from it directly yet; give --pitr with the snapshot's time, %s, to branch as its branch was then", snap.ID, p.Driver, earliestBound(snap.CreatedAt))
	}
	parent, err := e.Store.Q().BranchByID(ctx, snap.BranchID)
	if snap.BranchID == "" || errors.Is(err, errdefs.ErrNotFound) {
		parent, err = e.branch(ctx, p, MainBranch)
	}
	if err != nil {
		return nil, state.Branch{}, err
	}
	return &snap, parent, nil
}

// createFromSnapshot makes b a clone of snap, started as any clone is: the
// snapshot is crash-consistent (a CHECKPOINT then an atomic snapshot, or a
// stopped server), so the start replays only the WAL it holds. inData is
// the password the cloned data holds (the parent's); a --new-password
// branch is given its own as branch create gives it.
func (e *Engine) createFromSnapshot(ctx context.Context, op *op, p state.Project, d storage.Driver, snap state.Snapshot, b *state.Branch, inData string, script maskScript) error {
	e.Progress.Title("Creating %s/%s from snapshot %s...", p.Name, b.Name, snap.ID)
	spec, err := e.cloneSnapshot(ctx, op, p, d, snap, *b, nil, nil)
	if err != nil {
		return err
	}
	if err := e.startNewClone(ctx, op, p, *b, spec, inData, snap.EndLSN, script); err != nil {
		return err
	}
	b.OriginSnapshotID = snap.ID
	if err := op.record(ctx, stepWriteState, subject{Record: "branch", ID: p.Name + "/" + b.Name}); err != nil {
		return err
	}
	return e.Store.Q().InsertBranch(ctx, *b)
}
