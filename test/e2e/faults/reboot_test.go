package faults

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestStartAllAfterCrash kills every server with SIGKILL, as a power cut or
// reboot would, then brings back with one command exactly the branches
// that were running, with their ports, passwords and committed rows.
func TestStartAllAfterCrash(t *testing.T) {
	e := newEnv(t, "btrfs")
	e.Create("boot")
	e.Psql("boot/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	e.OK("branch", "create", "boot/dev")
	e.Psql("boot/dev", "INSERT INTO t VALUES (2)")
	e.OK("branch", "create", "boot/idle")
	e.OK("branch", "stop", "boot/idle")
	before := map[string]harness.ConnInfo{}
	for _, b := range []string{"boot/main", "boot/dev", "boot/idle"} {
		before[b] = e.Conn(b)
	}
	harness.SignalServers(t, syscall.SIGKILL, e.Pool)
	time.Sleep(500 * time.Millisecond)
	states := func() map[string]string {
		var bs []struct{ Name, State string }
		_ = json.Unmarshal([]byte(e.OK("branch", "list", "boot", "--json").Stdout), &bs)
		m := map[string]string{}
		for _, b := range bs {
			m[b.Name] = b.State
		}
		return m
	}
	for b, s := range states() {
		if s != "stopped" {
			t.Errorf("after SIGKILL %s is %s", b, s)
		}
	}
	r := e.OK("branch", "start", "--all")
	got := states()
	if got["boot/main"] != "running" || got["boot/dev"] != "running" || got["boot/idle"] != "stopped" {
		t.Errorf("after start --all: %v\n%s", got, r.Stdout)
	}
	for b, c := range before {
		if now := e.Conn(b); now.Port != c.Port || now.Password != c.Password {
			t.Errorf("%s: port/password changed across the crash", b)
		}
	}
	if v := e.Rows("boot/dev", "SELECT v FROM t ORDER BY v"); v != "1,2" {
		t.Errorf("dev after crash = %s", v)
	}
	// Idempotent: a second run starts nothing and succeeds.
	e.OK("branch", "start", "--all")
	e.Refused([]string{"not both"}, "branch", "start", "boot/dev", "--all")
}
