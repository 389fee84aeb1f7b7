package serving

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/velohq/velo/test/e2e/harness"
)

// serveProc is a velo serve the test started and may kill.
type serveProc struct {
	cmd  *exec.Cmd
	port int
	mu   sync.Mutex
	log  []string
}

func (s *serveProc) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// runServe starts velo serve on port (0: a free one) and waits until it
// routes; it is killed when the test ends.
func (e *env) runServe(port int) *serveProc {
	e.T.Helper()
	return e.runServeOn("127.0.0.1", port)
}

// runServeOn is runServe with the router on host (an address of this
// host), and more arguments for velo serve.
func (e *env) runServeOn(host string, port int, args ...string) *serveProc {
	e.T.Helper()
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.T.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	if port == 0 {
		port = free()
	}
	s := &serveProc{port: port}
	s.cmd = exec.Command(harness.VeloBin, append([]string{"serve", "--listen", net.JoinHostPort(host, fmt.Sprint(port)), "--http", fmt.Sprintf("127.0.0.1:%d", free())}, args...)...)
	s.cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home), e.Extra...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			s.mu.Unlock()
			if strings.Contains(sc.Text(), "routing on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		e.T.Fatalf("velo serve did not say it was routing within 30s:\n%s", s.output())
	}
	return s
}

// branchJSON is what branch get --json says of the fields these tests read.
type branchJSON struct {
	State     string     `json:"state"`
	PID       int        `json:"pid"`
	RouterURL string     `json:"router_url"`
	LogFile   string     `json:"log_file"`
	Suspended *time.Time `json:"suspended_at"`
	Idle      int        `json:"idle_timeout_seconds"`
	IdleFrom  string     `json:"idle_from"`
}

func (e *env) branchGet(ref string) branchJSON {
	e.T.Helper()
	var b branchJSON
	if err := json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b); err != nil {
		e.T.Fatal(err)
	}
	return b
}

