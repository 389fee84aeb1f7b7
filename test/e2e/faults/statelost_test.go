package faults

import (
	"context"
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

// TestStateLost loses the state database under live servers: truncated,
// moved aside with its backups kept, then moved aside with its backups
// too (only the storage, the processes and the home's secrets are left).
// Velo must say what happened and how to fix it, doctor must never stop,
// remove or destroy what the live servers of the home use, and velo
// doctor --rebuild-state must bring back every project and branch with
// its parent, port and password, the rows untouched.
func TestStateLost(t *testing.T) {
	for _, d := range []string{"btrfs", "copy"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d)
			e.Create("alpha")
			e.Psql("alpha/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)")
			e.OK("branch", "create", "alpha/dev")
			e.Psql("alpha/dev", "INSERT INTO t VALUES (4)")
			e.OK("branch", "create", "alpha/feat", "--parent", "alpha/dev")
			e.OK("branch", "stop", "alpha/feat")
			e.Create("beta")
			e.Psql("beta/main", "CREATE TABLE b (v int); INSERT INTO b VALUES (7)")
			e.OK("snapshot", "create", "alpha/main", "--label", "before the loss")
			// Settings a rebuild must keep: a protection, idle timeouts,
			// the project's default mask (without it, new branches of beta
			// would hold its values).
			e.OK("branch", "protect", "alpha/feat")
			e.OK("branch", "set", "alpha/dev", "--idle", "10m")
			e.OK("project", "set", "alpha", "--idle", "30m")
			maskText := "UPDATE b SET v = 0;\n"
			maskFile := filepath.Join(harness.TmpDir(t, "mask-"), "mask.sql")
			if err := os.WriteFile(maskFile, []byte(maskText), 0o644); err != nil {
				t.Fatal(err)
			}
			e.OK("project", "set", "beta", "--mask", maskFile)
			before := e.BranchList()
			refs := e.readRefs(before)

			t.Run("Corrupt", func(t *testing.T) {
				e.T = t
				db := filepath.Join(e.Home, "state.db")
				info, err := os.Stat(db)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(db, info.Size()/2); err != nil {
					t.Fatal(err)
				}
				for _, args := range [][]string{{"branch", "list"}, {"doctor"}, {"branch", "create", "alpha/x"}} {
					r := e.Run(args...)
					if r.Code != 1 || !strings.Contains(r.Stderr, "corrupt") || !strings.Contains(r.Stderr, db) ||
						!strings.Contains(r.Stderr, "velo doctor --rebuild-state") {
						t.Errorf("velo %s on a truncated state.db: want exit 1 saying it is corrupt, its path and the fix, got %s", strings.Join(args, " "), r)
					}
				}
				r := e.OK("doctor", "--rebuild-state")
				if !strings.Contains(r.Stdout, filepath.Join(e.Home, "backups")) {
					t.Errorf("the rebuild did not start from a backup:\n%s", r.Stdout)
				}
				e.assertSameBranches(before)
				e.assertRowsIntact()
				e.AssertDoctorHealthy()
			})

			t.Run("MovedAside", func(t *testing.T) {
				e.T = t
				aside := moveState(t, e.Home, false)
				r := e.Run("branch", "list")
				if r.Code != 1 || !strings.Contains(r.Stderr, "missing") || !strings.Contains(r.Stderr, "velo doctor --rebuild-state") {
					t.Errorf("branch list with state.db gone and its backups kept: want exit 1 naming the fix, got %s", r)
				}
				if _, err := os.Stat(filepath.Join(e.Home, "state.db")); !os.IsNotExist(err) {
					t.Errorf("velo made a new state.db while its backups exist (%v)", err)
				}
				e.OK("doctor", "--rebuild-state")
				e.assertSameBranches(before)
				e.assertRowsIntact()
				e.AssertDoctorHealthy()
				os.RemoveAll(aside)
			})

			t.Run("LostWithBackups", func(t *testing.T) {
				e.T = t
				moveState(t, e.Home, true)
				var kept []string // what the live servers use
				for _, b := range before {
					if b.State == "running" {
						id := refs.ids[b.Name]
						kept = append(kept, filepath.Join(e.Home, "wal", b.Volume), filepath.Join(e.Home, "run", id), filepath.Join(e.Home, "logs", id+".log"))
					}
				}
				r := e.Run("doctor", "--repair")
				for _, p := range kept {
					if _, err := os.Stat(p); err != nil {
						t.Errorf("doctor --repair with state.db lost removed %s, which a running server uses (%v):\n%s", p, err, r)
					}
				}
				e.assertArchiving(before, refs)
				r = e.Run("doctor")
				if r.Code != 1 || strings.Contains(r.Stdout, "No problems found.") || !strings.Contains(r.Stdout, "velo doctor --rebuild-state") {
					t.Errorf("doctor with the records lost under running servers: want exit 1 naming velo doctor --rebuild-state, got %s", r)
				}

				// A new project in the same pool opens it to doctor: the
				// volumes of the lost records are in plain sight.
				e.Create("gamma")
				r = e.OK("doctor", "--repair", "--dry-run")
				for _, b := range before {
					if strings.Contains(r.Stdout, "would destroy volume "+b.Volume) {
						t.Errorf("repair plans to destroy %s's volume %s:\n%s", b.Name, b.Volume, r.Stdout)
					}
					if !strings.Contains(r.Stdout, b.Volume) {
						t.Errorf("repair does not report %s's volume %s:\n%s", b.Name, b.Volume, r.Stdout)
					}
				}
				if strings.Contains(r.Stdout, "would stop") || !strings.Contains(r.Stdout, "velo doctor --rebuild-state") {
					t.Errorf("repair plans to stop a live server, or does not name the rebuild:\n%s", r.Stdout)
				}
				e.Run("doctor", "--repair")
				e.assertArchiving(before, refs)

				if r := e.Run("doctor", "--rebuild-state"); r.Code != 2 || !strings.Contains(r.Stderr, "--force") {
					t.Errorf("rebuild over a healthy state.db: want exit 2 naming --force, got %s", r)
				}
				r = e.OK("doctor", "--rebuild-state", "--force")
				t.Logf("rebuild:\n%s", r.Stdout)
				e.assertSameBranches(before, "gamma/main")
				e.assertRowsIntact()
				e.OK("branch", "start", "alpha/feat")
				if got := e.Rows("alpha/feat", "SELECT v FROM t ORDER BY v"); got != "1,2,3,4" {
					t.Errorf("alpha/feat after the rebuild has rows %s, want 1,2,3,4", got)
				}
				if r := e.OK("snapshot", "list", "alpha/main"); !strings.Contains(r.Stdout, "before the loss") {
					t.Errorf("the labelled snapshot is not back:\n%s", r.Stdout)
				}
				e.OK("branch", "stop", "alpha/feat")
				e.AssertDoctorHealthy()
				e.assertSettingsKept(maskText)
				// The rebuilt records work for the commands that change things.
				e.OK("branch", "reset", "alpha/dev", "--force")
				if got := e.Rows("alpha/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
					t.Errorf("alpha/dev reset after the rebuild has rows %s", got)
				}
				e.OK("branch", "unprotect", "alpha/feat")
				e.OK("branch", "delete", "alpha/feat")
				e.AssertDoctorHealthy()
			})
			e.T = t
		})
	}
}

