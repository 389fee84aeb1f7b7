package importing

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestImportFaults: every way a physical import can be refused or fail
// gives a clear error naming the fix, exit 2 for bad input and 1 for a
// failure, and leaves nothing behind: no project, volume, server, archive,
// password file, or slot on the source, whose catalogs and statistics end
// as they began.
func TestImportFaults(t *testing.T) {
	src := harness.NewProdSource(t, 1)
	// Big enough that a base backup lasts long enough to be cut short,
	// and that a small pool cannot hold it.
	src.SQL("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 150000) g")
	before := src.Fingerprint()
	e := newEnv(t, "copy")
	url := func(user string) string {
		return fmt.Sprintf("postgresql://%s@127.0.0.1:%d/postgres", user, src.Port)
	}
	create := func(password string, args ...string) harness.Result {
		t.Helper()
		e.Extra = []string{"PGPASSWORD=" + password}
		defer func() { e.Extra = nil }()
		return e.Run(append([]string{"project", "create", "prod", "--pool", e.Pool, "--storage", "copy"}, args...)...)
	}
	nothingLeft := func(what string, r harness.Result) {
		t.Helper()
		e.importLeftNothing(src, what, r)
	}
	cases := []struct {
		name, password string
		args           []string
		code           int
		want           []string
	}{
		{"unreachable", harness.SourceReplPassword, []string{"--from", "postgresql://repl@127.0.0.1:1/postgres"}, 1, []string{"cannot reach source", "listens there"}},
		{"wrong password", "not-the-password", []string{"--from", url("repl")}, 2, []string{"refused the password of role repl", "PGPASSWORD"}},
		{"no REPLICATION", harness.SourceReplPassword, []string{"--from", url("norepl")}, 2, []string{"lacks REPLICATION", `ALTER ROLE "norepl" REPLICATION`, "--logical"}},
		{"pg_hba refuses replication", harness.SourceReplPassword, []string{"--from", url("repl2")}, 2, []string{"pg_hba.conf", "host    replication    repl2    127.0.0.1/32    scram-sha-256"}},
		{"not a SOURCE", harness.SourceReplPassword, []string{"--from", "db.example.com"}, 2, []string{"neither a postgresql:// URL nor service=NAME"}},
		{"--slot with --no-follow", harness.SourceReplPassword, []string{"--from", url("repl"), "--slot", "--no-follow"}, 2, []string{"drop one of them"}},
		{"--database without --logical", harness.SourceReplPassword, []string{"--from", url("repl"), "--database", "x"}, 2, []string{"add --logical"}},
		{"another major", harness.SourceReplPassword, []string{"--from", url("repl"), "--pg-version", "17"}, 2, []string{"runs the source's major (15)"}},
	}
	for _, c := range cases {
		r := create(c.password, c.args...)
		if r.Code != c.code {
			t.Errorf("%s: want exit %d, got %s", c.name, c.code, r)
		}
		for _, w := range c.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: message lacks %q:\n%s", c.name, w, r.Stderr)
			}
		}
		nothingLeft(c.name, r)
	}

	// A pool without room for the source: refused before anything is made.
	small := newEnvSized(t, "btrfs", 200<<20)
	small.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
	r := small.Run("project", "create", "prod", "--pool", small.Pool, "--from", url("repl"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "the source holds") || !strings.Contains(r.Stderr, "larger --pool") {
		t.Errorf("small pool: want a refusal naming the room needed, got %s", r)
	}
	if left, _ := os.ReadDir(filepath.Join(small.Pool, "velo", "vol")); len(left) > 0 {
		t.Errorf("small pool: a volume is left: %s", left[0].Name())
	}

	// The source was never written to. (Its statistics are compared
	// before the stop below, which as a crash resets them.)
	if after := src.Fingerprint(); after != before {
		t.Errorf("the source changed:\nbefore %s\nafter  %s", before, after)
	}

	// The source goes away in the middle of the base backup.
	done := make(chan harness.Result, 1)
	go func() {
		e2 := *e
		e2.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
		r, _ := e2.RunErr("project", "create", "prod", "--pool", e.Pool, "--storage", "copy", "--from", url("repl"))
		done <- r
	}()
	stopped := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !stopped; {
		select {
		case r = <-done:
			t.Fatalf("the import ended before the source could be stopped under it: %s", r)
		default:
		}
		out, err := harness.PsqlProd(src.Port, "SELECT phase FROM pg_stat_progress_basebackup")
		if err == nil && strings.Contains(out, "streaming database files") {
			src.AsPostgres(harness.PG15+"/pg_ctl", "-D", src.Data(), "-m", "immediate", "-w", "stop")
			stopped = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !stopped {
		t.Fatal("the base backup never started streaming")
	}
	r = <-done
	src.Start()
	if r.Code != 1 || !strings.Contains(r.Stderr, "base backup of repl@127.0.0.1") || !strings.Contains(r.Stderr, "retry when the source is back") {
		t.Errorf("source gone mid-backup: want exit 1 naming the backup and the retry, got %s", r)
	}
	nothingLeft("source gone mid-backup", r)

	// With the source back, --no-follow takes one copy and promotes it:
	// main is writable with Velo's password and reaches nothing of the
	// source.
	r = create(harness.SourceReplPassword, "--from", url("repl"), "--no-follow")
	if r.Code != 0 {
		t.Fatalf("--no-follow: %s", r)
	}
	if got := e.Psql("prod/main", "SELECT pg_is_in_recovery(), count(*) FROM sentinel"); got != "f|100" {
		t.Errorf("--no-follow main: recovery and sentinel rows %s, want f|100", got)
	}
	e.Psql("prod/main", "INSERT INTO sentinel VALUES (1000, 'on main')")
	if got := src.SQL("SELECT count(*) FROM sentinel WHERE id = 1000"); got != "0" {
		t.Errorf("a write to a --no-follow main reached the source")
	}
	assertNoSourceIn(t, e.Psql("prod/main", "SHOW data_directory"), src.Port)
	if left, _ := os.ReadDir(filepath.Join(e.Home, "sources")); len(left) > 0 {
		t.Errorf("--no-follow keeps the source's password in %s", left[0].Name())
	}
	if !strings.Contains(e.OK("project", "get", "prod").Stdout, "not following") {
		t.Errorf("project get does not say main does not follow")
	}
}
