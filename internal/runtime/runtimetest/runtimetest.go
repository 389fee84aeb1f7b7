// Package runtimetest is the conformance suite every runtime.Runtime passes.
//
// A runtime's own test only builds its environment and calls Suite:
//
//	func TestNative(t *testing.T) {
//		testenv.RequireRoot(t)
//		runtimetest.Suite(t, func() runtime.Runtime { return native.New() })
//	}
//
// The suite runs once per Postgres install found (pg.FindInstalls), or only
// for the major VELO_TEST_PG_MAJOR names. Each check gets its own freshly
// initdb'd data directory (a copy of one cluster initdb'd per install, which
// is the same thing and saves a second per check), its own free port and
// socket directory, and its servers are stopped in t.Cleanup whatever
// happens. Adding a check is one line in checks.
package runtimetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/testenv"
)

// MajorEnv restricts the suite to one Postgres major version.
const MajorEnv = "VELO_TEST_PG_MAJOR"

// helperEnv names a file holding a Spec (as JSON) for a re-executed test
// binary, which starts the server and exits: the check that a server
// outlives the process that started it. helperOutEnv names the file the
// child writes its Handle to. A file rather than the environment keeps the
// password out of the environment the server inherits.
const (
	helperEnv    = "VELO_RUNTIMETEST_HELPER_SPEC"
	helperOutEnv = "VELO_RUNTIMETEST_HELPER_OUT"
)

// stopTimeout is what the suite gives a fast shutdown.
const stopTimeout = 10 * time.Second

type check struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

var checks = []check{
	{"StartThenQuery", testStartThenQuery},
	{"StopThenStopped", testStopThenStopped},
	{"RestartKeepsDataAndPort", testRestartKeepsDataAndPort},
	{"StartRunningChangesNothing", testStartRunningChangesNothing},
	{"StopStoppedSucceeds", testStopStoppedSucceeds},
	{"ImmediateStopKeepsCommits", testImmediateStopKeepsCommits},
	{"KilledIsNoticedAndRestarts", testKilledIsNoticedAndRestarts},
	{"FoundAfterStarterExits", testFoundAfterStarterExits},
	{"StartFailsPortTaken", testStartFailsPortTaken},
	{"StartFailsBadConfig", testStartFailsBadConfig},
	{"StartTimeoutLeavesNothing", testStartTimeoutLeavesNothing},
	{"ListFindsItsServers", testListFindsItsServers},
}

// Options fit the suite to a runtime that does not run the host's
// binaries as the host's postgres user: a container runtime. The data
// directories are still initdb'd by the host's install of Major; then
// they belong to Owner, and the specs name Image and Install.
type Options struct {
	Major   int        // run with the host's install of this major only
	Image   string     // put in every spec
	Install pg.Install // the binaries as the runtime sees them (in the image)
	Owner   *pg.OSUser // owns the data directories and runs the servers
	// Shown, when set, returns everything the runtime shows about the
	// running server of spec to anyone who asks it (`docker inspect`);
	// the password must not be in it.
	Shown func(t *testing.T, spec runtime.Spec) string
}

// Suite runs the conformance checks against runtimes made by newRuntime.
func Suite(t *testing.T, newRuntime func() runtime.Runtime) {
	SuiteWith(t, newRuntime, Options{})
}

// SuiteWith is Suite for a runtime with Options.
func SuiteWith(t *testing.T, newRuntime func() runtime.Runtime, o Options) {
	if specFile := os.Getenv(helperEnv); specFile != "" {
		runHelper(t, newRuntime, specFile)
		return
	}
	if o.Major != 0 {
		t.Setenv(MajorEnv, strconv.Itoa(o.Major))
	}
	for _, env := range environments(t) {
		env.opts = o
		t.Run(fmt.Sprintf("pg%d", env.install.Major), func(t *testing.T) {
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					c.fn(t, env.newFixture(t, newRuntime()))
				})
			}
		})
	}
}

