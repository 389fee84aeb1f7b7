package importing

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// followState is what project get --json says of how main follows.
type followState struct {
	State      string
	Reason     string
	LagBytes   *int64   `json:"lag_bytes"`
	LagSeconds *float64 `json:"lag_seconds"`
}

// followState reads project's source state from project get --json.
func (e *env) followState(project string) followState {
	e.T.Helper()
	var p struct{ Source followState }
	js := e.OK("project", "get", project, "--json").Stdout
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		e.T.Fatalf("project get --json: %v\n%s", err, js)
	}
	return p.Source
}

// waitFollow waits until project's main is in state (and ok, if given,
// holds of what project get --json says), and returns what it said.
func (e *env) waitFollow(project, state string, within time.Duration, ok func(followState) bool) followState {
	e.T.Helper()
	var s followState
	for deadline := time.Now().Add(within); ; {
		s = e.followState(project)
		if s.State == state && (ok == nil || ok(s)) {
			return s
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%s's main is not %s after %v: %+v (lag %v)", project, state, within, s, lagOf(s))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func lagOf(s followState) string {
	if s.LagBytes == nil || s.LagSeconds == nil {
		return "none"
	}
	return fmt.Sprintf("%d B / %.1f s", *s.LagBytes, *s.LagSeconds)
}

// TestImportFollowState: velo status and project get (text and --json)
// say how a following main keeps up: streaming with a small lag; catching
// up, with the lag in bytes and seconds, while it has WAL left to replay
// (made here by pausing main's replay while the source writes 40 MB, as a
// slow disk would); streaming again once it has caught up, the source's
// last row on main; disconnected, with why, while the source is down; and
// streaming again once it is back.
func TestImportFollowState(t *testing.T) {
	t.Parallel()
	src := harness.NewProdSource(t, 1)
	e := newEnv(t, "copy")
	e.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
	e.createR("prod", "--from", fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port))
	mainPort := e.BranchPort("prod/main")
	small := func(s followState) bool { return s.LagBytes != nil && *s.LagBytes < 16<<20 }
	e.waitFollow("prod", "streaming", time.Minute, small)

	// A commit replayed before the pause: the lag in seconds is the age
	// of the last commit main has replayed.
	src.SQL("INSERT INTO marks (name) VALUES ('before-pause')")
	waitRow(t, mainPort, "before-pause", time.Minute)
	mustPsqlAt(t, mainPort, "SELECT pg_wal_replay_pause()")
	src.SQL("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 40000) g")
	src.SQL("INSERT INTO marks (name) VALUES ('caught-up')")
	s := e.waitFollow("prod", "catching up", time.Minute, func(s followState) bool {
		return s.LagBytes != nil && *s.LagBytes > 30<<20 && s.LagSeconds != nil && *s.LagSeconds > 0
	})
	t.Logf("paused: %s %s", s.State, lagOf(s))
	for _, cmd := range [][]string{{"status"}, {"project", "get", "prod"}} {
		if out := e.OK(cmd...).Stdout; !strings.Contains(out, "catching up, lag ") {
			t.Errorf("velo %s does not say main is catching up with its lag:\n%s", strings.Join(cmd, " "), out)
		}
	}

	mustPsqlAt(t, mainPort, "SELECT pg_wal_replay_resume()")
	waitRow(t, mainPort, "caught-up", time.Minute)
	s = e.waitFollow("prod", "streaming", time.Minute, small)
	t.Logf("resumed: %s %s", s.State, lagOf(s))
	if got := mustPsqlAt(t, mainPort, "SELECT count(*) FROM big"); got != "40000" {
		t.Errorf("main after catching up: %s rows of big, want 40000", got)
	}

	src.AsPostgres(harness.PG15+"/pg_ctl", "-D", src.Data(), "-m", "fast", "-w", "stop")
	s = e.waitFollow("prod", "disconnected", time.Minute, func(s followState) bool { return s.Reason != "" })
	t.Logf("source down: %s (%s)", s.State, s.Reason)
	if out := e.OK("status").Stdout; !strings.Contains(out, "disconnected (") {
		t.Errorf("velo status does not say main is disconnected and why:\n%s", out)
	}
	src.Start()
	e.waitFollow("prod", "streaming", 2*time.Minute, nil)
	src.SQL("INSERT INTO marks (name) VALUES ('back')")
	waitRow(t, mainPort, "back", time.Minute)
}
