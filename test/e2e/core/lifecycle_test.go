package core

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

// TestLifecycle drives the branch lifecycle verbs on btrfs and zfs:
// protection refuses delete, reset, project delete and expiry, --force
// or not; velo prune deletes an expired branch while a protected one
// survives, and keeps an expired branch until its descendants expire too.
func TestLifecycle(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, driver)
			e.Create("l")
			e.Psql("l/main", "CREATE TABLE t AS SELECT 1 AS v")
			lifecycleProtectAndPrune(t, e)
			lifecycleRenameAndPromote(t, e)
			lifecycleFromSnapshot(t, e)
			lifecycleRestore(t, e)
		})
	}
}

func lifecycleProtectAndPrune(t *testing.T, e *env) {
	e.OK("branch", "create", "l/keep")
	e.OK("branch", "protect", "l/keep")
	protected := []string{"l/keep is protected", "velo branch unprotect l/keep"}
	e.Refused(protected, "branch", "delete", "l/keep", "--force")
	e.Refused(protected, "branch", "reset", "l/keep", "--force")
	e.Refused(protected, "project", "delete", "l", "--force")
	e.Refused(protected, "branch", "set", "l/keep", "--ttl", "1h")
	e.Refused([]string{"main", "cannot expire"}, "branch", "set", "l/main", "--ttl", "1h")

	e.OK("branch", "create", "l/short", "--ttl", "1s")
	e.OK("branch", "create", "l/tmp", "--expires-at", time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano))
	e.OK("branch", "create", "l/child", "--parent", "l/tmp")
	var b struct {
		ExpiresAt string `json:"expires_at"`
		Protected bool   `json:"protected"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "l/short", "--json").Stdout), &b); err != nil || b.ExpiresAt == "" {
		t.Errorf("branch get l/short --json: expires_at %q (%v)", b.ExpiresAt, err)
	}
	if r := e.OK("status"); !strings.Contains(r.Stdout, "protected") || !strings.Contains(r.Stdout, "expire") {
		t.Errorf("status shows neither protection nor expiry:\n%s", r.Stdout)
	}
	time.Sleep(1500 * time.Millisecond)

	before := e.SnapshotState()
	r := e.OK("prune", "--dry-run")
	if !strings.Contains(r.Stdout, "Would delete l/short") || !strings.Contains(r.Stdout, "Kept l/tmp") || !strings.Contains(r.Stdout, "l/child") {
		t.Errorf("prune --dry-run:\n%s", r.Stdout)
	}
	if after := e.SnapshotState(); after != before {
		t.Errorf("prune --dry-run changed the state:\nbefore %s\nafter  %s", before, after)
	}
	e.OK("prune")
	names := map[string]bool{}
	for _, b := range e.BranchList() {
		names[b.Name] = true
	}
	if names["l/short"] || !names["l/tmp"] || !names["l/child"] || !names["l/keep"] {
		t.Errorf("after prune the branches are %v; want l/short gone, l/tmp, l/child and l/keep kept", names)
	}
	if got := e.Rows("l/keep", "SELECT v FROM t"); got != "1" {
		t.Errorf("protected l/keep holds %q after prune, want 1", got)
	}
	// Once its descendant expires too, both go.
	e.OK("branch", "set", "l/child", "--ttl", "1s")
	time.Sleep(1500 * time.Millisecond)
	if r := e.OK("prune"); !strings.Contains(r.Stdout, "Deleted l/tmp") || !strings.Contains(r.Stdout, "Deleted l/child") {
		t.Errorf("prune after the child expired:\n%s", r.Stdout)
	}
	e.OK("branch", "unprotect", "l/keep")
	e.OK("branch", "delete", "l/keep")
}

// lifecycleRenameAndPromote: a renamed branch and project answer on their
// old ports with their data; a rename to a name in use, of main, or across
// projects is refused; a promoted branch is main, branched from as main,
// with the old main kept under the name printed; promote of main refused.
func lifecycleRenameAndPromote(t *testing.T, e *env) {
	e.OK("branch", "create", "l/dev")
	e.Psql("l/dev", "INSERT INTO t VALUES (2)")
	e.OK("branch", "create", "l/feat", "--parent", "l/dev")
	e.OK("branch", "create", "l/other")
	e.OK("branch", "protect", "l/other")
	devPort, mainPort := e.Conn("l/dev").Port, e.Conn("l/main").Port

	e.Refused([]string{"l/other is protected", "renamed over"}, "branch", "rename", "l/dev", "l/other")
	e.OK("branch", "unprotect", "l/other")
	e.Refused([]string{"l/other already exists"}, "branch", "rename", "l/dev", "l/other")
	e.Refused([]string{"main branch", "velo branch promote"}, "branch", "rename", "l/main", "l/trunk")
	e.Refused([]string{"different projects"}, "branch", "rename", "l/dev", "m/dev")
	e.Refused([]string{"already the project's main"}, "branch", "promote", "l/main")

	e.OK("branch", "rename", "l/dev", "l/work")
	if c := e.Conn("l/work"); c.Port != devPort {
		t.Errorf("l/work is on port %d, was %d as l/dev", c.Port, devPort)
	}
	if got := e.Rows("l/work", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("renamed l/work holds %s, want 1,2", got)
	}
	var feat struct{ Parent string }
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "l/feat", "--json").Stdout), &feat); err != nil || feat.Parent != "l/work" {
		t.Errorf("l/feat's parent after the rename: %q (%v), want l/work", feat.Parent, err)
	}

	e.OK("project", "rename", "l", "m")
	e.Refused([]string{"project l does not exist"}, "project", "get", "l")
	c := e.Conn("m/work")
	if c.Port != devPort {
		t.Errorf("m/work is on port %d, was %d", c.Port, devPort)
	}
	// The old port, verified against the project's CA at its new place.
	var proj struct {
		CACert string `json:"ca_cert"`
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", "m", "--json").Stdout), &proj); err != nil || !strings.Contains(proj.CACert, "/projects/m/") {
		t.Errorf("project m's CA: %q (%v), want it under projects/m/", proj.CACert, err)
	}
	e.OK("branch", "restart", "m/work")
	if got := e.Rows("m/work", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("m/work after restart holds %s, want 1,2", got)
	}

	r := e.OK("branch", "promote", "m/work")
	old := "m/main-old-" + time.Now().UTC().Format("20060102")
	if !strings.Contains(r.Stdout, old) {
		t.Errorf("promote does not print the old main's name %s:\n%s", old, r.Stdout)
	}
	if c := e.Conn("m/main"); c.Port != devPort {
		t.Errorf("new m/main is on port %d, want %d (it kept its port)", c.Port, devPort)
	}
	if c := e.Conn(old); c.Port != mainPort {
		t.Errorf("%s is on port %d, want %d", old, c.Port, mainPort)
	}
	// The identity file beside the data says the new names (a rebuild of
	// the state from the storage reads it).
	var got struct {
		DataDir string `json:"data_dir"`
	}
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "m/main", "--json").Stdout), &got)
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
	e.OK("branch", "create", "m/next")
	if got := e.Rows("m/next", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("a branch of the new main holds %s, want 1,2", got)
	}
	if got := e.Rows(old, "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("the old main holds %s, want 1", got)
	}
	// The old main is an ordinary branch now: it can go.
	e.OK("branch", "delete", old, "--force")
	if r := e.OK("doctor"); strings.Contains(r.Stdout, "FAIL") {
		t.Errorf("doctor after rename and promote:\n%s", r.Stdout)
	}
}

// TestLifecycleRenameKilled kills project rename after it renamed the
// records and before it moved the CA directory: velo doctor --repair
// moves it, and the branches verify against the same CA.
func TestLifecycleRenameKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("k")
	var before struct {
		CACert string `json:"ca_cert"`
	}
	_ = json.Unmarshal([]byte(e.OK("project", "get", "k", "--json").Stdout), &before)
	ca, err := os.ReadFile(before.CACert)
	if err != nil {
		t.Fatal(err)
	}
	// Killed at step 1 (journalled, nothing done), then at step 2 (the
	// records renamed, the CA not moved yet).
	e.Extra = []string{"VELO_FAULT=step:1"}
	e.Run("project", "rename", "k", "z")
	e.Extra = nil
	e.OK("doctor", "--repair")
	e.OK("project", "get", "k")
	e.Extra = []string{"VELO_FAULT=step:2"}
	e.Run("project", "rename", "k", "q")
	e.Extra = nil
	if _, err := os.Stat(filepath.Join(e.Home, "projects", "k")); err != nil {
		t.Fatalf("the kill at step 2 left no CA under projects/k: %v", err)
	}
	if r := e.Run("doctor"); !strings.Contains(r.Stdout, "rename was interrupted") {
		t.Errorf("doctor does not report the interrupted rename:\n%s", r.Stdout)
	}
	e.OK("doctor", "--repair")
	if r := e.Run("doctor"); r.Code != 0 {
		t.Errorf("doctor after the repair: %s", r)
	}
	got, err := os.ReadFile(filepath.Join(e.Home, "projects", "q", "ca.crt"))
	if err != nil || string(got) != string(ca) {
		t.Errorf("project q's CA after the repair: %v; want the CA k had", err)
	}
	e.Psql("q/main", "SELECT 1")
}

// lifecycleFromSnapshot: a branch made from a snapshot (by a prefix of its
// ID) holds the snapshot's rows, not its branch's current ones.
func lifecycleFromSnapshot(t *testing.T, e *env) {
	id := strings.TrimSpace(e.OK("snapshot", "create", "m/main", "--label", "before-3").Stdout)
	e.Psql("m/main", "INSERT INTO t VALUES (3)")
	e.Refused([]string{"without --pitr or --parent"}, "branch", "create", "m/x", "--from-snapshot", id, "--pitr", "1m ago")
	e.Refused([]string{"no snapshot has an ID starting with"}, "branch", "create", "m/x", "--from-snapshot", "zzzz")
	e.OK("branch", "create", "m/then", "--from-snapshot", id[:6])
	if got := e.Rows("m/then", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("m/then from snapshot %s holds %s, want 1,2", id, got)
	}
	var b struct{ Parent string }
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "m/then", "--json").Stdout), &b); err != nil || b.Parent != "m/main" {
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
	e.OK("branch", "create", "m/r")
	id := strings.TrimSpace(e.OK("snapshot", "create", "m/r", "--label", "r-start").Stdout)
	e.Psql("m/r", "INSERT INTO t VALUES (4)")
	time.Sleep(1100 * time.Millisecond)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	e.Psql("m/r", "INSERT INTO t VALUES (5)")
	e.OK("branch", "create", "m/rchild", "--parent", "m/r")
	old := e.Conn("m/r")
	kept := "m/r-old-" + time.Now().UTC().Format("20060102")

	mainSnap := strings.TrimSpace(e.OK("snapshot", "create", "m/main").Stdout)
	before := e.SnapshotState()
	e.Refused([]string{"give one of --to TIME and --snapshot ID"}, "branch", "restore", "m/r")
	e.Refused([]string{"give one of --to TIME and --snapshot ID"}, "branch", "restore", "m/r", "--to", at, "--snapshot", id)
	e.Refused([]string{"earliest reachable moment is", "latest reachable moment"}, "branch", "restore", "m/r", "--to", "2 hours ago")
	e.Refused([]string{"is of branch m/main, not of m/r", "--from-snapshot"}, "branch", "restore", "m/r", "--snapshot", mainSnap)
	e.Refused([]string{"m/rchild", "--discard would drop"}, "branch", "restore", "m/r", "--to", at, "--discard")
	e.OK("branch", "protect", "m/r")
	e.Refused([]string{"m/r is protected", "cannot be restored"}, "branch", "restore", "m/r", "--to", at)
	e.OK("branch", "unprotect", "m/r")
	if after := e.SnapshotState(); after != before {
		t.Errorf("refused restores changed the state:\nbefore %s\nafter  %s", before, after)
	}

	r := e.OK("branch", "restore", "m/r", "--to", at)
	if !strings.Contains(r.Stdout, kept) {
		t.Errorf("restore does not print the kept branch %s:\n%s", kept, r.Stdout)
	}
	// A client of the branch, with the port and password it had.
	if got := psqlWith(t, old, "SELECT v FROM t ORDER BY v"); got != "1,2,3,4" {
		t.Errorf("m/r restored to %s holds %s on its old port and password, want 1,2,3,4", at, got)
	}
	if got := e.Rows(kept, "SELECT v FROM t ORDER BY v"); got != "1,2,3,4,5" {
		t.Errorf("%s, the replaced state, holds %s, want 1,2,3,4,5", kept, got)
	}
	var child struct{ Parent string }
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "m/rchild", "--json").Stdout), &child); err != nil || child.Parent != kept {
		t.Errorf("m/rchild's parent after the restore: %q (%v), want %s (it was made from the replaced data)", child.Parent, err, kept)
	}

	e.OK("branch", "restore", "m/r", "--snapshot", id[:7], "--discard")
	if got := psqlWith(t, old, "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("m/r restored to snapshot %s holds %s, want 1,2,3", id, got)
	}
	for _, b := range e.BranchList() {
		if strings.HasPrefix(b.Name, kept+"-") {
			t.Errorf("restore --discard kept %s", b.Name)
		}
	}
	// A stopped branch stays stopped, restored.
	e.OK("branch", "stop", "m/r")
	e.OK("branch", "restore", "m/r", "--snapshot", id, "--name", "r-before")
	for _, b := range e.BranchList() {
		if (b.Name == "m/r" || b.Name == "m/r-before") && b.State != "stopped" {
			t.Errorf("after restoring stopped m/r, %s is %s, want stopped", b.Name, b.State)
		}
	}
	e.OK("branch", "start", "m/r-before")
	if got := e.Rows("m/r-before", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("m/r-before holds %s, want 1,2,3", got)
	}
	if r := e.OK("doctor"); strings.Contains(r.Stdout, "FAIL") {
		t.Errorf("doctor after the restores:\n%s", r.Stdout)
	}
}

// psqlWith runs SQL with the real psql on a connection as a client holds
// it (port and password), one column's rows joined by commas.
func psqlWith(t *testing.T, c harness.ConnInfo, sql string) string {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "localhost", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("psql on port %d: %v\n%s", c.Port, err, out)
	}
	return strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", ",")
}
