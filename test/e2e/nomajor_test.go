package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMajorMissing makes a project on Postgres 17 (found through
// VELO_PG_BIN), then runs velo without it, as a new shell would: the
// running servers are still seen running (read from postmaster.pid and
// /proc), branch stop, branch delete and project delete work by signals,
// and what truly needs the binaries fails (exit 1) saying how to fix it.
func TestMajorMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.create("old", "--pg-version", "17")
	e.ok("branch", "create", "old/dev")
	e.ok("branch", "create", "old/tmp")
	pids := map[string]int{}
	for _, b := range []string{"old/main", "old/dev", "old/tmp"} {
		pids[b] = e.doctorBranch(b).PID
	}

	e.extra = append(e.extra, "VELO_PG_BIN=") // 17 is found nowhere else
	var list []struct{ Name, State, Problem string }
	r := e.ok("branch", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 3 {
		t.Fatalf("branch list --json: %v\n%s", err, r)
	}
	for _, b := range list {
		if b.State != "running" {
			t.Errorf("%s is %s (%s), want running: its server runs", b.Name, b.State, b.Problem)
		}
	}
	var st struct {
		Projects []struct {
			BranchList []struct{ Name, State string } `json:"branch_list"`
		}
	}
	if r := e.ok("status", "--json"); json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Projects) != 1 || len(st.Projects[0].BranchList) != 3 || st.Projects[0].BranchList[0].State != "running" {
		t.Errorf("status --json should show the servers running: %s", r)
	}

	r = e.run("branch", "start", "old/dev")
	if r.code != 0 {
		t.Errorf("branch start of a running branch needs no binaries: %s", r)
	}
	e.ok("branch", "stop", "old/dev")
	if processAlive(pids["old/dev"]) {
		t.Errorf("old/dev's server (pid %d) still runs after branch stop", pids["old/dev"])
	}
	r = e.run("branch", "start", "old/dev")
	if r.code != 1 || !strings.Contains(r.stderr, "PostgreSQL 17") || !strings.Contains(r.stderr, "VELO_PG_BIN") {
		t.Errorf("branch start without 17: want exit 1 naming PostgreSQL 17 and VELO_PG_BIN, got %s", r)
	}
	e.ok("branch", "delete", "old/tmp")
	if processAlive(pids["old/tmp"]) {
		t.Errorf("old/tmp's server (pid %d) still runs after branch delete", pids["old/tmp"])
	}
	e.ok("project", "delete", "old", "--force")
	if processAlive(pids["old/main"]) {
		t.Errorf("old/main's server (pid %d) still runs after project delete", pids["old/main"])
	}
	e.assertNoLeaks()
}
