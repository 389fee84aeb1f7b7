package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// RestoreOptions are the flags of velo branch restore.
type RestoreOptions struct {
	Ref string // project/branch
	// To is a moment of the branch's own history, or an LSN, as --pitr
	// takes it.
	To string
	// Snapshot is a snapshot of the branch (an ID or unique prefix).
	Snapshot string
	// Discard drops the replaced state; without it the state is kept as a
	// new branch, Name (default BRANCH-old-YYYYMMDD).
	Discard bool
	Name    string
}

// RestoreResult is what branch restore did.
type RestoreResult struct {
	Branch Conn  // the restored branch: its port and password unchanged
	Kept   *Conn // the branch that keeps the replaced state; nil with --discard
	// What it was restored to: Snapshot (an ID), else LSN (0/3000060)
	// or Target.
	Snapshot string
	LSN      string
	Target   time.Time
}

// RestoreBranch puts a branch back to a moment of its own history (a time
// of its WAL archive, or one of its snapshots), keeping its name, port and
// password. It is reset's clone-then-swap: the restored data is cloned
// and started beside the old, which stops only for the start, and the
// records swap in one transaction. The replaced data is not destroyed: it
// stays, stopped, as a new branch on a port of its own (with the
// descendants made from it), unless --discard; --discard is refused while
// descendants exist, since they were made from what it drops.
func (e *Engine) RestoreBranch(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	_, bn, err := ParseRef(o.Ref)
	if err != nil {
		return res, err
	}
	var target pitrTarget
	if o.To != "" {
		if target, err = e.parseTarget("--to", o.To); err != nil {
			return res, err
		}
	}
	if o.Snapshot != "" {
		if err := ValidateSnapshotPrefix(o.Snapshot); err != nil {
			return res, fmt.Errorf("--snapshot: %w", err)
		}
	}
	if o.Name != "" {
		if err := ValidateName("branch", o.Name); err != nil {
			return res, fmt.Errorf("--name: %w", err)
		}
		if o.Name == bn || o.Name == MainBranch {
			return res, errdefs.Invalid("--name %s: the branch that keeps the replaced state cannot be main or %s; give it a name of its own", o.Name, bn)
		}
		if o.Discard {
			return res, errdefs.Invalid("--name names the branch that keeps the replaced state, and --discard keeps none: give one of them")
		}
	}
	if (o.To == "") == (o.Snapshot == "") {
		return res, errdefs.Invalid("give one of --to TIME and --snapshot ID: the moment of %s's own history to put it back to", o.Ref)
	}
	// A prefix that names nothing is refused before the lock.
	if o.Snapshot != "" {
		if _, err := e.resolveSnapshot(ctx, o.Snapshot); err != nil {
			return res, err
		}
	}
	err = e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, o.Ref)
		if err != nil {
			return err
		}
		if b.Protected {
			return errProtected(p, b, "restored")
		}
		if following(p, b) {
			return errdefs.FailedPrecondition("%s/%s follows its source (%s): a restore would end that; branch the moment instead with velo branch create %s/NEW --pitr TIME", p.Name, b.Name, sourceName(p.Source), p.Name)
		}
		all, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return err
		}
		desc := descendants(all, b.ID)
		if o.Discard && len(desc) > 0 {
			return refuseDescendants(p, all, b, desc, ", made from the data --discard would drop; restore without --discard (they then go with the branch that keeps it), or delete them first")
		}
		keepName, err := e.keepName(ctx, p, b, o.Name, o.Discard)
		if err != nil {
			return err
		}
		var snap *state.Snapshot
		if o.Snapshot != "" {
			s, err := e.ownSnapshot(ctx, p, b, o.Snapshot)
			if err != nil {
				return err
			}
			snap = &s
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		oldSpec, err := e.spec(ctx, p, b)
		if err != nil {
			return err
		}
		if dataGone(oldSpec.DataDir) {
			return e.errDataGone(ctx, p, b, oldSpec.DataDir)
		}
		st, err := e.Runtime.Status(ctx, oldSpec)
		if err != nil {
			return err
		}
		wasRunning := st.State == runtime.Running
		fresh := b
		fresh.VolumeID = newID("v")
		var start func() error
		var origin string
		var freshSpec runtime.Spec
		if snap != nil {
			res.Snapshot = snap.ID
			e.Progress.Title("Restoring %s/%s to snapshot %s...", p.Name, b.Name, snap.ID)
			spec, err := e.cloneSnapshot(ctx, op, p, d, *snap, fresh, nil, nil)
			if err != nil {
				return err
			}
			origin, freshSpec = snap.ID, spec
			start = func() error { return e.startClone(ctx, op, p, b, spec, b.Password) }
		} else {
			res.Target, res.LSN = target.Time, target.lsn()
			e.Progress.Title("Restoring %s/%s to %s...", p.Name, b.Name, target)
			rc, err := e.preparePITR(ctx, op, p, d, b, fresh, "--to", target)
			if err != nil {
				return err
			}
			origin, freshSpec = rc.base.ID, rc.spec
			start = func() error { return e.replay(ctx, op, p, fresh, rc, b.Password) }
		}
		// The restored server takes the branch's port: the old one stops
		// first, and starts again if anything after fails.
		if err := op.record(ctx, stepStopServer, subject{Path: oldSpec.DataDir}); err != nil {
			return err
		}
		if err := e.Progress.Step("Stop "+p.Name+"/"+b.Name, func() error { return e.Runtime.Stop(ctx, oldSpec, 10*time.Second) }); err != nil {
			return err
		}
		if wasRunning {
			op.onFail(func(ctx context.Context) error { _, err := e.Runtime.Start(ctx, oldSpec); return err })
		}
		if err := start(); err != nil {
			return err
		}
		var keep *state.Branch
		if !o.Discard {
			port, err := e.freePort(ctx)
			if err != nil {
				return err
			}
			parentID := b.ParentID
			if parentID == "" {
				parentID = b.ID // main's old state becomes a branch of main
			}
			keep = &state.Branch{ID: newID("b"), ProjectID: p.ID, Name: keepName, ParentID: parentID, VolumeID: b.VolumeID,
				OriginSnapshotID: b.OriginSnapshotID, Port: port, Password: b.Password, WantRunning: wasRunning, CreatedAt: time.Now(), PITRTarget: b.PITRTarget, PITRLSN: b.PITRLSN, Masked: b.Masked}
		}
		if err := op.record(ctx, stepSwapVolume, subject{ID: b.VolumeID, To: fresh.VolumeID}); err != nil {
			return err
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
			if err := tx.SwapVolume(ctx, b.ID, fresh.VolumeID, origin); err != nil {
				return err
			}
			if keep == nil {
				return tx.RetireVolume(ctx, p.ID, b.VolumeID)
			}
			if err := tx.InsertBranch(ctx, *keep); err != nil {
				return err
			}
			// Its descendants were made from the replaced data.
			for _, c := range all {
				if c.ParentID == b.ID {
					if err := tx.SetParent(ctx, c.ID, keep.ID); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			return err
		}
		op.commit()
		if keep == nil {
			markRetired(filepath.Dir(oldSpec.DataDir))
		} else if err := e.startKept(ctx, op, p, *keep, wasRunning); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		if !wasRunning {
			if err := e.stopAgain(ctx, op, freshSpec); err != nil {
				return err
			}
		}
		b, err = e.Store.Q().BranchByID(ctx, b.ID)
		if err != nil {
			return err
		}
		res.Branch = e.conn(p, b, false)
		if keep != nil {
			c := e.conn(p, *keep, false)
			res.Kept = &c
		}
		return e.gc(ctx, op, p, d)
	})
	return res, err
}

