package install

import (
	"strings"
	"testing"
)

// TestMissingMajorExitCode: a project whose Postgres major is no longer
// found (VELO_PG_BIN unset in a new shell) is an environment problem, exit
// code 1, not bad input; the message names the major and the fix, and
// nothing changes. At project create, the same missing major is a wrong
// --pg-version: exit 2.
func TestMissingMajorExitCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	e.Create("env", "--pg-version", "17")
	before := e.SnapshotState()
	e.Extra = append(e.Extra, "VELO_PG_BIN=")
	r := e.Run("branch", "create", "env/dev")
	if r.Code != 1 || !strings.Contains(r.Stderr, "PostgreSQL 17 is not installed") || !strings.Contains(r.Stderr, "VELO_PG_BIN") {
		t.Errorf("branch create with the major gone: want exit 1 naming PostgreSQL 17 and VELO_PG_BIN, got %s", r)
	}
	e.Extra = e.Extra[:len(e.Extra)-1]
	if after := e.SnapshotState(); after != before {
		t.Errorf("a missing major changed the branches:\nbefore %s\nafter  %s", before, after)
	}
	e.Refused([]string{"PostgreSQL 9 is not installed", "found"}, "project", "create", "old", "--pg-version", "9")
}
