package e2e

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
	e.create("gone")
	e.psql("gone/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	e.ok("branch", "create", "gone/dev")
	e.ok("branch", "create", "gone/kid", "--parent", "gone/dev")
	e.psql("gone/dev", "INSERT INTO t VALUES (2)")
	e.ok("branch", "stop", "gone/dev")
	vol, err := e.poolDriver().Path(context.Background(), e.doctorBranch("gone/dev").Volume)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(vol, "pgdata")); err != nil {
		t.Fatal(err)
	}

	r := e.run("doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "velo branch reset gone/dev --force") || strings.Contains(r.stdout, "restart gone/dev") {
		t.Errorf("doctor should name branch reset as the fix, not restart:\n%s", r)
	}
	if r := e.run("branch", "start", "gone/dev"); r.code == 0 || !strings.Contains(r.stderr, "velo branch reset gone/dev") {
		t.Errorf("branch start should fail naming branch reset: %s", r)
	}
	var got struct{ State, Problem string }
	if r := e.ok("branch", "get", "gone/dev", "--json"); json.Unmarshal([]byte(r.stdout), &got) != nil || got.State != "missing" || !strings.Contains(got.Problem, "velo branch reset gone/dev --force") {
		t.Errorf("branch get should show the branch missing, naming the reset: %s", r)
	}
	// kid was made from dev's data and keeps its own: hence --force.
	r = e.ok("branch", "reset", "gone/dev", "--force")
	e.ok("branch", "start", "gone/dev")
	if got := e.rows("gone/dev", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("gone/dev after the reset holds %s, want main's 1", got)
	}
	if got := e.rows("gone/kid", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("gone/kid holds %s, want 1", got)
	}
	e.assertDoctorHealthy()
}
