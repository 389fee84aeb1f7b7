package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/diff"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

// DiffOptions are the arguments and flags of `velo diff`.
type DiffOptions struct {
	Old string // PROJECT/BRANCH
	New string // PROJECT/BRANCH; "": Old against its origin snapshot
	// Database is the database compared; "": an imported project's source
	// database, else postgres.
	Database string
	diff.Options
}

// Diff compares a branch with the state it was made from (its origin
// snapshot), or two branches of one project as they are now. The origin is
// read through a server of its own: a clone of the snapshot, started on a
// private socket (no TCP), stopped and destroyed once read; a kill on the
// way leaves it to velo doctor --repair, which the journal tells.
func (e *Engine) Diff(ctx context.Context, o DiffOptions) (*diff.Result, error) {
	pn, _, err := ParseRef(o.Old)
	if err != nil {
		return nil, err
	}
	if o.Database != "" {
		if err := checkDatabaseName(o.Database); err != nil {
			return nil, err
		}
	}
	if o.New != "" {
		qn, _, err := ParseRef(o.New)
		if err != nil {
			return nil, err
		}
		if qn != pn {
			return nil, errdefs.Invalid("%s and %s are branches of different projects: velo diff compares branches of one project (each is a copy of the same cluster)", o.Old, o.New)
		}
	}
	var res *diff.Result
	err = e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, o.Old)
		if err != nil {
			return err
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		db := o.Database
		if db == "" {
			db = pg.Superuser
			if p.Source != nil && p.Source.Database != "" {
				db = p.Source.Database
			}
		}
		newer, err := e.liveSide(ctx, p, b, db)
		if err != nil {
			return err
		}
		older, cleanup := newer, func(context.Context) error { return nil }
		// The volumes read, and a snapshot both descend from, for
		// drivers that list what a volume wrote since one (blockFinder).
		var oldVol, newVol, base string
		if o.New != "" {
			_, c, err := e.ref(ctx, o.New)
			if err != nil {
				return err
			}
			if newer, err = e.liveSide(ctx, p, c, db); err != nil {
				return err
			}
			oldVol, newVol, base = b.VolumeID, c.VolumeID, e.commonSnapshot(ctx, b, c)
		} else {
			same, err := e.sameAsOrigin(ctx, d, b, newer, o.Options)
			if err != nil || same != nil {
				res = same
				return err
			}
			if older, oldVol, cleanup, err = e.originSide(ctx, op, p, d, b, db); err != nil {
				return err
			}
			newVol, base = b.VolumeID, b.OriginSnapshotID
		}
		opts := o.Options
		opts.Blocks = e.blockFinder(op, p, d, base, oldVol, newVol)
		err = e.Progress.Step("Compare", func() error {
			res, err = diff.Compare(ctx, older, newer, opts)
			return err
		})
		if err != nil {
			return err // the journal's undo removes the copy
		}
		if o.New == "" {
			res.OriginRead = "server"
		}
		return cleanup(context.WithoutCancel(ctx))
	})
	return res, err
}

// liveSide is database db of branch b, read through its running server.
func (e *Engine) liveSide(ctx context.Context, p state.Project, b state.Branch, db string) (diff.Side, error) {
	spec, err := e.observeSpec(ctx, p, b)
	if err != nil {
		return diff.Side{}, err
	}
	st, err := e.Runtime.Status(ctx, spec)
	if err != nil {
		return diff.Side{}, err
	}
	ref := p.Name + "/" + b.Name
	if st.State != runtime.Running {
		return diff.Side{}, errdefs.FailedPrecondition("%s is stopped: velo diff reads a branch through its server; start it with velo branch start %s", ref, ref)
	}
	side := diff.Side{Name: ref, DataDir: spec.DataDir, Dial: func(ctx context.Context) (*pgx.Conn, error) {
		return noDatabase(e.dialDatabase(ctx, p, b, db))(ref, db)
	}}
	return side, nil
}

