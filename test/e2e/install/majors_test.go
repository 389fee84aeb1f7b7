package install

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
	e.Create("newest")
	if v := e.Psql("newest/main", "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Errorf("default major: server_version_num = %s, want 17xxxx", v)
	}
	for _, major := range []string{"15", "17"} {
		name := "pg" + major
		e.Create(name, "--pg-version", major)
		e.Psql(name+"/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('from main');`)
		e.OK("branch", "create", name+"/dev")
		e.Psql(name+"/dev", `INSERT INTO t VALUES ('from dev')`)
		if v := e.Psql(name+"/dev", "SHOW server_version_num"); !strings.HasPrefix(v, major) {
			t.Errorf("%s/dev: server_version_num = %s", name, v)
		}
		if got := e.Rows(name+"/main", "SELECT v FROM t ORDER BY v"); got != "from main" {
			t.Errorf("%s/main = %s", name, got)
		}
		e.OK("branch", "reset", name+"/dev")
		if got := e.Rows(name+"/dev", "SELECT v FROM t ORDER BY v"); got != "from main" {
			t.Errorf("%s/dev after reset = %s", name, got)
		}
	}
	r := e.OK("project", "get", "pg15")
	if !strings.Contains(r.Stdout, "PostgreSQL: 15") {
		t.Errorf("project get pg15:\n%s", r.Stdout)
	}
}