// Benchmark measures Start of a freshly initdb'd cluster (the copy and the
// Stop that follow each start are not timed), once per install.
func Benchmark(b *testing.B, newRuntime func() runtime.Runtime) {
	for _, env := range environments(b) {
		b.Run(fmt.Sprintf("pg%d", env.install.Major), func(b *testing.B) {
			rt := newRuntime()
			for b.Loop() {
				b.StopTimer()
				f := env.newFixture(b, rt)
				b.StartTimer()
				if _, err := rt.Start(context.Background(), f.spec); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := rt.Stop(context.Background(), f.spec, stopTimeout); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(f.dir)
				b.StartTimer()
			}
		})
	}
}

// environment is one Postgres install with a cluster initdb'd once, copied
// for every check.
type environment struct {
	install  pg.Install
	runAs    *pg.OSUser
	base     string // 0711, so that runAs can reach what is below
	template string
	password string
	opts     Options
}

func environments(tb testing.TB) []*environment {
	tb.Helper()
	ctx := context.Background()
	installs, err := pg.FindInstalls(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if v := os.Getenv(MajorEnv); v != "" {
		major, err := strconv.Atoi(v)
		if err != nil {
			tb.Fatalf("%s=%q is not a major version", MajorEnv, v)
		}
		in, err := pg.Pick(installs, major)
		if err != nil {
			testenv.Skip(tb, "postgres", err.Error())
		}
		installs = []pg.Install{in}
	}
	if len(installs) == 0 {
		testenv.Skip(tb, "postgres", "no PostgreSQL install found (apt-get install postgresql, or set VELO_PG_BIN)")
	}
	runAs, err := pg.LookupRunAs()
	if err != nil {
		testenv.Skip(tb, "postgres", err.Error())
	}
	password, err := pg.GeneratePassword()
	if err != nil {
		tb.Fatal(err)
	}
	base := tempBase(tb, runAs)
	var envs []*environment
	for _, in := range installs {
		env := &environment{
			install:  in,
			runAs:    runAs,
			base:     base,
			template: filepath.Join(base, fmt.Sprintf("template-pg%d", in.Major)),
			password: password,
		}
		began := time.Now()
		if err := pg.InitDB(ctx, pg.InitOptions{Install: in, DataDir: env.template, Password: password, RunAs: runAs}); err != nil {
			tb.Fatalf("initdb with %v: %v", in, err)
		}
		if err := pg.WriteHBA(env.template, runAs); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("%v: initdb took %v", in, time.Since(began).Round(time.Millisecond))
		envs = append(envs, env)
	}
	return envs
}

// tempBase makes the suite's directory. Not t.TempDir: its parents are
// private to root and its long names would not fit a Unix socket path.
func tempBase(tb testing.TB, runAs *pg.OSUser) string {
	tb.Helper()
	parent := ""
	if runAs != nil {
		parent = "/tmp" // TMPDIR may be private to root
	}
	base, err := os.MkdirTemp(parent, "velo-rt-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		tb.Fatal(err)
	}
	return base
}

// fixture is one check's server: a fresh data directory, a free port, a
// socket directory and a log, with the runtime under test.
type fixture struct {
	rt   runtime.Runtime
	env  *environment
	dir  string
	spec runtime.Spec
}

func (env *environment) newFixture(tb testing.TB, rt runtime.Runtime) *fixture {
	tb.Helper()
	dir, err := os.MkdirTemp(env.base, "c")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		tb.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	began := time.Now()
	if err := os.CopyFS(data, os.DirFS(env.template)); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("copy of the template took %v", time.Since(began).Round(time.Millisecond))
	if err := os.Chmod(data, 0o700); err != nil {
		tb.Fatal(err)
	}
	owner, install := env.runAs, env.install
	if env.opts.Owner != nil {
		owner = env.opts.Owner
	}
	if env.opts.Install.BinDir != "" {
		install = env.opts.Install
	}
	if err := pg.Chown(data, owner); err != nil {
		tb.Fatal(err)
	}
	port, err := pg.FreePort(nil)
	if err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	if err := pg.WriteConfig(data, pg.Config{Port: port, SocketDir: sock}, owner); err != nil {
		tb.Fatal(err)
	}
	f := &fixture{
		rt:  rt,
		env: env,
		dir: dir,
		spec: runtime.Spec{
			Install:   install,
			DataDir:   data,
			Port:      port,
			SocketDir: sock,
			LogFile:   filepath.Join(dir, "log", "postgres.log"),
			RunAs:     owner,
			Password:  env.password,
			Image:     env.opts.Image,
		},
	}
	// Registered after the RemoveAll, so it runs before it.
	tb.Cleanup(func() { f.stopForCleanup(tb) })
	return f
}

// stopForCleanup stops the server whatever state the check left it in; when
// the runtime cannot, it kills what postmaster.pid names, so that no failed
// check leaves a server behind.
func (f *fixture) stopForCleanup(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := f.rt.Stop(ctx, f.spec, stopTimeout)
	if err == nil {
		return
	}
	tb.Errorf("cleanup: Stop: %v", err)
	data, rerr := os.ReadFile(filepath.Join(f.spec.DataDir, "postmaster.pid"))
	if rerr != nil {
		return
	}
	line, _, _ := strings.Cut(string(data), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 {
		if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd == f.spec.DataDir {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (f *fixture) start(t *testing.T) runtime.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	h, err := f.rt.Start(ctx, f.spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start took %v (PID %d, port %d)", time.Since(began).Round(100*time.Microsecond), h.PID, h.Port)
	return h
}

func (f *fixture) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := f.rt.Stop(ctx, f.spec, stopTimeout); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(began).Round(100*time.Microsecond))
}

func (f *fixture) status(t *testing.T) runtime.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.rt.Status(ctx, f.spec)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	// Peek agrees with Status on everything but the connection, for a
	// server that answered (one being killed may be gone between the two).
	pk, err := f.rt.Peek(ctx, f.spec)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	if want := (runtime.Status{State: st.State, PID: st.PID, Port: st.Port, StartedAt: st.StartedAt}); st.Ready && pk != want {
		t.Fatalf("Peek = %+v, Status = %+v", pk, st)
	}
	return st
}

// query runs sql on the server and returns the first column of its one row
// as text.
func (f *fixture) query(t *testing.T, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, f.spec.Port, f.spec.Password)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var out string
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func (f *fixture) exec(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, f.spec.Port, f.spec.Password)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func assertRunning(t *testing.T, st runtime.Status, h runtime.Handle) {
	t.Helper()
	if st.State != runtime.Running || !st.Ready {
		t.Fatalf("Status = %+v, want running and ready", st)
	}
	if st.PID != h.PID || st.Port != h.Port || !st.StartedAt.Equal(h.StartedAt) {
		t.Fatalf("Status = %+v, want the handle %+v", st, h)
	}
}

func assertStopped(t *testing.T, f *fixture) {
	t.Helper()
	st := f.status(t)
	if st.State != runtime.Stopped || st.PID != 0 || st.Ready {
		t.Fatalf("Status = %+v, want stopped", st)
	}
}

func testStartThenQuery(t *testing.T, f *fixture) {
	before := time.Now()
	h := f.start(t)
	if h.PID <= 0 || h.Port != f.spec.Port {
		t.Fatalf("handle %+v, want a PID and port %d", h, f.spec.Port)
	}
	// Start times are kept to the clock tick (10 ms).
	if h.StartedAt.Before(before.Add(-time.Second)) || h.StartedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("handle StartedAt %v, want about %v", h.StartedAt, before)
	}
	if got := f.query(t, "SELECT (20 + 22)::text"); got != "42" {
		t.Errorf("SELECT 20 + 22 = %q", got)
	}
	if got := f.query(t, "SHOW port"); got != strconv.Itoa(f.spec.Port) {
		t.Errorf("SHOW port = %s, want %d", got, f.spec.Port)
	}
	if got := f.query(t, "SELECT current_user::text"); got != pg.Superuser {
		t.Errorf("current_user = %s, want %s", got, pg.Superuser)
	}
	assertRunning(t, f.status(t), h)
	if f.env.opts.Shown != nil && strings.Contains(f.env.opts.Shown(t, f.spec), f.spec.Password) {
		t.Errorf("the password appears in what %s shows of the server", f.rt.Name())
	}
	if f.spec.SocketDir != "" {
		if _, err := os.Stat(pg.SocketPath(f.spec.SocketDir, f.spec.Port)); err != nil {
			t.Errorf("no Unix socket: %v", err)
		}
	}
	// The server runs as RunAs, and the password is in neither its command
	// line nor its environment; checked where the handle's PID is a process
	// of this host.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.PID)); err == nil {
		if f.spec.RunAs != nil {
			if uid := procUID(t, h.PID); uid != f.spec.RunAs.UID {
				t.Errorf("server runs as uid %d, want %d (%s)", uid, f.spec.RunAs.UID, f.spec.RunAs.Name)
			}
		}
		for _, file := range []string{"cmdline", "environ"} {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", h.PID, file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), f.spec.Password) {
				t.Errorf("the password appears in the server's %s", file)
			}
		}
	}
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if fs := strings.Fields(v); len(fs) > 1 {
				uid, _ := strconv.Atoi(fs[1]) // effective uid
				return uid
			}
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return -1
}

