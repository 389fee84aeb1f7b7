package e2e

import (
	"encoding/json"
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
