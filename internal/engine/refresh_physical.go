package engine

import (
	"context"
	"os"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// refreshPhysical takes a new base backup of a --no-follow import's source
// into a new volume and swaps it in for main's. The project keeps no
// password of such a source, so it is found as libpq finds it, now
// (PGPASSWORD, ~/.pgpass, the service file); the source is only read.
// Main answers with its old data through the copy and is down only from
// the stop of its old server until the new one has replayed the backup's
// WAL and has Velo's password.
func (e *Engine) refreshPhysical(ctx context.Context, op *op, p state.Project) error {
	b, err := e.branch(ctx, p, MainBranch)
	if err != nil {
		return err
	}
	src, err := e.sourceOf(p)
	if err != nil {
		return err
	}
	if src, err = src.FindPassword(); err != nil {
		return errdefs.Invalid("%v", err)
	}
	e.Progress.Title("Refreshing project %s from %s...", p.Name, src.Display())
	info, err := e.inspectPhysical(ctx, src)
	if err != nil {
		return err
	}
	if info.Major != p.PGMajor {
		return errdefs.FailedPrecondition("the source now runs PostgreSQL %s and project %s PostgreSQL %d; a physical copy runs the source's major: import it into a new project with velo project create NAME --from SOURCE (or --logical)",
			info.Version, p.Name, p.PGMajor)
	}
	in, err := e.physicalInstall(ctx, info)
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
	// The old volume stays until the swap: the pool needs room for a
	// whole new copy.
	if err := e.requireImportSpace(ctx, p, d, info.Size); err != nil {
		return err
	}
	if err := e.ensureDirs(); err != nil {
		return err
	}
	fresh := b
	fresh.VolumeID = newID("v")
	vol, err := e.newVolume(ctx, op, p, d, fresh.VolumeID)
	if err != nil {
		return err
	}
	spec := e.specAt(p, in, u, fresh, vol)
	if err := e.populateImport(ctx, op, p, spec, &importPlan{src: src, info: info}, false); err != nil {
		return err
	}
	if err := e.configure(p, fresh, spec, nil); err != nil {
		return err
	}
	op.onFail(func(context.Context) error { return os.RemoveAll(e.archiveDir(fresh.VolumeID)) })
	source := *p.Source
	source.Version, source.Superuser, source.StandbyMin, source.RefreshedAt = info.Version, info.Superuser, info.Settings, time.Now()
	q := p
	q.Source = &source
	return e.swapMain(ctx, op, p, d, b, fresh, spec, source, func() error { return e.adoptCopy(ctx, q, fresh) })
}