func testStopThenStopped(t *testing.T, f *fixture) {
	f.start(t)
	f.stop(t)
	assertStopped(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pg.Connect(ctx, f.spec.Port, f.spec.Password); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if _, err := os.Stat(filepath.Join(f.spec.DataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after a clean stop: %v", err)
	}
}

// testListFindsItsServers: a runtime that lists its servers (doctor's
// search for orphans) lists a running one by its data directory, with the
// postmaster's PID, and no longer once it is stopped.
func testListFindsItsServers(t *testing.T, f *fixture) {
	l, ok := f.rt.(runtime.Lister)
	if !ok {
		t.Skipf("%s does not implement runtime.Lister", f.rt.Name())
	}
	listed := func() []runtime.Server {
		t.Helper()
		all, err := l.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var out []runtime.Server
		for _, s := range all {
			if filepath.Clean(s.DataDir) == filepath.Clean(f.spec.DataDir) {
				out = append(out, s)
			}
		}
		return out
	}
	h := f.start(t)
	got := listed()
	if len(got) != 1 || got[0].PID != h.PID || !got[0].StartedAt.Equal(h.StartedAt) {
		t.Errorf("List after Start = %+v, want one server with PID %d started at %v", got, h.PID, h.StartedAt)
	}
	f.stop(t)
	if got := listed(); len(got) != 0 {
		t.Errorf("List after Stop = %+v, want none on %s", got, f.spec.DataDir)
	}
}

func testRestartKeepsDataAndPort(t *testing.T, f *fixture) {
	h1 := f.start(t)
	f.exec(t, "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
	f.stop(t)
	h2 := f.start(t)
	if h2.Port != h1.Port {
		t.Errorf("port after restart %d, want %d", h2.Port, h1.Port)
	}
	if got := f.query(t, "SELECT count(*)::text FROM kept"); got != "1000" {
		t.Errorf("rows after restart: %s, want 1000", got)
	}
	assertRunning(t, f.status(t), h2)
}

func testStartRunningChangesNothing(t *testing.T, f *fixture) {
	h1 := f.start(t)
	h2 := f.start(t)
	if h2.PID != h1.PID || h2.Port != h1.Port || !h2.StartedAt.Equal(h1.StartedAt) {
		t.Fatalf("second Start gave %+v, want the running server's %+v", h2, h1)
	}
	assertRunning(t, f.status(t), h1)
}

func testStopStoppedSucceeds(t *testing.T, f *fixture) {
	f.stop(t) // never started
	assertStopped(t, f)
	f.start(t)
	f.stop(t)
	f.stop(t)
	assertStopped(t, f)
}

// testImmediateStopKeepsCommits: Stop with no timeout skips the shutdown
// checkpoint, yet the server is gone and a start finds every commit.
func testImmediateStopKeepsCommits(t *testing.T, f *fixture) {
	f.start(t)
	f.exec(t, "CREATE TABLE quick (id int); INSERT INTO quick SELECT generate_series(1, 700)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.rt.Stop(ctx, f.spec, 0); err != nil {
		t.Fatalf("Stop(0): %v", err)
	}
	assertStopped(t, f)
	h := f.start(t)
	if got := f.query(t, "SELECT count(*)::text FROM quick"); got != "700" {
		t.Errorf("rows after an immediate stop: %s, want 700", got)
	}
	assertRunning(t, f.status(t), h)
}

func testKilledIsNoticedAndRestarts(t *testing.T, f *fixture) {
	h1 := f.start(t)
	f.exec(t, "CREATE TABLE survivor (id int); INSERT INTO survivor SELECT generate_series(1, 500)")
	if err := syscall.Kill(h1.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := f.status(t)
		if st.State == runtime.Stopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status 5s after SIGKILL = %+v, want stopped", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h2 := f.start(t)
	if h2.PID == h1.PID && h2.StartedAt.Equal(h1.StartedAt) {
		t.Fatalf("Start after SIGKILL returned the dead server's handle %+v", h2)
	}
	// Committed before the kill: crash recovery replays it.
	if got := f.query(t, "SELECT count(*)::text FROM survivor"); got != "500" {
		t.Errorf("rows after crash and restart: %s, want 500", got)
	}
	assertRunning(t, f.status(t), h2)
}

func testFoundAfterStarterExits(t *testing.T, f *fixture) {
	spec, err := json.Marshal(f.spec)
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(f.dir, "spec.json")
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(f.dir, "handle.json")
	top, _, _ := strings.Cut(t.Name(), "/")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(top)+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+specFile, helperOutEnv+"="+out)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, output)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("helper process wrote no handle: %v", err)
	}
	var h runtime.Handle
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	// The starter is gone; the server is not, and is found from scratch.
	assertRunning(t, f.status(t), h)
	if got := f.query(t, "SELECT 'still here'"); got != "still here" {
		t.Errorf("query = %q", got)
	}
	f.stop(t)
	assertStopped(t, f)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.PID)); err == nil {
		// A zombie nobody reaps is gone as far as anyone can tell.
		if state := procState(h.PID); state != "Z" && state != "" {
			t.Errorf("PID %d still alive (state %s) after Stop", h.PID, state)
		}
	}
}

