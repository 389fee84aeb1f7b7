package importing

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestPITRWindow checks that a branch's point-in-time window is
// continuous from the project's creation, that no reset or delete shrinks
// it on the side (the oldest snapshot of main was the origin of a reset
// branch, and went with the reset), that the commands that may shrink it
// say so, and that the earliest bound printed is accepted back.
func TestPITRWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("w")
	e.Psql("w/main", "CREATE TABLE t (v int)")
	t1 := harness.CommitTimes(e.Env, "w/main", 1, 1)[0]

	// No snapshot taken by hand: project create took one.
	e.OK("branch", "create", "w/early", "--pitr", t1.Format(time.RFC3339Nano))
	if got := e.Rows("w/early", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("--pitr right after the project's creation holds %s, want 1", got)
	}
	e.OK("branch", "delete", "w/early")
	base := e.windowStart("w/main")

	e.OK("branch", "create", "w/dev")
	t2 := harness.CommitTimes(e.Env, "w/main", 2, 1)[0]
	if got := e.windowStart("w/main"); !got.Equal(base) {
		t.Errorf("a branch create moved main's window from %s to %s", base, got)
	}

	// snapshot cleanup may remove the base; it says how the window shrinks.
	r := e.OK("snapshot", "cleanup", "w/main", "--days", "0", "--dry-run")
	if !strings.Contains(r.Stdout, "earliest reachable moment of w/main moves from") {
		t.Errorf("cleanup --dry-run does not say main's window shrinks:\n%s", r.Stdout)
	}
	var res struct {
		Shrunk []struct{ Branch string } `json:"windows_shrunk"`
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "cleanup", "w/main", "--days", "0", "--json").Stdout), &res); err != nil || len(res.Shrunk) != 1 || res.Shrunk[0].Branch != "w/main" {
		t.Errorf("cleanup --json windows_shrunk = %+v (%v), want w/main", res.Shrunk, err)
	}
	// Now main's oldest snapshot is dev's origin: dev's reset must keep it.
	start := e.windowStart("w/main")
	e.OK("branch", "create", "w/before", "--pitr", t2.Format(time.RFC3339Nano))
	if got := e.Rows("w/before", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("--pitr before the reset holds %s, want 1,2", got)
	}
	e.OK("branch", "delete", "w/before")
	e.OK("branch", "reset", "w/dev")
	if got := e.windowStart("w/main"); !got.Equal(start) {
		t.Errorf("branch reset w/dev moved main's window from %s to %s", start, got)
	}
	e.OK("branch", "create", "w/after", "--pitr", t2.Format(time.RFC3339Nano))
	if got := e.Rows("w/after", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("--pitr after the reset holds %s, want 1,2", got)
	}

	// The earliest bound a refusal prints is accepted back.
	r = e.Run("branch", "create", "w/x", "--pitr", "2 hours ago")
	m := regexp.MustCompile(`earliest reachable moment is (\S+)`).FindStringSubmatch(r.Stderr)
	if r.Code != 2 || m == nil {
		t.Fatalf("--pitr 2 hours ago: want exit 2 naming the earliest moment, got %s", r)
	}
	e.OK("branch", "create", "w/edge", "--pitr", m[1])
	if got := e.Rows("w/edge", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("--pitr at the earliest bound holds %s, want 1", got)
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
}

// windowStart is where ref's point-in-time window begins (wal info).
func (e *env) windowStart(ref string) time.Time {
	e.T.Helper()
	var infos []struct {
		Earliest *time.Time `json:"earliest_pitr"`
	}
	r := e.OK("wal", "info", ref, "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &infos); err != nil || len(infos) != 1 || infos[0].Earliest == nil {
		e.T.Fatalf("wal info %s: no earliest moment: %v\n%s", ref, err, r.Stdout)
	}
	return *infos[0].Earliest
}
