package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/velohq/velo/internal/state"
)

// dataGone reports whether a branch's volume has lost its Postgres data
// directory (an rm -rf of pgdata, the volume itself left in place). Every
// data directory initdb makes holds PG_VERSION; without it nothing can
// start there, and writing the server's settings or key into it fails.
func dataGone(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return errors.Is(err, os.ErrNotExist)
}

// rebuildFix is the command that gives b data again: a reset from its
// parent (with --force when branches were made from it: they keep their
// own data). A main branch has no parent to rebuild from.
func rebuildFix(p state.Project, b state.Branch, all []state.Branch) string {
	if b.ParentID == "" {
		return fmt.Sprintf("nothing to rebuild %s/%s from (it has no parent); velo project delete %s --force removes the project", p.Name, b.Name, p.Name)
	}
	fix := "velo branch reset " + p.Name + "/" + b.Name
	if len(descendants(all, b.ID)) > 0 {
		fix += " --force"
	}
	return fix + " (rebuilds it from its parent)"
}

// errDataGone is the failure of a command that needs b's data.
func (e *Engine) errDataGone(ctx context.Context, p state.Project, b state.Branch, dir string) error {
	all, _ := e.Store.Q().Branches(ctx, p.ID)
	return fmt.Errorf("branch %s/%s has lost its data directory %s; %s", p.Name, b.Name, dir, rebuildFix(p, b, all))
}

// branchesOf returns the records of a project's branches, as surveyed.
func (s *survey) branchesOf(projectID string) []state.Branch {
	var out []state.Branch
	for _, b := range s.branches {
		if b.p.ID == projectID {
			out = append(out, b.b)
		}
	}
	return out
}
