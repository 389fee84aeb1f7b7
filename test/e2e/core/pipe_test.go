package core

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestClosedOutput runs changing commands with their output in a pipe that
// the reader closes after one line, as `velo branch create demo/p1 2>&1 |
// head -1` does: the command must finish its work (a closed output only
// stops the printing), exit 0, and leave nothing for doctor.
func TestClosedOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("pipe")
	e.Psql("pipe/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	e.OK("snapshot", "create", "pipe/main")
	at := time.Now().UTC().Format(time.RFC3339Nano)
	e.Psql("pipe/main", "INSERT INTO t VALUES (2)")
	for _, args := range [][]string{
		{"branch", "create", "pipe/p1"},
		{"branch", "create", "pipe/p2", "--pitr", at},
		{"branch", "reset", "pipe/p1"},
		{"snapshot", "create", "pipe/p1"},
		{"branch", "stop", "pipe/p2"},
		{"branch", "delete", "pipe/p2"},
	} {
		if code := e.runHead(args...); code != 0 {
			t.Errorf("velo %s | head -1: exit %d, want 0", strings.Join(args, " "), code)
		}
	}
	if got := e.Rows("pipe/p1", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("pipe/p1 holds %s, want 1,2", got)
	}
	if r := e.Run("branch", "get", "pipe/p2"); r.Code != 2 {
		t.Errorf("pipe/p2 should be deleted: %s", r)
	}
	e.AssertDoctorHealthy()
}

// runHead runs velo with stdout and stderr on one pipe, reads the first
// line and closes the pipe, then waits for velo and returns its exit code
// (-1 for a signal).
func (e *env) runHead(args ...string) int {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		e.T.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, harness.VeloBin, args...)
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home), e.Extra...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	r.Close()
	e.T.Logf("velo %s | head -1: %q", strings.Join(args, " "), line)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		e.T.Fatal(err)
	}
	return 0
}
