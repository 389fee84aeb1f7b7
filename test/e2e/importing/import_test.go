package importing

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestImportPhysical imports a running "production" Postgres 15 (pgbench
// writing throughout) on every driver that a following main branches on:
// a row committed on the source shows on main within seconds; a branch
// made while writes go on is consistent (pgbench's invariant), writable,
// and its writes reach neither the source nor main, and it holds nothing
// of the source's credentials; main follows the source again after the
// source restarts; --pitr reaches a moment after the import; status shows
// the streaming; and the source's catalogs and statistics end as they
// began (with --slot, the slot is made and dropped with the project).
func TestImportPhysical(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs", "reflink"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			src := harness.NewProdSource(t, 2)
			e := newEnv(t, d)
			e.Extra = append(e.Extra, "PGPASSWORD="+harness.SourceReplPassword)
			before := src.Fingerprint()
			src.BenchWrites()
			from := fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port)
			withSlot := d == "reflink"
			args := []string{"--from", from}
			if withSlot {
				args = append(args, "--slot")
			}
			r := e.createR("prod", args...)
			if strings.Contains(r.Stdout+r.Stderr, harness.SourceReplPassword) {
				t.Fatalf("project create shows the source's password:\n%s", r)
			}
			if !strings.Contains(r.Stderr, "Base backup") {
				t.Errorf("no base backup step:\n%s", r.Stderr)
			}
			mainPort := e.BranchPort("prod/main")

			// A row committed on the source shows on main within seconds.
			src.SQL("INSERT INTO marks (name) VALUES ('first')")
			waitRow(t, mainPort, "first", 15*time.Second)

			// Status shows where main came from and how it follows.
			var p struct {
				Source struct {
					Mode, Host, State string
					Port              int
					Following         bool
					LagBytes          *int64 `json:"lag_bytes"`
				}
			}
			js := e.OK("project", "get", "prod", "--json").Stdout
			if err := json.Unmarshal([]byte(js), &p); err != nil {
				t.Fatal(err)
			}
			if p.Source.Mode != "physical" || p.Source.Port != src.Port || !p.Source.Following || p.Source.LagBytes == nil ||
				(p.Source.State != "streaming" && p.Source.State != "catching up") {
				t.Errorf("project get --json: source %+v\n%s", p.Source, js)
			}
			if withSlot {
				if got := src.SQL("SELECT count(*) FROM pg_replication_slots WHERE active"); got != "1" {
					t.Errorf("--slot: active slots on the source: %s", got)
				}
			}

			// A branch made while pgbench writes: consistent and writable,
			// its writes seen by neither the source nor main.
			e.OK("branch", "create", "prod/dev")
			harness.PgbenchInvariant(t, "prod/dev", func(q string) string { return e.Psql("prod/dev", q) })
			e.Psql("prod/dev", "INSERT INTO marks (name) VALUES ('on-dev'); UPDATE pgbench_accounts SET abalance = abalance + 1000000 WHERE aid = 1")
			if got := src.SQL("SELECT count(*) FROM marks WHERE name = 'on-dev'"); got != "0" {
				t.Errorf("a write to prod/dev reached the source")
			}
			if got := mustPsqlAt(t, mainPort, "SELECT count(*) FROM marks WHERE name = 'on-dev'"); got != "0" {
				t.Errorf("a write to prod/dev reached prod/main")
			}
			// The branch never connects to the source: nothing of it in its files.
			devData := e.Psql("prod/dev", "SHOW data_directory")
			assertNoSourceIn(t, devData, src.Port)
			if got := e.Psql("prod/dev", "SELECT count(*) FROM pg_stat_wal_receiver"); got != "0" {
				t.Errorf("prod/dev has a walreceiver")
			}
			if got := e.Psql("prod/dev", "SELECT pg_is_in_recovery()"); got != "f" {
				t.Errorf("prod/dev is in recovery")
			}

			// The source restarts: main follows again by itself.
			src.StopBench()
			src.Restart()
			src.BenchWrites()
			src.SQL("INSERT INTO marks (name) VALUES ('after-restart')")
			waitRow(t, mainPort, "after-restart", 60*time.Second)

			// --pitr to a moment after the import: 'before' in, 'after' out.
			src.SQL("INSERT INTO marks (name) VALUES ('before')")
			waitRow(t, mainPort, "before", 15*time.Second)
			time.Sleep(1100 * time.Millisecond)
			target := time.Now().UTC()
			time.Sleep(1100 * time.Millisecond)
			src.SQL("INSERT INTO marks (name) VALUES ('after')")
			waitRow(t, mainPort, "after", 15*time.Second)
			e.OK("branch", "create", "prod/past", "--pitr", target.Format(time.RFC3339Nano))
			if got := e.Rows("prod/past", "SELECT name FROM marks WHERE name IN ('before', 'after') ORDER BY 1"); got != "before" {
				t.Errorf("prod/past as of %s: marks %q, want before only", target, got)
			}
			harness.PgbenchInvariant(t, "prod/past", func(q string) string { return e.Psql("prod/past", q) })
			assertNoSourceIn(t, e.Psql("prod/past", "SHOW data_directory"), src.Port)

			// A following main stays current by itself: refresh refuses it.
			e.Refused([]string{"follows its source and stays current by itself"}, "project", "refresh", "prod")

			src.StopBench()
			e.OK("project", "delete", "prod", "--force")
			time.Sleep(500 * time.Millisecond)
			if after := src.Fingerprint(); after != before {
				t.Errorf("the source changed:\nbefore %s\nafter  %s", before, after)
			}
			if _, err := os.Stat(filepath.Join(e.Home, "sources")); err == nil {
				if left, _ := os.ReadDir(filepath.Join(e.Home, "sources")); len(left) > 0 {
					t.Errorf("project delete left %s/sources/%s", e.Home, left[0].Name())
				}
			}
		})
	}
}

