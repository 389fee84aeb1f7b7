package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLifecycle drives the branch lifecycle verbs on btrfs and zfs:
// protection refuses delete, reset, project delete and expiry, --force
// or not; velo prune deletes an expired branch while a protected one
// survives, and keeps an expired branch until its descendants expire too.
func TestLifecycle(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, driver)
			e.create("l")
			e.psql("l/main", "CREATE TABLE t AS SELECT 1 AS v")
			lifecycleProtectAndPrune(t, e)
			lifecycleRenameAndPromote(t, e)
			lifecycleFromSnapshot(t, e)
			lifecycleRestore(t, e)
		})
	}
}

func lifecycleProtectAndPrune(t *testing.T, e *env) {
	e.ok("branch", "create", "l/keep")
	e.ok("branch", "protect", "l/keep")
	protected := []string{"l/keep is protected", "velo branch unprotect l/keep"}
	e.refused(protected, "branch", "delete", "l/keep", "--force")
	e.refused(protected, "branch", "reset", "l/keep", "--force")
	e.refused(protected, "project", "delete", "l", "--force")
	e.refused(protected, "branch", "set", "l/keep", "--ttl", "1h")
	e.refused([]string{"main", "cannot expire"}, "branch", "set", "l/main", "--ttl", "1h")

	e.ok("branch", "create", "l/short", "--ttl", "1s")
	e.ok("branch", "create", "l/tmp", "--expires-at", time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano))
	e.ok("branch", "create", "l/child", "--parent", "l/tmp")
	var b struct {
		ExpiresAt string `json:"expires_at"`
		Protected bool   `json:"protected"`
	}
	if err := json.Unmarshal([]byte(e.ok("branch", "get", "l/short", "--json").stdout), &b); err != nil || b.ExpiresAt == "" {
		t.Errorf("branch get l/short --json: expires_at %q (%v)", b.ExpiresAt, err)
	}
	if r := e.ok("status"); !strings.Contains(r.stdout, "protected") || !strings.Contains(r.stdout, "expire") {
		t.Errorf("status shows neither protection nor expiry:\n%s", r.stdout)
	}
	time.Sleep(1500 * time.Millisecond)

	before := e.snapshotState()
	r := e.ok("prune", "--dry-run")
	if !strings.Contains(r.stdout, "Would delete l/short") || !strings.Contains(r.stdout, "Kept l/tmp") || !strings.Contains(r.stdout, "l/child") {
		t.Errorf("prune --dry-run:\n%s", r.stdout)
	}
	if after := e.snapshotState(); after != before {
		t.Errorf("prune --dry-run changed the state:\nbefore %s\nafter  %s", before, after)
	}
	e.ok("prune")
	names := map[string]bool{}
	for _, b := range e.branchList() {
		names[b.Name] = true
	}
	if names["l/short"] || !names["l/tmp"] || !names["l/child"] || !names["l/keep"] {
		t.Errorf("after prune the branches are %v; want l/short gone, l/tmp, l/child and l/keep kept", names)
	}
	if got := e.rows("l/keep", "SELECT v FROM t"); got != "1" {
		t.Errorf("protected l/keep holds %q after prune, want 1", got)
	}
	// Once its descendant expires too, both go.
	e.ok("branch", "set", "l/child", "--ttl", "1s")
	time.Sleep(1500 * time.Millisecond)
	if r := e.ok("prune"); !strings.Contains(r.stdout, "Deleted l/tmp") || !strings.Contains(r.stdout, "Deleted l/child") {
		t.Errorf("prune after the child expired:\n%s", r.stdout)
	}
	e.ok("branch", "unprotect", "l/keep")
	e.ok("branch", "delete", "l/keep")
}