func procState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+3 > len(data) {
		return ""
	}
	return string(data[i+2 : i+3])
}

// runHelper is the re-executed test binary's side of
// testFoundAfterStarterExits: start the server, write its handle, exit.
func runHelper(t *testing.T, newRuntime func() runtime.Runtime, specFile string) {
	data, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var spec runtime.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("helper: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := newRuntime().Start(ctx, spec)
	if err != nil {
		t.Fatalf("helper: Start: %v", err)
	}
	data, err = json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(helperOutEnv), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func testStartFailsPortTaken(t *testing.T, f *fixture) {
	l, err := net.Listen("tcp4", net.JoinHostPort(pg.LocalHost, strconv.Itoa(f.spec.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = f.rt.Start(ctx, f.spec)
	if !errors.Is(err, runtime.ErrStartFailed) {
		t.Fatalf("Start on a taken port: %v, want ErrStartFailed", err)
	}
	if !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("Start error lacks Postgres's reason (could not bind): %v", err)
	}
	t.Logf("Start error: %v", err)
	assertStopped(t, f)
}

func testStartFailsBadConfig(t *testing.T, f *fixture) {
	conf, err := os.OpenFile(filepath.Join(f.spec.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.WriteString("shared_buffers = 'lots and lots'\n"); err != nil {
		t.Fatal(err)
	}
	conf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = f.rt.Start(ctx, f.spec)
	if !errors.Is(err, runtime.ErrStartFailed) {
		t.Fatalf("Start with a broken config: %v, want ErrStartFailed", err)
	}
	if !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("Start error lacks Postgres's reason (shared_buffers): %v", err)
	}
	t.Logf("Start error: %v", err)
	assertStopped(t, f)
}

func testStartTimeoutLeavesNothing(t *testing.T, f *fixture) {
	// No server is ready 10 ms after being launched: Start launches one,
	// gives up and must take it down again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := f.rt.Start(ctx, f.spec)
	if !errors.Is(err, runtime.ErrStartFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start past its deadline: %v, want ErrStartFailed and DeadlineExceeded", err)
	}
	t.Logf("Start error: %v", err)
	assertStopped(t, f)
	// And nothing is in the way of the next start.
	h := f.start(t)
	assertRunning(t, f.status(t), h)
}
