package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
			e.create("alpha")
			e.psql("alpha/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)")
			e.ok("branch", "create", "alpha/dev")
			e.psql("alpha/dev", "INSERT INTO t VALUES (4)")
			e.ok("branch", "create", "alpha/feat", "--parent", "alpha/dev")
			e.ok("branch", "stop", "alpha/feat")
			e.create("beta")
			e.psql("beta/main", "CREATE TABLE b (v int); INSERT INTO b VALUES (7)")
			e.ok("snapshot", "create", "alpha/main", "--label", "before the loss")
			before := e.branchList()
			refs := e.readRefs(before)

			t.Run("Corrupt", func(t *testing.T) {
				e.t = t
				db := filepath.Join(e.home, "state.db")
				info, err := os.Stat(db)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(db, info.Size()/2); err != nil {
					t.Fatal(err)
				}
				for _, args := range [][]string{{"branch", "list"}, {"doctor"}, {"branch", "create", "alpha/x"}} {
					r := e.run(args...)
					if r.code != 1 || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, db) ||
						!strings.Contains(r.stderr, "velo doctor --rebuild-state") {
						t.Errorf("velo %s on a truncated state.db: want exit 1 saying it is corrupt, its path and the fix, got %s", strings.Join(args, " "), r)
					}
				}
				r := e.ok("doctor", "--rebuild-state")
				if !strings.Contains(r.stdout, filepath.Join(e.home, "backups")) {
					t.Errorf("the rebuild did not start from a backup:\n%s", r.stdout)
				}
				e.assertSameBranches(before)
				e.assertRowsIntact()
				e.assertDoctorHealthy()
			})

			t.Run("MovedAside", func(t *testing.T) {
				e.t = t
				aside := moveState(t, e.home, false)
				r := e.run("branch", "list")
				if r.code != 1 || !strings.Contains(r.stderr, "missing") || !strings.Contains(r.stderr, "velo doctor --rebuild-state") {
					t.Errorf("branch list with state.db gone and its backups kept: want exit 1 naming the fix, got %s", r)
				}
				if _, err := os.Stat(filepath.Join(e.home, "state.db")); !os.IsNotExist(err) {
					t.Errorf("velo made a new state.db while its backups exist (%v)", err)
				}
				e.ok("doctor", "--rebuild-state")
				e.assertSameBranches(before)
				e.assertRowsIntact()
				e.assertDoctorHealthy()
				os.RemoveAll(aside)
			})

			t.Run("LostWithBackups", func(t *testing.T) {
				e.t = t
				moveState(t, e.home, true)
				var kept []string // what the live servers use
				for _, b := range before {
					if b.State == "running" {
						id := refs.ids[b.Name]
						kept = append(kept, filepath.Join(e.home, "wal", b.Volume), filepath.Join(e.home, "run", id), filepath.Join(e.home, "logs", id+".log"))
					}
				}
				r := e.run("doctor", "--repair")
				for _, p := range kept {
					if _, err := os.Stat(p); err != nil {
						t.Errorf("doctor --repair with state.db lost removed %s, which a running server uses (%v):\n%s", p, err, r)
					}
				}
				e.assertArchiving(before, refs)
				r = e.run("doctor")
				if r.code != 1 || strings.Contains(r.stdout, "No problems found.") || !strings.Contains(r.stdout, "velo doctor --rebuild-state") {
					t.Errorf("doctor with the records lost under running servers: want exit 1 naming velo doctor --rebuild-state, got %s", r)
				}

				// A new project in the same pool opens it to doctor: the
				// volumes of the lost records are in plain sight.
				e.create("gamma")
				r = e.ok("doctor", "--repair", "--dry-run")
				for _, b := range before {
					if strings.Contains(r.stdout, "would destroy volume "+b.Volume) {
						t.Errorf("repair plans to destroy %s's volume %s:\n%s", b.Name, b.Volume, r.stdout)
					}
					if !strings.Contains(r.stdout, b.Volume) {
						t.Errorf("repair does not report %s's volume %s:\n%s", b.Name, b.Volume, r.stdout)
					}
				}
				if strings.Contains(r.stdout, "would stop") || !strings.Contains(r.stdout, "velo doctor --rebuild-state") {
					t.Errorf("repair plans to stop a live server, or does not name the rebuild:\n%s", r.stdout)
				}
				e.run("doctor", "--repair")
				e.assertArchiving(before, refs)

				if r := e.run("doctor", "--rebuild-state"); r.code != 2 || !strings.Contains(r.stderr, "--force") {
					t.Errorf("rebuild over a healthy state.db: want exit 2 naming --force, got %s", r)
				}
				r = e.ok("doctor", "--rebuild-state", "--force")
				t.Logf("rebuild:\n%s", r.stdout)
				e.assertSameBranches(before, "gamma/main")
				e.assertRowsIntact()
				e.ok("branch", "start", "alpha/feat")
				if got := e.rows("alpha/feat", "SELECT v FROM t ORDER BY v"); got != "1,2,3,4" {
					t.Errorf("alpha/feat after the rebuild has rows %s, want 1,2,3,4", got)
				}
				if r := e.ok("snapshot", "list", "alpha/main"); !strings.Contains(r.stdout, "before the loss") {
					t.Errorf("the labelled snapshot is not back:\n%s", r.stdout)
				}
				e.ok("branch", "stop", "alpha/feat")
				e.assertDoctorHealthy()
				// The rebuilt records work for the commands that change things.
				e.ok("branch", "reset", "alpha/dev", "--force")
				if got := e.rows("alpha/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
					t.Errorf("alpha/dev reset after the rebuild has rows %s", got)
				}
				e.ok("branch", "delete", "alpha/feat")
				e.assertDoctorHealthy()
			})
			e.t = t
		})
	}
}