// lifecycleRenameAndPromote: a renamed branch and project answer on their
// old ports with their data; a rename to a name in use, of main, or across
// projects is refused; a promoted branch is main, branched from as main,
// with the old main kept under the name printed; promote of main refused.
func lifecycleRenameAndPromote(t *testing.T, e *env) {
	e.ok("branch", "create", "l/dev")
	e.psql("l/dev", "INSERT INTO t VALUES (2)")
	e.ok("branch", "create", "l/feat", "--parent", "l/dev")
	e.ok("branch", "create", "l/other")
	e.ok("branch", "protect", "l/other")
	devPort, mainPort := e.conn("l/dev").Port, e.conn("l/main").Port

	e.refused([]string{"l/other is protected", "renamed over"}, "branch", "rename", "l/dev", "l/other")
	e.ok("branch", "unprotect", "l/other")
	e.refused([]string{"l/other already exists"}, "branch", "rename", "l/dev", "l/other")
	e.refused([]string{"main branch", "velo branch promote"}, "branch", "rename", "l/main", "l/trunk")
	e.refused([]string{"different projects"}, "branch", "rename", "l/dev", "m/dev")
	e.refused([]string{"already the project's main"}, "branch", "promote", "l/main")

	e.ok("branch", "rename", "l/dev", "l/work")
	if c := e.conn("l/work"); c.Port != devPort {
		t.Errorf("l/work is on port %d, was %d as l/dev", c.Port, devPort)
	}
	if got := e.rows("l/work", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("renamed l/work holds %s, want 1,2", got)
	}
	var feat struct{ Parent string }
	if err := json.Unmarshal([]byte(e.ok("branch", "get", "l/feat", "--json").stdout), &feat); err != nil || feat.Parent != "l/work" {
		t.Errorf("l/feat's parent after the rename: %q (%v), want l/work", feat.Parent, err)
	}

	e.ok("project", "rename", "l", "m")
	e.refused([]string{"project l does not exist"}, "project", "get", "l")
	c := e.conn("m/work")
	if c.Port != devPort {
		t.Errorf("m/work is on port %d, was %d", c.Port, devPort)
	}
	// The old port, verified against the project's CA at its new place.
	var proj struct {
		CACert string `json:"ca_cert"`
	}
	if err := json.Unmarshal([]byte(e.ok("project", "get", "m", "--json").stdout), &proj); err != nil || !strings.Contains(proj.CACert, "/projects/m/") {
		t.Errorf("project m's CA: %q (%v), want it under projects/m/", proj.CACert, err)
	}
	e.ok("branch", "restart", "m/work")
	if got := e.rows("m/work", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("m/work after restart holds %s, want 1,2", got)
	}

	r := e.ok("branch", "promote", "m/work")
	old := "m/main-old-" + time.Now().UTC().Format("20060102")
	if !strings.Contains(r.stdout, old) {
		t.Errorf("promote does not print the old main's name %s:\n%s", old, r.stdout)
	}
	if c := e.conn("m/main"); c.Port != devPort {
		t.Errorf("new m/main is on port %d, want %d (it kept its port)", c.Port, devPort)
	}
	if c := e.conn(old); c.Port != mainPort {
		t.Errorf("%s is on port %d, want %d", old, c.Port, mainPort)
	}
	// The identity file beside the data says the new names (a rebuild of
	// the state from the storage reads it).
	var got struct {
		DataDir string `json:"data_dir"`
	}
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "m/main", "--json").stdout), &got)
	var id struct {
		Project struct{ Name string } `json:"project"`
		Branch  struct {
			Name     string
			ParentID string `json:"parent_id"`
		} `json:"branch"`
	}
	if raw, err := os.ReadFile(filepath.Join(filepath.Dir(got.DataDir), "velo-volume.json")); err != nil || json.Unmarshal(raw, &id) != nil || id.Project.Name != "m" || id.Branch.Name != "main" || id.Branch.ParentID != "" {
		t.Errorf("m/main's identity after rename and promote: %+v (%v); want project m, branch main, no parent", id, err)
	}
	e.ok("branch", "create", "m/next")
	if got := e.rows("m/next", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("a branch of the new main holds %s, want 1,2", got)
	}
	if got := e.rows(old, "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("the old main holds %s, want 1", got)
	}
	// The old main is an ordinary branch now: it can go.
	e.ok("branch", "delete", old, "--force")
	if r := e.ok("doctor"); strings.Contains(r.stdout, "FAIL") {
		t.Errorf("doctor after rename and promote:\n%s", r.stdout)
	}
}

