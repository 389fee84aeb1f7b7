package importing

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
	"github.com/velohq/velo/test/e2e/harness"
)

// importLeftNothing checks that a failed or refused import of src left
// nothing: no project, volume, password file, archive, or slot on the
// source, and nothing doctor finds.
func (e *env) importLeftNothing(src *harness.ProdSource, what string, r harness.Result) {
	e.T.Helper()
	if strings.Contains(r.Stdout+r.Stderr, harness.SourceReplPassword) {
		e.T.Errorf("%s: the output shows the source's password:\n%s", what, r)
	}
	if ps := e.OK("project", "list", "--json").Stdout; strings.TrimSpace(ps) != "[]" {
		e.T.Errorf("%s: a project is left: %s", what, ps)
	}
	for _, dir := range []string{filepath.Join(e.Pool, "velo", "vol"), filepath.Join(e.Home, "sources"), filepath.Join(e.Home, "wal")} {
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			e.T.Errorf("%s: %s holds %s", what, dir, left[0].Name())
		}
	}
	if got := src.SQL("SELECT count(*) FROM pg_replication_slots"); got != "0" {
		e.T.Errorf("%s: %s slots on the source", what, got)
	}
	if d := e.Run("doctor", "--json"); d.Code != 0 {
		e.T.Errorf("%s: doctor finds something: %s", what, d)
	}
}

// TestImportMajorMissing imports a PostgreSQL 17 source with only 15
// installed here (velo run without VELO_PG_BIN, as a new shell would):
// the physical import and a logical one are refused, exit 2, naming the
// major and how to install it, and nothing is made.
func TestImportMajorMissing(t *testing.T) {
	t.Parallel()
	const pg17 = "/opt/velo/pg17/bin"
	if _, err := os.Stat(filepath.Join(pg17, "postgres")); err != nil {
		testenv.Skip(t, "pg17", "needs Postgres 17 as the source (scripts/install-embedded-postgres.sh 17 /opt/velo/pg17)")
	}
	src := harness.NewProdSourceOf(t, pg17, 1)
	if v := src.SQL("SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Fatalf("the source runs %s, not 17", v)
	}
	before := src.Fingerprint()
	e := newEnv(t, "btrfs")
	e.Extra = []string{"VELO_PG_BIN=", "PGPASSWORD=" + harness.SourceReplPassword}
	from := fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"physical", nil, []string{"PostgreSQL 17", "not installed", "postgresql-17", "install-embedded-postgres.sh 17", "--logical"}},
		{"logical", []string{"--logical"}, []string{"PostgreSQL 17", "install"}},
	}
	for _, c := range cases {
		r := e.Run(append([]string{"project", "create", "prod", "--pool", e.Pool, "--from", from}, c.args...)...)
		if r.Code != 2 {
			t.Errorf("%s: want exit 2, got %s", c.name, r)
		}
		for _, w := range c.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: message lacks %q:\n%s", c.name, w, r.Stderr)
			}
		}
		e.importLeftNothing(src, c.name, r)
	}
	if after := src.Fingerprint(); after != before {
		t.Errorf("the source changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestImportPoolFills fills the pool while the base backup is copying
// into it (another writer takes the room the check before the import saw
// free): the import fails (exit 1) saying the pool is full and what to do,
// keeps nothing, doctor finds nothing to mend, and the source is
// untouched; with the room given back, the same command imports.
func TestImportPoolFills(t *testing.T) {
	t.Parallel()
	src := harness.NewProdSource(t, 1)
	src.SQL("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 150000) g")
	before := src.Fingerprint()
	e := newEnvSized(t, "btrfs", 800<<20)
	e.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
	from := fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port)
	filler := filepath.Join(e.Pool, "other-tenant")

	done := make(chan harness.Result, 1)
	go func() {
		r, _ := e.RunErr("project", "create", "prod", "--pool", e.Pool, "--from", from)
		done <- r
	}()
	var r harness.Result
	filled := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !filled; {
		select {
		case r = <-done:
			t.Fatalf("the import ended before the pool could be filled under it: %s", r)
		default:
		}
		if out, err := harness.PsqlProd(src.Port, "SELECT count(*) FROM pg_stat_progress_basebackup"); err == nil && out == "1" {
			// All the room left but a little, at once.
			free := harness.PoolFree(t, e.Pool)
			if out, err := exec.Command("fallocate", "-l", fmt.Sprint(free-(1<<20)), filler).CombinedOutput(); err != nil {
				t.Fatalf("fallocate: %v\n%s", err, out)
			}
			filled = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !filled {
		t.Fatal("the base backup never started")
	}
	r = <-done
	t.Logf("the import with the pool filled under it: %s", r)
	if r.Code != 1 || !strings.Contains(r.Stderr, "no space left on pool") || !strings.Contains(r.Stderr, "larger --pool") ||
		strings.Contains(r.Stderr, "retry when the source is back") {
		t.Errorf("pool filled mid-import: want exit 1 saying the pool is full and what to do, got %s", r)
	}
	held := harness.PoolFree(t, e.Pool)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// btrfs gives a removed file's room back at its next commit.
	if out, err := exec.Command("btrfs", "filesystem", "sync", e.Pool).CombinedOutput(); err != nil {
		t.Fatalf("btrfs filesystem sync: %v\n%s", err, out)
	}
	harness.WaitFreed(t, e.Pool, true, held, 300<<20)
	e.importLeftNothing(src, "pool filled mid-import", r)
	if after := src.Fingerprint(); after != before {
		t.Errorf("the source changed:\nbefore %s\nafter  %s", before, after)
	}

	// With the room back, the same import goes through.
	e.OK("project", "create", "prod", "--pool", e.Pool, "--from", from)
	if got := mustPsqlAt(t, e.BranchPort("prod/main"), "SELECT count(*) FROM big"); got != "150000" {
		t.Errorf("main after the retry: %s rows of big, want 150000", got)
	}
}