// assertSettingsKept checks what the records were given besides branches
// and ports: alpha/feat's protection, alpha/dev's and alpha's idle
// timeouts, beta's default mask (and a new branch of beta masked by it).
func (e *env) assertSettingsKept(mask string) {
	e.T.Helper()
	e.Refused([]string{"protected"}, "branch", "delete", "alpha/feat")
	var dev struct {
		Protected bool   `json:"protected"`
		Idle      int64  `json:"idle_timeout_seconds"`
		From      string `json:"idle_from"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "alpha/dev", "--json").Stdout), &dev); err != nil || dev.Idle != 600 || dev.From != "branch" {
		e.T.Errorf("alpha/dev's idle timeout after the rebuild: %+v (%v), want 600 s of its own", dev, err)
	}
	var alpha, beta struct {
		Idle int64  `json:"idle_timeout_seconds"`
		Mask string `json:"mask"`
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", "alpha", "--json").Stdout), &alpha); err != nil || alpha.Idle != 1800 {
		e.T.Errorf("project alpha's idle timeout after the rebuild: %+v (%v), want 1800 s", alpha, err)
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", "beta", "--json").Stdout), &beta); err != nil || beta.Mask != mask {
		e.T.Errorf("project beta's default mask after the rebuild: %q (%v), want %q", beta.Mask, err, mask)
	}
	e.OK("branch", "create", "beta/masked")
	if got := e.Psql("beta/masked", "SELECT string_agg(v::text, ',') FROM b"); got != "0" {
		e.T.Errorf("beta/masked, made with the rebuilt default mask, has %s, want 0", got)
	}
	e.OK("branch", "delete", "beta/masked")
}

// moveState moves state.db (and with backups, the backups too) out of the
// home, as a user's mistake or a lost disk would, and returns where.
func moveState(t *testing.T, home string, backups bool) string {
	t.Helper()
	aside := harness.TmpDir(t, "velo-aside-")
	names := []string{"state.db", "state.db-wal", "state.db-shm"}
	if backups {
		names = append(names, "backups")
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(home, n), filepath.Join(aside, n)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return aside
}

// assertSameBranches checks that branch list shows the branches of before
// (and the extra ones), with their parents and ports.
func (e *env) assertSameBranches(before []harness.ListedBranch, extra ...string) {
	e.T.Helper()
	got := map[string]harness.ListedBranch{}
	for _, b := range e.BranchList() {
		got[b.Name] = b
	}
	for _, b := range before {
		g, ok := got[b.Name]
		if !ok {
			e.T.Errorf("%s is missing after the rebuild", b.Name)
			continue
		}
		if g.Parent != b.Parent || g.Port != b.Port || g.Volume != b.Volume || g.State != b.State {
			e.T.Errorf("%s after the rebuild = %+v, before %+v", b.Name, g, b)
		}
		delete(got, b.Name)
	}
	for _, n := range extra {
		if _, ok := got[n]; !ok {
			e.T.Errorf("%s is missing after the rebuild", n)
		}
		delete(got, n)
	}
	for n := range got {
		e.T.Errorf("the rebuild made a branch %s that was not there", n)
	}
}

// assertRowsIntact connects to each running branch with the password velo
// branch password gives, with psql, and reads its rows.
func (e *env) assertRowsIntact() {
	e.T.Helper()
	for ref, want := range map[string]string{"alpha/main": "1,2,3", "alpha/dev": "1,2,3,4"} {
		if got := e.Rows(ref, "SELECT v FROM t ORDER BY v"); got != want {
			e.T.Errorf("%s has rows %s, want %s", ref, got, want)
		}
	}
	if got := e.Rows("beta/main", "SELECT v FROM b"); got != "7" {
		e.T.Errorf("beta/main has rows %s, want 7", got)
	}
}

// assertArchiving checks that every running server still archives its WAL:
// a switched segment reaches its archive directory.
func (e *env) assertArchiving(before []harness.ListedBranch, l lostRefs) {
	e.T.Helper()
	for _, b := range before {
		if b.State != "running" {
			continue
		}
		// A switch with nothing written since the last one archives nothing.
		if out, err := l.psqlPort(b.Port, "CREATE TABLE IF NOT EXISTS walcheck (v int); INSERT INTO walcheck VALUES (1)"); err != nil {
			e.T.Errorf("%s: %v: %s", b.Name, err, out)
			continue
		}
		seg, err := l.psqlPort(b.Port, "SELECT pg_walfile_name(pg_switch_wal())")
		if err != nil {
			e.T.Errorf("%s: %v: %s", b.Name, err, seg)
			continue
		}
		path := filepath.Join(e.Home, "wal", b.Volume, seg)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				out, _ := l.psqlPort(b.Port, "SELECT failed_count, last_failed_wal FROM pg_stat_archiver")
				e.T.Errorf("%s did not archive %s within 30 s (pg_stat_archiver: %s)", b.Name, seg, out)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// lostRefs is what a user knew of the branches before the records were
// lost: each branch's ID (from the records) and password.
type lostRefs struct {
	ids       map[string]string // P/B → branch ID
	passwords map[int]string    // port → password
}

func (e *env) readRefs(before []harness.ListedBranch) lostRefs {
	e.T.Helper()
	l := lostRefs{ids: map[string]string{}, passwords: map[int]string{}}
	db := e.StateDB()
	defer db.Close()
	rows, err := db.Query("SELECT p.name || '/' || b.name, b.id FROM branches b JOIN projects p ON p.id = b.project_id")
	if err != nil {
		e.T.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref, id string
		if err := rows.Scan(&ref, &id); err != nil {
			e.T.Fatal(err)
		}
		l.ids[ref] = id
	}
	for _, b := range before {
		l.passwords[b.Port] = e.Conn(b.Name).Password
	}
	return l
}

// psqlPort runs SQL with psql on the server at port, with the password it
// had before the records were lost.
func (l lostRefs) psqlPort(port int, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "localhost", "-p", fmt.Sprint(port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+l.passwords[port], "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