// TestLifecycleRenameKilled kills project rename after it renamed the
// records and before it moved the CA directory: velo doctor --repair
// moves it, and the branches verify against the same CA.
func TestLifecycleRenameKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.create("k")
	var before struct {
		CACert string `json:"ca_cert"`
	}
	_ = json.Unmarshal([]byte(e.ok("project", "get", "k", "--json").stdout), &before)
	ca, err := os.ReadFile(before.CACert)
	if err != nil {
		t.Fatal(err)
	}
	// Killed at step 1 (journalled, nothing done), then at step 2 (the
	// records renamed, the CA not moved yet).
	e.extra = []string{"VELO_FAULT=step:1"}
	e.run("project", "rename", "k", "z")
	e.extra = nil
	e.ok("doctor", "--repair")
	e.ok("project", "get", "k")
	e.extra = []string{"VELO_FAULT=step:2"}
	e.run("project", "rename", "k", "q")
	e.extra = nil
	if _, err := os.Stat(filepath.Join(e.home, "projects", "k")); err != nil {
		t.Fatalf("the kill at step 2 left no CA under projects/k: %v", err)
	}
	if r := e.run("doctor"); !strings.Contains(r.stdout, "rename was interrupted") {
		t.Errorf("doctor does not report the interrupted rename:\n%s", r.stdout)
	}
	e.ok("doctor", "--repair")
	if r := e.run("doctor"); r.code != 0 {
		t.Errorf("doctor after the repair: %s", r)
	}
	got, err := os.ReadFile(filepath.Join(e.home, "projects", "q", "ca.crt"))
	if err != nil || string(got) != string(ca) {
		t.Errorf("project q's CA after the repair: %v; want the CA k had", err)
	}
	e.psql("q/main", "SELECT 1")
}

// lifecycleFromSnapshot: a branch made from a snapshot (by a prefix of its
// ID) holds the snapshot's rows, not its branch's current ones.
func lifecycleFromSnapshot(t *testing.T, e *env) {
	id := strings.TrimSpace(e.ok("snapshot", "create", "m/main", "--label", "before-3").stdout)
	e.psql("m/main", "INSERT INTO t VALUES (3)")
	e.refused([]string{"without --pitr or --parent"}, "branch", "create", "m/x", "--from-snapshot", id, "--pitr", "1m ago")
	e.refused([]string{"no snapshot has an ID starting with"}, "branch", "create", "m/x", "--from-snapshot", "zzzz")
	e.ok("branch", "create", "m/then", "--from-snapshot", id[:6])
	if got := e.rows("m/then", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("m/then from snapshot %s holds %s, want 1,2", id, got)
	}
	var b struct{ Parent string }
	if err := json.Unmarshal([]byte(e.ok("branch", "get", "m/then", "--json").stdout), &b); err != nil || b.Parent != "m/main" {
		t.Errorf("m/then's parent %q (%v), want m/main", b.Parent, err)
	}
}

