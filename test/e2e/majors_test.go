package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/testenv"
)

// TestTwoMajors runs projects on Debian's Postgres 15 and on a second major
// (17, from the npm package, found through VELO_PG_BIN), side by side.
func TestTwoMajors(t *testing.T) {
	installs, err := pg.FindInstalls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	majors := map[int]bool{}
	for _, in := range installs {
		majors[in.Major] = true
	}
	if !majors[15] || !majors[17] {
		testenv.Skip(t, "pg17", "needs Postgres 15 and 17 (scripts/install-embedded-postgres.sh 17 /opt/velo/pg17; VELO_PG_BIN=/opt/velo/pg17/bin)")
	}
	e := newEnv(t, "btrfs")
	// The default is the highest major installed.
	e.create("newest")
	if v := e.psql("newest/main", "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Errorf("default major: server_version_num = %s, want 17xxxx", v)
	}
	for _, major := range []string{"15", "17"} {
		name := "pg" + major
		e.create(name, "--pg-version", major)
		e.psql(name+"/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('from main');`)
		e.ok("branch", "create", name+"/dev")
		e.psql(name+"/dev", `INSERT INTO t VALUES ('from dev')`)
		if v := e.psql(name+"/dev", "SHOW server_version_num"); !strings.HasPrefix(v, major) {
			t.Errorf("%s/dev: server_version_num = %s", name, v)
		}
		if got := e.rows(name+"/main", "SELECT v FROM t ORDER BY v"); got != "from main" {
			t.Errorf("%s/main = %s", name, got)
		}
		e.ok("branch", "reset", name+"/dev")
		if got := e.rows(name+"/dev", "SELECT v FROM t ORDER BY v"); got != "from main" {
			t.Errorf("%s/dev after reset = %s", name, got)
		}
	}
	r := e.ok("project", "get", "pg15")
	if !strings.Contains(r.stdout, "PostgreSQL: 15") {
		t.Errorf("project get pg15:\n%s", r.stdout)
	}
}