// waitState waits up to limit for ref to be in state.
func (e *env) waitState(ref, state string, limit time.Duration) branchJSON {
	e.T.Helper()
	deadline := time.Now().Add(limit)
	for {
		b := e.branchGet(ref)
		if b.State == state {
			return b
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%s is %s after %s; want %s", ref, b.State, limit, state)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// routerURL is ref's one-port URL with its password, from branch password.
func (e *env) routerURL(ref string) string {
	e.T.Helper()
	return e.Conn(ref).RouterURL
}

// readyCount counts the server starts in a branch's log.
func readyCount(t testing.TB, log string) int {
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "database system is ready to accept connections")
}

// TestServeWake: velo serve suspends a branch idle for its --idle (main
// never), shows it suspended, and wakes it when a client connects (psql,
// pgx: the first query succeeds); twenty clients at once start it once; a
// direct client of the branch's own port keeps it running; a branch the
// user stopped is refused with the command that starts it; snapshot,
// branch create, PITR, reset and start --all treat a suspended branch as
// stopped; Ctrl-C (a cancel request) reaches the right server; after kill
// -9 of velo serve the branches keep running and a new velo serve adopts
// them; reset and delete end the sessions routed to them, and after a
// reset new sessions reach the new server.
func TestServeWake(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			ctx := context.Background()
			e.Create("demo")
			e.Psql("demo/main", "CREATE TABLE t(v text); INSERT INTO t VALUES ('main')")
			e.OK("branch", "create", "demo/dev")
			e.Psql("demo/dev", "UPDATE t SET v = 'dev'")
			// A snapshot and a commit after it, for a point-in-time branch
			// of the suspended branch below.
			e.OK("snapshot", "create", "demo/dev")
			e.Psql("demo/dev", "CREATE TABLE marks(m int); INSERT INTO marks VALUES (1)")
			time.Sleep(1100 * time.Millisecond)
			mark := time.Now().UTC().Format(time.RFC3339Nano)
			e.OK("branch", "set", "demo/dev", "--idle", "3s")
			if b := e.branchGet("demo/dev"); b.Idle != 3 || b.IdleFrom != "branch" {
				t.Errorf("after --idle 3s: idle %d from %q", b.Idle, b.IdleFrom)
			}
			e.Refused([]string{"--idle", "never"}, "branch", "set", "demo/dev", "--idle", "soon")
			s := e.runServe(0)
			url := e.routerURL("demo/dev")
			if want := fmt.Sprintf("@127.0.0.1:%d/demo%%2Fdev", s.port); !strings.Contains(url, want) {
				t.Fatalf("router_url %q does not name velo serve's port (%s)", url, want)
			}
			pw := e.Conn("demo/dev").Password

			// Idle: suspended, its server gone; main stays up.
			b := e.waitState("demo/dev", "suspended", 30*time.Second)
			if b.Suspended == nil || b.PID != 0 {
				t.Errorf("suspended branch: %+v", b)
			}
			if m := e.branchGet("demo/main"); m.State != "running" || m.IdleFrom != "main" {
				t.Errorf("main: %+v; want running, never suspended", m)
			}
			if st := e.OK("status").Stdout; !strings.Contains(st, "suspended") || !strings.Contains(st, "One port") {
				t.Errorf("status shows no suspended branch or one-port URL:\n%s", st)
			}

			// Woken by psql: the first query answers.
			starts := readyCount(t, b.LogFile)
			backups := backupsOf(t, e.Home)
			if out, err := psqlVia(url, pw, "SELECT v FROM t"); err != nil || out != "dev" {
				t.Fatalf("psql waking demo/dev: %q, %v\n%s", out, err, s.output())
			}
			e.waitState("demo/dev", "suspended", 30*time.Second)
			// Woken by pgx.
			pc, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatalf("pgx waking demo/dev: %v", err)
			}
			var v string
			if err := pc.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "dev" {
				t.Errorf("pgx's first query: %q, %v", v, err)
			}
			pc.Close(ctx)

			// Twenty clients at once: one start.
			e.waitState("demo/dev", "suspended", 30*time.Second)
			// Two wakes and suspends took no copy of the state: they would
			// rotate the ones worth keeping out.
			if got := backupsOf(t, e.Home); !slices.Equal(got, backups) {
				t.Errorf("state backups before two wakes and suspends %q, after %q", backups, got)
			}
			before := readyCount(t, b.LogFile)
			if before != starts+2 {
				t.Errorf("%d starts for two wakes", before-starts)
			}
			const n = 20
			var wg sync.WaitGroup
			startTimes := make([]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := pgx.Connect(ctx, url)
					if err != nil {
						errs[i] = err
						return
					}
					defer c.Close(ctx)
					errs[i] = c.QueryRow(ctx, "SELECT pg_postmaster_start_time()::text FROM t").Scan(&startTimes[i])
				}()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || startTimes[i] != startTimes[0] {
					t.Errorf("client %d: started %q (client 0: %q), %v", i, startTimes[i], startTimes[0], errs[i])
				}
			}
			if after := readyCount(t, b.LogFile); after != before+1 {
				t.Errorf("20 clients at once: %d starts of the server, want 1", after-before)
			}

			var pe *pgconn.PgError

			// A client of the branch's own port keeps it running.
			direct, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", pw, e.Conn("demo/dev").Port))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(8 * time.Second)
			if st := e.branchGet("demo/dev").State; st != "running" {
				t.Errorf("with a client of its own port for 8s (idle 3s): %s", st)
			}
			direct.Close(ctx)
			e.waitState("demo/dev", "suspended", 30*time.Second)

			// A wake that fails reaches the client as an error with the
			// reason; fixed, the next connection wakes it.
			var dd struct {
				DataDir string `json:"data_dir"`
			}
			if err := json.Unmarshal([]byte(e.OK("branch", "get", "demo/dev", "--json").Stdout), &dd); err != nil || dd.DataDir == "" {
				t.Fatalf("data_dir: %v", err)
			}
			auto := dd.DataDir + "/postgresql.auto.conf"
			good, err := os.ReadFile(auto)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(auto, append(slices.Clone(good), "shared_buffers = 'lots'\n"...), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = pgx.Connect(ctx, url)
			if !errors.As(err, &pe) || pe.Code != "57P03" || !strings.Contains(pe.Message, "did not start") {
				t.Errorf("a wake that fails: want a 57P03 error saying it did not start, got %v", err)
			}
			if err := os.WriteFile(auto, good, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := psqlVia(url, pw, "SELECT v FROM t"); err != nil || out != "dev" {
				t.Errorf("after the failed wake was fixed: %q, %v", out, err)
			}
			e.waitState("demo/dev", "suspended", 30*time.Second)

			// A suspended branch is a stopped one for snapshot, create,
			// PITR, reset and start --all, and stays suspended.
			e.OK("snapshot", "create", "demo/dev", "--label", "asleep")
			e.OK("branch", "create", "demo/kid", "--parent", "demo/dev")
			if got := e.Psql("demo/kid", "SELECT v FROM t"); got != "dev" {
				t.Errorf("branch of a suspended branch: %q", got)
			}
			e.OK("branch", "create", "demo/pit", "--parent", "demo/dev", "--pitr", mark)
			if got := e.Psql("demo/pit", "SELECT v || count(m) FROM t, marks GROUP BY v"); got != "dev1" {
				t.Errorf("point-in-time branch of a suspended branch: %q", got)
			}
			e.OK("branch", "start", "--all")
			if st := e.branchGet("demo/dev").State; st != "suspended" {
				t.Errorf("after branch start --all: %s; want suspended (woken on connect)", st)
			}
			e.OK("branch", "reset", "demo/dev", "--force")
			if st := e.branchGet("demo/dev").State; st != "suspended" {
				t.Errorf("after reset: %s; want suspended", st)
			}
			if out, err := psqlVia(url, pw, "SELECT v FROM t"); err != nil || out != "main" {
				t.Errorf("waking the reset branch: %q, %v", out, err)
			}

			// Stopped by the user: not woken; told how to start it.
			e.OK("branch", "stop", "demo/dev")
			out, err := psqlVia(url, pw, "SELECT 1")
			if err == nil || !strings.Contains(out, "velo branch start demo/dev") {
				t.Errorf("user-stopped branch: want the command that starts it, got %v: %s", err, out)
			}
			if st := e.branchGet("demo/dev").State; st != "stopped" {
				t.Errorf("user-stopped branch after a client came: %s", st)
			}
			e.OK("branch", "start", "demo/dev")
			e.OK("branch", "set", "demo/dev", "--idle", "never")

			// Cancel through the router: pgx's cancel request, then psql's
			// Ctrl-C.
			pc, err = pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(time.Second)
				_ = pc.PgConn().CancelRequest(ctx)
			}()
			t0 := time.Now()
			_, err = pc.Exec(ctx, "SELECT pg_sleep(60)")
			if !errors.As(err, &pe) || pe.Code != "57014" || time.Since(t0) > 30*time.Second {
				t.Errorf("pg_sleep cancelled through the router: %v after %s", err, time.Since(t0))
			}
			pc.Close(ctx)
			cmd := exec.Command("psql", "-X", "-At", url, "-c", "SELECT pg_sleep(60)")
			var buf strings.Builder
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
				if !strings.Contains(buf.String(), "canceling statement due to user request") {
					t.Errorf("psql Ctrl-C through the router: %s", buf.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("psql Ctrl-C through the router did not cancel the query")
			}

			// kill -9 of velo serve: the servers keep running; a new velo
			// serve routes to them without starting them again.
			was := e.branchGet("demo/dev")
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			_ = s.cmd.Wait()
			if now := e.branchGet("demo/dev"); now.State != "running" || now.PID != was.PID {
				t.Fatalf("after kill -9 of velo serve: %+v; want the server %d still running", now, was.PID)
			}
			startsBefore := readyCount(t, was.LogFile)
			e.runServe(s.port)
			if out, err := psqlVia(url, pw, "SELECT v FROM t"); err != nil || out != "main" {
				t.Errorf("through a new velo serve: %q, %v", out, err)
			}
			if now := e.branchGet("demo/dev"); now.PID != was.PID || readyCount(t, was.LogFile) != startsBefore {
				t.Errorf("the new velo serve started demo/dev again (pid %d, was %d)", now.PID, was.PID)
			}

			// Reset while a session is routed: the session ends with an
			// error; new sessions reach the new server.
			e.Psql("demo/main", "UPDATE t SET v = 'main2'")
			pc, err = pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			var oldStart string
			if err := pc.QueryRow(ctx, "SELECT pg_postmaster_start_time()::text").Scan(&oldStart); err != nil {
				t.Fatal(err)
			}
			e.OK("branch", "reset", "demo/dev", "--force")
			qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err = pc.Exec(qctx, "SELECT 1")
			cancel()
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a session routed to a reset branch: want it ended with an error, got %v", err)
			}
			pc.Close(ctx)
			pc, err = pgx.Connect(ctx, url)
			if err != nil {
				t.Fatalf("after reset: %v", err)
			}
			var newStart string
			if err := pc.QueryRow(ctx, "SELECT v, pg_postmaster_start_time()::text FROM t").Scan(&v, &newStart); err != nil || v != "main2" || newStart == oldStart {
				t.Errorf("after reset: %q from the server started %s (old %s), %v", v, newStart, oldStart, err)
			}
			pc.Close(ctx)

			// Delete while a session is routed.
			kidURL := e.routerURL("demo/kid")
			pc, err = pgx.Connect(ctx, kidURL)
			if err != nil {
				t.Fatal(err)
			}
			e.OK("branch", "delete", "demo/kid")
			qctx, cancel = context.WithTimeout(ctx, 20*time.Second)
			_, err = pc.Exec(qctx, "SELECT 1")
			cancel()
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a session routed to a deleted branch: want it ended with an error, got %v", err)
			}
			pc.Close(ctx)
			if _, err := pgx.Connect(ctx, kidURL); err == nil || !strings.Contains(err.Error(), "demo/kid") && !strings.Contains(err.Error(), "kid") {
				t.Errorf("connecting to a deleted branch: %v", err)
			}
		})
	}
}

// backupsOf lists the copies of the state in home's backup directory.
func backupsOf(t *testing.T, home string) []string {
	entries, err := os.ReadDir(filepath.Join(home, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
