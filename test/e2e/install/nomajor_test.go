package install

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestMajorMissing makes a project on Postgres 17 (found through
// VELO_PG_BIN), then runs velo without it, as a new shell would: the
// running servers are still seen running (read from postmaster.pid and
// /proc), branch stop, branch delete and project delete work by signals,
// and what truly needs the binaries fails (exit 1) saying how to fix it.
func TestMajorMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("old", "--pg-version", "17")
	e.OK("branch", "create", "old/dev")
	e.OK("branch", "create", "old/tmp")
	pids := map[string]int{}
	for _, b := range []string{"old/main", "old/dev", "old/tmp"} {
		pids[b] = e.DoctorBranch(b).PID
	}

	e.Extra = append(e.Extra, "VELO_PG_BIN=") // 17 is found nowhere else
	var list []struct{ Name, State, Problem string }
	r := e.OK("branch", "list", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || len(list) != 3 {
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
	if r := e.OK("status", "--json"); json.Unmarshal([]byte(r.Stdout), &st) != nil || len(st.Projects) != 1 || len(st.Projects[0].BranchList) != 3 || st.Projects[0].BranchList[0].State != "running" {
		t.Errorf("status --json should show the servers running: %s", r)
	}

	r = e.Run("branch", "start", "old/dev")
	if r.Code != 0 {
		t.Errorf("branch start of a running branch needs no binaries: %s", r)
	}
	e.OK("branch", "stop", "old/dev")
	if harness.ProcessAlive(pids["old/dev"]) {
		t.Errorf("old/dev's server (pid %d) still runs after branch stop", pids["old/dev"])
	}
	r = e.Run("branch", "start", "old/dev")
	if r.Code != 1 || !strings.Contains(r.Stderr, "PostgreSQL 17") || !strings.Contains(r.Stderr, "VELO_PG_BIN") {
		t.Errorf("branch start without 17: want exit 1 naming PostgreSQL 17 and VELO_PG_BIN, got %s", r)
	}
	e.OK("branch", "delete", "old/tmp")
	if harness.ProcessAlive(pids["old/tmp"]) {
		t.Errorf("old/tmp's server (pid %d) still runs after branch delete", pids["old/tmp"])
	}
	e.OK("project", "delete", "old", "--force")
	if harness.ProcessAlive(pids["old/main"]) {
		t.Errorf("old/main's server (pid %d) still runs after project delete", pids["old/main"])
	}
	e.AssertNoLeaks()
}