// moveState moves state.db (and with backups, the backups too) out of the
// home, as a user's mistake or a lost disk would, and returns where.
func moveState(t *testing.T, home string, backups bool) string {
	t.Helper()
	aside := tmpDir(t, "velo-aside-")
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
func (e *env) assertSameBranches(before []listedBranch, extra ...string) {
	e.t.Helper()
	got := map[string]listedBranch{}
	for _, b := range e.branchList() {
		got[b.Name] = b
	}
	for _, b := range before {
		g, ok := got[b.Name]
		if !ok {
			e.t.Errorf("%s is missing after the rebuild", b.Name)
			continue
		}
		if g.Parent != b.Parent || g.Port != b.Port || g.Volume != b.Volume || g.State != b.State {
			e.t.Errorf("%s after the rebuild = %+v, before %+v", b.Name, g, b)
		}
		delete(got, b.Name)
	}
	for _, n := range extra {
		if _, ok := got[n]; !ok {
			e.t.Errorf("%s is missing after the rebuild", n)
		}
		delete(got, n)
	}
	for n := range got {
		e.t.Errorf("the rebuild made a branch %s that was not there", n)
	}
}

// assertRowsIntact connects to each running branch with the password velo
// branch password gives, with psql, and reads its rows.
func (e *env) assertRowsIntact() {
	e.t.Helper()
	for ref, want := range map[string]string{"alpha/main": "1,2,3", "alpha/dev": "1,2,3,4"} {
		if got := e.rows(ref, "SELECT v FROM t ORDER BY v"); got != want {
			e.t.Errorf("%s has rows %s, want %s", ref, got, want)
		}
	}
	if got := e.rows("beta/main", "SELECT v FROM b"); got != "7" {
		e.t.Errorf("beta/main has rows %s, want 7", got)
	}
}

// assertArchiving checks that every running server still archives its WAL:
// a switched segment reaches its archive directory.
func (e *env) assertArchiving(before []listedBranch, l lostRefs) {
	e.t.Helper()
	for _, b := range before {
		if b.State != "running" {
			continue
		}
		// A switch with nothing written since the last one archives nothing.
		if out, err := l.psqlPort(b.Port, "CREATE TABLE IF NOT EXISTS walcheck (v int); INSERT INTO walcheck VALUES (1)"); err != nil {
			e.t.Errorf("%s: %v: %s", b.Name, err, out)
			continue
		}
		seg, err := l.psqlPort(b.Port, "SELECT pg_walfile_name(pg_switch_wal())")
		if err != nil {
			e.t.Errorf("%s: %v: %s", b.Name, err, seg)
			continue
		}
		path := filepath.Join(e.home, "wal", b.Volume, seg)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				out, _ := l.psqlPort(b.Port, "SELECT failed_count, last_failed_wal FROM pg_stat_archiver")
				e.t.Errorf("%s did not archive %s within 30 s (pg_stat_archiver: %s)", b.Name, seg, out)
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

func (e *env) readRefs(before []listedBranch) lostRefs {
	e.t.Helper()
	l := lostRefs{ids: map[string]string{}, passwords: map[int]string{}}
	db := e.stateDB()
	defer db.Close()
	rows, err := db.Query("SELECT p.name || '/' || b.name, b.id FROM branches b JOIN projects p ON p.id = b.project_id")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref, id string
		if err := rows.Scan(&ref, &id); err != nil {
			e.t.Fatal(err)
		}
		l.ids[ref] = id
	}
	for _, b := range before {
		l.passwords[b.Port] = e.conn(b.Name).Password
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
