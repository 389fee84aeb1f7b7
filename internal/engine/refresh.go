package engine

import (
	"context"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// RefreshProject takes a new copy of an imported project's source into a
// new volume for main: a logical import is dumped and restored again, a
// physical one that does not follow (--no-follow) gets a new base backup.
// Clone-then-swap, as branch reset does: main keeps its port and password,
// and the old data goes only after the new server answers; the branches
// keep their data (their volumes were cloned from snapshots of main's old
// volume, which is retired and destroyed once none is left).
func (e *Engine) RefreshProject(ctx context.Context, name string) error {
	if err := ValidateName("project", name); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, name)
		if err != nil {
			return err
		}
		switch {
		case p.Source == nil:
			return errdefs.FailedPrecondition("project %s was made empty, not imported: there is no source to refresh from; make an imported project with velo project create NAME --from SOURCE", p.Name)
		case fromArchive(p):
			return errdefs.FailedPrecondition("project %s was restored from %s, not imported from a server: restore a newer copy into a new project with velo project create NAME --from-archive %s", p.Name, p.Source.Archive, p.Source.Archive)
		case p.Source.Mode == ModeLogical:
			return e.refreshLogical(ctx, op, p)
		case p.Source.Following:
			return errdefs.FailedPrecondition("project %s's main follows its source and stays current by itself; velo project refresh takes a new copy of a --no-follow or --logical import (velo status shows how far behind main is)", p.Name)
		default:
			return e.refreshPhysical(ctx, op, p)
		}
	})
}

// refreshLogical dumps a logical import's source again and restores it
// into a new cluster, loaded on a port of its own while main answers.
func (e *Engine) refreshLogical(ctx context.Context, op *op, p state.Project) error {
	b, err := e.branch(ctx, p, MainBranch)
	if err != nil {
		return err
	}
	src, err := e.sourceOf(p)
	if err != nil {
		return err
	}
	ls, err := openLogicalSource(src)
	if err != nil {
		return err
	}
	defer ls.close()
	e.Progress.Title("Refreshing project %s from %s...", p.Name, ls.name())
	f, err := e.inspectSource(ctx, ls, p.Source.Databases, p.Name)
	if err != nil {
		return err
	}
	if f.major > p.PGMajor {
		return errdefs.FailedPrecondition("the source now runs PostgreSQL %s, newer than project %s's %d; a dump loads only into the same major or a newer one: import it into a new project with velo project create NAME --from SOURCE --logical",
			f.version, p.Name, p.PGMajor)
	}
	in, err := e.install(ctx, p.PGMajor)
	if err != nil {
		return err
	}
	u, err := e.osUser()
	if err != nil {
		return err
	}
	d, err := e.driver(ctx, p)
	if err != nil {
		return err
	}
	if err := e.requireSpace(ctx, p, d, "a new server"); err != nil {
		return err
	}
	if err := e.checkImportSpace(ctx, p, d, f); err != nil {
		return err
	}
	if err := e.ensureDirs(); err != nil {
		return err
	}
	// The new cluster is loaded on a port and socket of its own, main
	// answering meanwhile; its superuser has main's password from initdb
	// on, and the source's roles leave postgres alone.
	fresh := b
	fresh.VolumeID = newID("v")
	loading := fresh
	loading.ID = newID("b")
	if loading.Port, err = e.freePort(ctx); err != nil {
		return err
	}
	spec, err := e.importInto(ctx, op, p, d, in, ls, f, loading, false)
	if err != nil {
		return err
	}
	removeBranchFiles(e, loading)
	spec = e.specAt(p, in, u, fresh, filepath.Dir(spec.DataDir))
	if err := e.configure(p, fresh, spec, nil); err != nil {
		return err
	}
	source := *p.Source
	source.Imported, source.Version, source.RefreshedAt = f.databases, f.version, time.Now()
	return e.swapMain(ctx, op, p, d, b, fresh, spec, source, nil)
}

// stopReplaced stops the server whose data a swap replaces (reset,
// refresh), journalled: no shutdown checkpoint to wait for, since if the
// command fails the restart replays the WAL, which the undo does when it
// was running. A data directory that is gone has no server to stop (a
// reset rebuilds it, stopped as it was).
func (e *Engine) stopReplaced(ctx context.Context, op *op, spec runtime.Spec, step string) (wasRunning bool, err error) {
	if !dataGone(spec.DataDir) {
		st, err := e.Runtime.Status(ctx, spec)
		if err != nil {
			return false, err
		}
		wasRunning = st.State == runtime.Running
	}
	if err := op.record(ctx, stepStopServer, subject{Path: spec.DataDir}); err != nil {
		return false, err
	}
	if err := e.Progress.Step(step, func() error { return e.Runtime.Stop(ctx, spec, 0) }); err != nil {
		return false, err
	}
	if wasRunning {
		op.onFail(func(ctx context.Context) error { _, err := e.Runtime.Start(ctx, spec); return err })
	}
	return wasRunning, nil
}

// swapMain puts fresh, a new volume of p's main b whose server is
// configured as spec, in b's place: the old server stopped, the new one
// started on main's port (then ready, if given, runs on it), its base
// snapshot taken (main's point-in-time window opens again at the refresh;
// the old volume's snapshots and archive go with it), the volumes swapped
// and source recorded in one transaction, the old volume retired. A main
// that was stopped is left stopped.
func (e *Engine) swapMain(ctx context.Context, op *op, p state.Project, d storage.Driver, b, fresh state.Branch, spec runtime.Spec, source state.Source, ready func() error) error {
	oldSpec, err := e.spec(ctx, p, b)
	if err != nil {
		return err
	}
	wasRunning, err := e.stopReplaced(ctx, op, oldSpec, "Stop old main")
	if err != nil {
		return err
	}
	if err := e.startNew(ctx, op, spec); err != nil {
		return err
	}
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	base, _, err := e.takeSnapshot(ctx, op, p, d, fresh, "", false)
	if err != nil {
		return err
	}
	op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroySnapshot(ctx, base.ID)) })
	if err := op.record(ctx, stepSwapVolume, subject{ID: b.VolumeID, To: fresh.VolumeID}); err != nil {
		return err
	}
	if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
		if err := tx.SwapVolume(ctx, b.ID, fresh.VolumeID, b.OriginSnapshotID); err != nil {
			return err
		}
		if err := tx.InsertSnapshot(ctx, p.ID, base); err != nil {
			return err
		}
		if err := tx.RetireVolume(ctx, p.ID, b.VolumeID); err != nil {
			return err
		}
		return tx.SetSource(ctx, p.ID, &source)
	}); err != nil {
		return err
	}
	markRetired(filepath.Dir(oldSpec.DataDir))
	op.commit()
	if !wasRunning {
		// Refresh keeps a stopped main stopped.
		if err := e.stopAgain(ctx, op, spec); err != nil {
			return err
		}
	}
	return e.gc(ctx, op, p, d)
}