// originSide starts a server on a clone of b's origin snapshot, on a
// socket of its own and no TCP, and returns it with its volume; cleanup
// stops and destroys it (so does the journal's undo if a later step
// fails).
func (e *Engine) originSide(ctx context.Context, op *op, p state.Project, d storage.Driver, b state.Branch, db string) (diff.Side, string, func(context.Context) error, error) {
	ref := p.Name + "/" + b.Name
	if b.OriginSnapshotID == "" {
		return diff.Side{}, "", nil, errdefs.FailedPrecondition("%s was not made from a snapshot (a project's main branch): compare it with another branch, velo diff %s %s/OTHER", ref, ref, p.Name)
	}
	snap, err := e.Store.Q().Snapshot(ctx, b.OriginSnapshotID)
	if err != nil {
		return diff.Side{}, "", nil, fmt.Errorf("the origin snapshot of %s: %w", ref, err)
	}
	// The snapshot's data holds the password its branch had.
	inData := b.Password
	if src, err := e.Store.Q().BranchByID(ctx, snap.BranchID); err == nil {
		inData = src.Password
	}
	port, err := e.freePort(ctx)
	if err != nil {
		return diff.Side{}, "", nil, err
	}
	tmp := state.Branch{ID: newID("b"), ProjectID: p.ID, Name: "diff-" + b.Name, ParentID: b.ID, VolumeID: newID("v"), Port: port, Password: inData, CreatedAt: time.Now()}
	if err := e.ensureDirs(); err != nil {
		return diff.Side{}, "", nil, err
	}
	e.Progress.Title("Reading %s as it was made (snapshot %s)...", ref, snap.ID)
	var recovery map[string]string
	if snap.BackupLabel != "" {
		// A copy made inside the backup protocol: replayed from its
		// branch's archive up to the end of the backup, as the branch was.
		recovery = recoveryFrom(e.archiveDir(snap.VolumeID), map[string]string{"recovery_target": "immediate"})
	}
	spec, err := e.cloneSnapshot(ctx, op, p, d, snap, tmp, func(spec runtime.Spec) error {
		if recovery == nil {
			return nil
		}
		return touchOwned(filepath.Join(spec.DataDir, "recovery.signal"), spec.RunAs)
	}, recovery)
	if err != nil {
		return diff.Side{}, "", nil, err
	}
	// Its socket alone: nothing but velo reaches the copy.
	if err := lockToSocket(spec); err != nil {
		return diff.Side{}, "", nil, err
	}
	// Its log and socket directory go with it (the undos run last first).
	leftovers := func(context.Context) error {
		_ = os.Remove(spec.LogFile)
		if err := os.Remove(e.secretFile(tmp.ID)); err != nil && !os.IsNotExist(err) {
			return err
		}
		return os.RemoveAll(spec.SocketDir)
	}
	op.onFail(leftovers)
	if err := e.startNew(ctx, op, spec); err != nil {
		return diff.Side{}, "", nil, err
	}
	cleanup := func(ctx context.Context) error {
		return e.Progress.Step("Remove the copy of the origin", func() error {
			if err := e.Runtime.Stop(ctx, spec, 10*time.Second); err != nil {
				return err
			}
			if err := ignoreNotFound(d.DestroyVolume(ctx, tmp.VolumeID)); err != nil {
				return err
			}
			if err := os.RemoveAll(e.archiveDir(tmp.VolumeID)); err != nil {
				return err
			}
			return leftovers(ctx)
		})
	}
	side := diff.Side{Name: ref + "@" + snap.ID, DataDir: spec.DataDir, Dial: func(ctx context.Context) (*pgx.Conn, error) {
		return noDatabase(pg.ConnectDatabase(ctx, spec.SocketDir, spec.Port, pg.Superuser, db, inData))(ref+" as it was made", db)
	}}
	return side, tmp.VolumeID, cleanup, nil
}

// noDatabase turns a refusal for a database that does not exist into a
// clear error about --database; other outcomes pass through.
func noDatabase(c *pgx.Conn, err error) func(where, db string) (*pgx.Conn, error) {
	return func(where, db string) (*pgx.Conn, error) {
		if pg.SQLState(err) == "3D000" {
			return nil, errdefs.Invalid("%s has no database %s: name one that it has with velo diff --database DB (psql -l lists them)", where, ui.Quote(db))
		}
		return c, err
	}
}

// touchOwned makes an empty file owned by u.
func touchOwned(path string, u *pg.OSUser) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return pg.Chown(path, u)
}
