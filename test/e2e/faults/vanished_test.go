package faults

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataDirVanished removes a stopped branch's data directory (rm -rf of
// its pgdata, the volume left in place): doctor must name a fix that
// works, and branch reset must rebuild the branch from its parent.
func TestDataDirVanished(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("gone")
	e.Psql("gone/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	e.OK("branch", "create", "gone/dev")
	e.OK("branch", "create", "gone/kid", "--parent", "gone/dev")
	e.Psql("gone/dev", "INSERT INTO t VALUES (2)")
	e.OK("branch", "stop", "gone/dev")
	vol, err := e.PoolDriver().Path(context.Background(), e.DoctorBranch("gone/dev").Volume)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(vol, "pgdata")); err != nil {
		t.Fatal(err)
	}

	r := e.Run("doctor")
	if r.Code != 1 || !strings.Contains(r.Stdout, "velo branch reset gone/dev --force") || strings.Contains(r.Stdout, "restart gone/dev") {
		t.Errorf("doctor should name branch reset as the fix, not restart:\n%s", r)
	}
	if r := e.Run("branch", "start", "gone/dev"); r.Code == 0 || !strings.Contains(r.Stderr, "velo branch reset gone/dev") {
		t.Errorf("branch start should fail naming branch reset: %s", r)
	}
	var got struct{ State, Problem string }
	if r := e.OK("branch", "get", "gone/dev", "--json"); json.Unmarshal([]byte(r.Stdout), &got) != nil || got.State != "missing" || !strings.Contains(got.Problem, "velo branch reset gone/dev --force") {
		t.Errorf("branch get should show the branch missing, naming the reset: %s", r)
	}
	// kid was made from dev's data and keeps its own: hence --force.
	r = e.OK("branch", "reset", "gone/dev", "--force")
	e.OK("branch", "start", "gone/dev")
	if got := e.Rows("gone/dev", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("gone/dev after the reset holds %s, want main's 1", got)
	}
	if got := e.Rows("gone/kid", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("gone/kid holds %s, want 1", got)
	}
	e.AssertDoctorHealthy()
}
