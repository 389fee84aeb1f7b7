// Package e2e builds the velo binary and drives it as a user would, against
// real Postgres servers on real copy-on-write filesystems.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/storage/storagetest"
	"github.com/velohq/velo/internal/storage/zfs/zfstest"
	"github.com/velohq/velo/internal/testenv"
)

var veloBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "velo-bin-")
	if err != nil {
		panic(err)
	}
	// Readable by all: some tests run velo as an ordinary user.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	veloBin = filepath.Join(dir, "velo")
	build := exec.Command("go", "build", "-o", veloBin, "github.com/velohq/velo/cmd/velo")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build velo:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one isolated Velo installation: its own VELO_HOME and pool.
type env struct {
	t       testing.TB
	home    string
	pool    string
	storage string
	extra   []string // extra environment
	// user, when set, runs velo as this unprivileged user instead of root.
	user *syscall.Credential
}

// result is what one velo run gave.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// tmpDir makes a directory the Postgres user can pass through.
func tmpDir(t testing.TB, prefix string) string {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newEnv prepares a Velo home on the named driver's real filesystem.
func newEnv(t testing.TB, driver string) *env {
	return newEnvSized(t, driver, 10<<30)
}

// newEnvSized is newEnv with a loop-mounted pool of size bytes (btrfs and
// reflink; the copy and zfs pools keep their own size).
func newEnvSized(t testing.TB, driver string, size int64) *env {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "psql")
	e := &env{t: t, storage: driver}
	switch driver {
	case "copy":
		e.pool = tmpDir(t, "velo-pool-")
	case "reflink":
		e.pool = storagetest.LoopFS(t, "xfs", size, []string{"-q", "-f", "-m", "reflink=1"}, "")
	case "btrfs":
		e.pool = storagetest.LoopFS(t, "btrfs", size, []string{"-q", "-f"}, "user_subvol_rm_allowed")
	case "zfs":
		e.pool = zfstest.Pool(t)
	default:
		t.Fatalf("unknown driver %s", driver)
	}
	e.home = tmpDir(t, "velo-home-")
	// Registered after the pool's cleanup, so it runs before it: servers
	// go before their filesystem is unmounted.
	t.Cleanup(e.teardown)
	return e
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	r, err := e.runErr(args...)
	if err != nil {
		e.t.Fatalf("velo %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// runErr runs velo; unlike run it never calls the test, so it is safe from
// other goroutines. The error is set only when velo could not be run.
func (e *env) runErr(args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, veloBin, args...)
	cmd.Env = append(os.Environ(), "VELO_HOME="+e.home)
	cmd.Env = append(cmd.Env, e.extra...)
	if e.user != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.user}
		cmd.Dir = "/"
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			return result{}, err
		}
		code = ee.ExitCode()
	}
	return result{code, out.String(), errb.String()}, nil
}

// ok runs velo and fails the test unless it succeeds.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("velo %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// refused runs velo expecting exit code 2, a message containing each of
// want, and no change to the state.
func (e *env) refused(want []string, args ...string) {
	e.t.Helper()
	before := e.snapshotState()
	r := e.run(args...)
	if r.code != 2 {
		e.t.Errorf("velo %s: want exit 2, got %s", strings.Join(args, " "), r)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			e.t.Errorf("velo %s: message lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	if after := e.snapshotState(); after != before {
		e.t.Errorf("velo %s changed the state:\nbefore %s\nafter  %s", strings.Join(args, " "), before, after)
	}
}

// snapshotState is what a refusal must not change: every branch's name,
// state, port, volume and parent. The state of the branches named in
// serverOnItsOwn is left out: their servers may stop by themselves
// meanwhile (Postgres stops a server that cannot write its WAL).
func (e *env) snapshotState(serverOnItsOwn ...string) string {
	e.t.Helper()
	var bs []struct {
		Name, State, Volume, Parent string
		Port                        int
	}
	r := e.ok("branch", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &bs); err != nil {
		e.t.Fatalf("branch list --json: %v\n%s", err, r.stdout)
	}
	for i := range bs {
		if slices.Contains(serverOnItsOwn, bs[i].Name) {
			bs[i].State = "(not compared)"
		}
	}
	return fmt.Sprint(bs)
}

type connInfo struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Password string `json:"password"`
	URL      string `json:"url"`
}

func (e *env) conn(ref string) connInfo {
	e.t.Helper()
	var c connInfo
	r := e.ok("branch", "password", ref, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		e.t.Fatalf("branch password --json: %v", err)
	}
	return c
}

// psql runs SQL on a branch with the real psql and returns its unaligned output.
func (e *env) psql(ref, sql string) string {
	e.t.Helper()
	out, err := e.psqlErr(ref, sql)
	if err != nil {
		e.t.Fatalf("psql on %s: %v\n%s", ref, err, out)
	}
	return out
}

func (e *env) psqlErr(ref, sql string) (string, error) {
	c := e.conn(ref)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "localhost", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// rows returns the values of a one-column query, one per line.
func (e *env) rows(ref, sql string) string {
	return strings.ReplaceAll(e.psql(ref, sql), "\n", ",")
}

func (e *env) create(project string, extra ...string) {
	e.t.Helper()
	args := []string{"project", "create", project, "--pool", e.pool}
	if e.storage == "copy" || e.storage == "reflink" {
		args = append(args, "--storage", e.storage)
	}
	e.ok(append(args, extra...)...)
}

// teardown deletes every project, then stops any server left under home
// or pool, so that filesystems can be unmounted.
func (e *env) teardown() {
	r := e.run("project", "list", "--json")
	var ps []struct{ Name string }
	_ = json.Unmarshal([]byte(r.stdout), &ps)
	for _, p := range ps {
		if r := e.run("project", "delete", p.Name, "--force"); r.code != 0 {
			e.t.Logf("teardown: %s", r)
		}
	}
	killServers(e.t, e.home, e.pool)
}

// killServers stops any postmaster whose command line names one of dirs.
func killServers(t testing.TB, dirs ...string) {
	signalServers(t, syscall.SIGQUIT, dirs...)
}

// signalServers sends sig to every postmaster whose command line names one of dirs.
func signalServers(t testing.TB, sig syscall.Signal, dirs ...string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if !strings.Contains(cmd, "postgres") || !strings.Contains(cmd, " -D ") {
			continue
		}
		for _, d := range dirs {
			if d != "" && strings.Contains(cmd, d) {
				var pid int
				fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
				t.Logf("signal %v to server %d: %s", sig, pid, cmd)
				_ = syscall.Kill(pid, sig)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
}