// lifecycleRestore: a branch put back to a moment of its WAL and to one of
// its snapshots answers on its old port with its old password and holds
// that moment's rows; the state it replaced is a branch of its own, queried
// for the rows the restore took away; --discard keeps none. A protected
// branch, a moment before its history (the reachable range said), and a
// snapshot of another branch are refused, with nothing changed.
func lifecycleRestore(t *testing.T, e *env) {
	e.ok("branch", "create", "m/r")
	id := strings.TrimSpace(e.ok("snapshot", "create", "m/r", "--label", "r-start").stdout)
	e.psql("m/r", "INSERT INTO t VALUES (4)")
	time.Sleep(1100 * time.Millisecond)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	e.psql("m/r", "INSERT INTO t VALUES (5)")
	e.ok("branch", "create", "m/rchild", "--parent", "m/r")
	old := e.conn("m/r")
	kept := "m/r-old-" + time.Now().UTC().Format("20060102")

	mainSnap := strings.TrimSpace(e.ok("snapshot", "create", "m/main").stdout)
	before := e.snapshotState()
	e.refused([]string{"give one of --to TIME and --snapshot ID"}, "branch", "restore", "m/r")
	e.refused([]string{"give one of --to TIME and --snapshot ID"}, "branch", "restore", "m/r", "--to", at, "--snapshot", id)
	e.refused([]string{"earliest reachable moment is", "latest reachable moment"}, "branch", "restore", "m/r", "--to", "2 hours ago")
	e.refused([]string{"is of branch m/main, not of m/r", "--from-snapshot"}, "branch", "restore", "m/r", "--snapshot", mainSnap)
	e.refused([]string{"m/rchild", "--discard would drop"}, "branch", "restore", "m/r", "--to", at, "--discard")
	e.ok("branch", "protect", "m/r")
	e.refused([]string{"m/r is protected", "cannot be restored"}, "branch", "restore", "m/r", "--to", at)
	e.ok("branch", "unprotect", "m/r")
	if after := e.snapshotState(); after != before {
		t.Errorf("refused restores changed the state:\nbefore %s\nafter  %s", before, after)
	}

	r := e.ok("branch", "restore", "m/r", "--to", at)
	if !strings.Contains(r.stdout, kept) {
		t.Errorf("restore does not print the kept branch %s:\n%s", kept, r.stdout)
	}
	// A client of the branch, with the port and password it had.
	if got := psqlWith(t, old, "SELECT v FROM t ORDER BY v"); got != "1,2,3,4" {
		t.Errorf("m/r restored to %s holds %s on its old port and password, want 1,2,3,4", at, got)
	}
	if got := e.rows(kept, "SELECT v FROM t ORDER BY v"); got != "1,2,3,4,5" {
		t.Errorf("%s, the replaced state, holds %s, want 1,2,3,4,5", kept, got)
	}
	var child struct{ Parent string }
	if err := json.Unmarshal([]byte(e.ok("branch", "get", "m/rchild", "--json").stdout), &child); err != nil || child.Parent != kept {
		t.Errorf("m/rchild's parent after the restore: %q (%v), want %s (it was made from the replaced data)", child.Parent, err, kept)
	}

	e.ok("branch", "restore", "m/r", "--snapshot", id[:7], "--discard")
	if got := psqlWith(t, old, "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("m/r restored to snapshot %s holds %s, want 1,2,3", id, got)
	}
	for _, b := range e.branchList() {
		if strings.HasPrefix(b.Name, kept+"-") {
			t.Errorf("restore --discard kept %s", b.Name)
		}
	}
	// A stopped branch stays stopped, restored.
	e.ok("branch", "stop", "m/r")
	e.ok("branch", "restore", "m/r", "--snapshot", id, "--name", "r-before")
	for _, b := range e.branchList() {
		if (b.Name == "m/r" || b.Name == "m/r-before") && b.State != "stopped" {
			t.Errorf("after restoring stopped m/r, %s is %s, want stopped", b.Name, b.State)
		}
	}
	e.ok("branch", "start", "m/r-before")
	if got := e.rows("m/r-before", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("m/r-before holds %s, want 1,2,3", got)
	}
	if r := e.ok("doctor"); strings.Contains(r.stdout, "FAIL") {
		t.Errorf("doctor after the restores:\n%s", r.stdout)
	}
}

// psqlWith runs SQL with the real psql on a connection as a client holds
// it (port and password), one column's rows joined by commas.
func psqlWith(t *testing.T, c connInfo, sql string) string {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "localhost", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("psql on port %d: %v\n%s", c.Port, err, out)
	}
	return strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", ",")
}