// keepName is the name of the branch that keeps a restore's replaced
// state: --name, which must be free, or BRANCH-old-DATE (-2, -3...).
func (e *Engine) keepName(ctx context.Context, p state.Project, b state.Branch, name string, discard bool) (string, error) {
	if discard {
		return "", nil
	}
	if name == "" {
		base := b.Name
		suffix := "-old-" + time.Now().UTC().Format("20060102")
		if max := 63 - len(suffix) - 4; len(base) > max {
			base = base[:max]
		}
		return e.freeName(ctx, p, base+suffix)
	}
	taken, err := e.Store.Q().Branch(ctx, p.ID, name)
	if err == nil {
		if taken.Protected {
			return "", errProtected(p, taken, "renamed over")
		}
		return "", errdefs.AlreadyExists("--name %s: branch %s/%s already exists; pick another name", name, p.Name, name)
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return "", err
	}
	return name, nil
}

// ownSnapshot resolves restore --snapshot: a snapshot taken of b (of any
// of its volumes: one from before a reset or an earlier restore is still
// its history), and one that can be cloned directly.
func (e *Engine) ownSnapshot(ctx context.Context, p state.Project, b state.Branch, prefix string) (state.Snapshot, error) {
	s, err := e.resolveSnapshot(ctx, prefix)
	if err != nil {
		return s, err
	}
	if s.BranchID != b.ID {
		of := "a branch that is gone"
		if ob, err := e.Store.Q().BranchByID(ctx, s.BranchID); err == nil {
			of = "branch " + ob.Name
			if pr, err := e.Store.Q().ProjectByID(ctx, ob.ProjectID); err == nil {
				of = "branch " + pr.Name + "/" + ob.Name
			}
		}
		return s, errdefs.Invalid("snapshot %s is of %s, not of %s/%s: a restore goes back in the branch's own history (velo snapshot list %s/%s); to branch another's snapshot use velo branch create %s/NEW --from-snapshot %s",
			s.ID, of, p.Name, b.Name, p.Name, b.Name, p.Name, s.ID)
	}
	if s.BackupLabel != "" {
		return s, errdefs.FailedPrecondition("snapshot %s is a file-by-file copy of a running server (%s storage): Velo cannot clone it directly yet; give --to %s, the snapshot's time, instead", s.ID, p.Driver, earliestBound(s.CreatedAt))
	}
	return s, nil
}

// startKept configures the replaced data as the branch keep (its own
// port, socket and log) and, when it was running, starts it again there,
// so that its rows can be read at once. A kept branch of a stopped one
// stays stopped.
func (e *Engine) startKept(ctx context.Context, op *op, p state.Project, keep state.Branch, wasRunning bool) error {
	spec, err := e.spec(ctx, p, keep)
	if err != nil {
		return err
	}
	if err := op.record(ctx, stepConfigure, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := e.configure(p, keep, spec, nil); err != nil {
		return err
	}
	if !wasRunning {
		return nil
	}
	if err := op.record(ctx, stepStartServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	return e.Progress.Step("Start "+p.Name+"/"+keep.Name+" (the replaced state)", func() error {
		_, err := e.Runtime.Start(ctx, spec)
		return err
	})
}
