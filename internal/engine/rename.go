package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// Rename and promote change names only: storage, archives, sockets and
// logs are keyed by immutable IDs, so a branch keeps its server, port,
// password, data, snapshots, archive and descendants. The one thing on
// disk named after a project is its CA directory, $VELO_HOME/projects/NAME.

// RenameProject gives a project a new name.
func (e *Engine) RenameProject(ctx context.Context, oldName, newName string) error {
	if err := ValidateName("project", oldName); err != nil {
		return err
	}
	if err := ValidateName("project", newName); err != nil {
		return err
	}
	if oldName == newName {
		return errdefs.Invalid("project %s is already called %s", oldName, newName)
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, oldName)
		if err != nil {
			return err
		}
		if _, err := e.Store.Q().Project(ctx, newName); err == nil {
			return errdefs.AlreadyExists("project %s already exists; pick another name, or delete it first with velo project delete %s", newName, newName)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		// The records first, then the CA directory: a kill between them
		// leaves the records renamed and the CA under the old name, which
		// velo doctor --repair moves (moveCA).
		if err := op.record(ctx, stepRenameProject, subject{ID: oldName, To: newName}); err != nil {
			return err
		}
		if err := e.Store.Q().RenameProject(ctx, p.ID, newName); err != nil {
			return err
		}
		if err := op.record(ctx, stepMoveCA, subject{ID: oldName, To: newName}); err != nil {
			return err
		}
		if err := e.moveCA(oldName, newName); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}

// moveCA moves a renamed project's CA directory to its new name. What a
// deleted project of the new name left there is replaced, as project
// create replaces it.
func (e *Engine) moveCA(oldName, newName string) error {
	if _, err := os.Stat(e.caDir(oldName)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(e.caDir(newName)); err != nil {
		return err
	}
	return os.Rename(e.caDir(oldName), e.caDir(newName))
}

// RenameBranch gives a branch a new name in its project.
func (e *Engine) RenameBranch(ctx context.Context, from, to string) error {
	pn, _, err := ParseRef(from)
	if err != nil {
		return err
	}
	tpn, tbn, err := ParseRef(to)
	if err != nil {
		return err
	}
	if tpn != pn {
		return errdefs.Invalid("%s and %s are in different projects: a branch is renamed within its project (velo branch rename %s %s/%s)", from, to, from, pn, tbn)
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, from)
		if err != nil {
			return err
		}
		if b.Name == MainBranch || tbn == MainBranch {
			return errdefs.FailedPrecondition("%s/main is the project's main branch: it is not renamed, nor renamed to; to make %s the project's main use velo branch promote %s", p.Name, from, from)
		}
		if old, err := e.Store.Q().Branch(ctx, p.ID, tbn); err == nil {
			if old.Protected {
				return errProtected(p, old, "renamed over")
			}
			if old.ID == b.ID {
				return errdefs.Invalid("branch %s is already called %s", from, to)
			}
			return errdefs.AlreadyExists("branch %s already exists; pick another name, or delete it first with velo branch delete %s", to, to)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if err := op.record(ctx, stepRenameBranch, subject{ID: b.ID, To: tbn}); err != nil {
			return err
		}
		if err := e.Store.Q().RenameBranch(ctx, b.ID, tbn); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}

// PromoteResult is what branch promote did.
type PromoteResult struct {
	Main    Conn // the promoted branch, now PROJECT/main
	OldMain Conn // the old main, under its new name
}

// PromoteBranch makes a branch its project's main. The old main stays,
// renamed to oldName (default main-old-DATE), a child of the new main, so
// that a reset of it takes the new main's data. Each server keeps its
// port and password: they go with the data, and nothing restarts.
func (e *Engine) PromoteBranch(ctx context.Context, ref, oldName string) (PromoteResult, error) {
	var res PromoteResult
	if _, _, err := ParseRef(ref); err != nil {
		return res, err
	}
	if oldName != "" {
		if err := ValidateName("branch", oldName); err != nil {
			return res, fmt.Errorf("--name: %w", err)
		}
		if oldName == MainBranch {
			return res, errdefs.Invalid("--name names what the old main is called after the promote; it cannot be main")
		}
	}
	err := e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if b.Name == MainBranch {
			return errdefs.FailedPrecondition("%s/main is already the project's main branch; promote another branch (velo branch list %s)", p.Name, p.Name)
		}
		if p.Source != nil && p.Source.Following {
			return errdefs.FailedPrecondition("project %s's main follows its source (%s): promoting %s would end that; promote is for projects whose main does not follow a source", p.Name, sourceName(p.Source), ref)
		}
		main, err := e.branch(ctx, p, MainBranch)
		if err != nil {
			return err
		}
		if oldName == "" {
			oldName, err = e.freeName(ctx, p, "main-old-"+time.Now().UTC().Format("20060102"))
			if err != nil {
				return err
			}
		} else if taken, err := e.Store.Q().Branch(ctx, p.ID, oldName); err == nil {
			if taken.Protected {
				return errProtected(p, taken, "renamed over")
			}
			return errdefs.AlreadyExists("--name %s: branch %s/%s already exists; pick another name", oldName, p.Name, oldName)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		// One transaction: a kill leaves the old names or the new ones.
		if err := op.record(ctx, stepPromote, subject{ID: b.ID, To: oldName}); err != nil {
			return err
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
			if err := tx.RenameBranch(ctx, main.ID, oldName); err != nil {
				return err
			}
			if err := tx.RenameBranch(ctx, b.ID, MainBranch); err != nil {
				return err
			}
			if err := tx.SetParent(ctx, b.ID, ""); err != nil {
				return err
			}
			if err := tx.SetParent(ctx, main.ID, b.ID); err != nil {
				return err
			}
			// main goes only with its project: it never expires.
			return tx.SetExpiry(ctx, b.ID, time.Time{})
		}); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		main.Name, b.Name = oldName, MainBranch
		res = PromoteResult{Main: e.conn(p, b, false), OldMain: e.conn(p, main, false)}
		return nil
	})
	return res, err
}

// freeName is base, or base-2, base-3... whichever no branch of p has.
func (e *Engine) freeName(ctx context.Context, p state.Project, base string) (string, error) {
	for i := 1; i < 1000; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if _, err := e.Store.Q().Branch(ctx, p.ID, name); errors.Is(err, errdefs.ErrNotFound) {
			return name, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", errdefs.AlreadyExists("branches %s to %s-999 all exist; give the old main a name with --name", base, base)
}

// refreshIdentities writes again the identity file of every branch of
// project projectID (identity.go), which carries the names, parents and
// expiry that rename, promote and branch set change: a rebuild of the
// state from the storage then finds what the records say. The records are
// already changed; a file that cannot be written is a warning, and the
// branch's next start writes it again.
func (e *Engine) refreshIdentities(ctx context.Context, projectID string) {
	p, err := e.Store.Q().ProjectByID(ctx, projectID)
	if err != nil {
		return
	}
	bs, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return
	}
	d, err := e.driver(ctx, p)
	if err != nil {
		return
	}
	for _, b := range bs {
		vol, err := d.Path(ctx, b.VolumeID)
		if err != nil {
			continue
		}
		if err := e.writeIdentity(p, b, dataDir(vol)); err != nil {
			e.Progress.Warn("%v (the branch's next start writes it again)", err)
		}
	}
}