// createR is create that returns the result.
func (e *env) createR(project string, extra ...string) harness.Result {
	e.T.Helper()
	args := []string{"project", "create", project, "--pool", e.Pool}
	if e.Storage == "copy" || e.Storage == "reflink" {
		args = append(args, "--storage", e.Storage)
	}
	return e.OK(append(args, extra...)...)
}

func mustPsqlAt(t testing.TB, port int, q string) string {
	t.Helper()
	out, err := harness.PsqlProd(port, q)
	if err != nil {
		t.Fatalf("psql on port %d: %v\n%s", port, err, out)
	}
	return out
}

// waitRow waits until the mark name shows on the server on port.
func waitRow(t testing.TB, port int, name string, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		out, err := harness.PsqlProd(port, "SELECT count(*) FROM marks WHERE name = '"+name+"'")
		if err == nil && out == "1" {
			t.Logf("mark %s on port %d after %v", name, port, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > within {
			t.Fatalf("mark %s not on port %d after %v (%v %s)", name, port, within, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertNoSourceIn checks a branch's data directory holds none of the
// source's credentials and nothing that would connect to it.
func assertNoSourceIn(t testing.TB, dataDir string, sourcePort int) {
	t.Helper()
	out, _ := exec.Command("grep", "-rlaF", harness.SourceReplPassword, dataDir).CombinedOutput()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("the source's password is in %s", s)
	}
	for _, f := range []string{"standby.signal", "recovery.signal"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			t.Errorf("%s has %s", dataDir, f)
		}
	}
	confs, _ := filepath.Glob(filepath.Join(dataDir, "*.conf"))
	for _, c := range confs {
		b, _ := os.ReadFile(c)
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "#") {
				continue
			}
			if (strings.HasPrefix(l, "primary_conninfo") || strings.HasPrefix(l, "restore_command") || strings.HasPrefix(l, "primary_slot_name")) &&
				(strings.Contains(l, fmt.Sprint(sourcePort)) || strings.Contains(l, "slot") || strings.Contains(l, "passfile")) {
				t.Errorf("%s: %s", c, l)
			}
		}
	}
}
