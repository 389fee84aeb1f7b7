// Package harness is what the end-to-end tests (the packages under test/e2e)
// share: it builds the velo binary and drives it as a user would, against
// real Postgres servers on real copy-on-write filesystems.
package harness

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

// VeloBin is the velo binary Main built.
var VeloBin string

// Main builds the velo binary, runs the package's tests and exits: each
// test package's TestMain calls it.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "velo-bin-")
	if err != nil {
		panic(err)
	}
	// Readable by all: some tests run velo as an ordinary user.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	VeloBin = filepath.Join(dir, "velo")
	build := exec.Command("go", "build", "-o", VeloBin, "github.com/velohq/velo/cmd/velo")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build velo:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Env is one isolated Velo installation: its own VELO_HOME and pool.
type Env struct {
	T       testing.TB
	Home    string
	Pool    string
	Storage string
	Extra   []string // extra environment
	// user, when set, runs velo as this unprivileged user instead of root.
	User *syscall.Credential
	// Netns, when set, runs velo, psql and pgbench in that network
	// namespace (NewNetns): a second host.
	Netns string
}

// Result is what one velo run gave.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// TmpDir makes a directory the Postgres user can pass through.
func TmpDir(t testing.TB, prefix string) string {
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

// NewEnv prepares a Velo home on the named driver's real filesystem.
func NewEnv(t testing.TB, driver string) *Env {
	return NewEnvSized(t, driver, 10<<30)
}

// NewEnvSized is NewEnv with a loop-mounted pool of size bytes (btrfs and
// reflink; the copy and zfs pools keep their own size).
func NewEnvSized(t testing.TB, driver string, size int64) *Env {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "psql")
	e := &Env{T: t, Storage: driver}
	switch driver {
	case "copy":
		e.Pool = TmpDir(t, "velo-pool-")
	case "reflink":
		e.Pool = storagetest.LoopFS(t, "xfs", size, []string{"-q", "-f", "-m", "reflink=1"}, "")
	case "btrfs":
		e.Pool = storagetest.LoopFS(t, "btrfs", size, []string{"-q", "-f"}, "user_subvol_rm_allowed")
	case "zfs":
		e.Pool = zfstest.Pool(t)
	default:
		t.Fatalf("unknown driver %s", driver)
	}
	e.Home = TmpDir(t, "velo-home-")
	// Registered after the pool's cleanup, so it runs before it: servers
	// go before their filesystem is unmounted.
	t.Cleanup(e.Teardown)
	return e
}

func (e *Env) Run(args ...string) Result {
	e.T.Helper()
	r, err := e.RunErr(args...)
	if err != nil {
		e.T.Fatalf("velo %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// RunErr runs velo; unlike Run it never calls the test, so it is safe from
// other goroutines. The error is set only when velo could not be run.
func (e *Env) RunErr(args ...string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := NetnsCommand(ctx, e.Netns, VeloBin, args...)
	cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home)
	cmd.Env = append(cmd.Env, e.Extra...)
	if e.User != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.User}
		cmd.Dir = "/"
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			return Result{}, err
		}
		code = ee.ExitCode()
	}
	return Result{code, out.String(), errb.String()}, nil
}

// OK runs velo and fails the test unless it succeeds.
func (e *Env) OK(args ...string) Result {
	e.T.Helper()
	r := e.Run(args...)
	if r.Code != 0 {
		e.T.Fatalf("velo %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// Refused runs velo expecting exit code 2, a message containing each of
// want, and no change to the state.
func (e *Env) Refused(want []string, args ...string) {
	e.T.Helper()
	before := e.SnapshotState()
	r := e.Run(args...)
	if r.Code != 2 {
		e.T.Errorf("velo %s: want exit 2, got %s", strings.Join(args, " "), r)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			e.T.Errorf("velo %s: message lacks %q:\n%s", strings.Join(args, " "), w, r.Stderr)
		}
	}
	if after := e.SnapshotState(); after != before {
		e.T.Errorf("velo %s changed the state:\nbefore %s\nafter  %s", strings.Join(args, " "), before, after)
	}
}

// SnapshotState is what a refusal must not change: every branch's name,
// state, port, volume and parent. The state of the branches named in
// serverOnItsOwn is left out: their servers may stop by themselves
// meanwhile (Postgres stops a server that cannot write its WAL).
func (e *Env) SnapshotState(serverOnItsOwn ...string) string {
	e.T.Helper()
	var bs []struct {
		Name, State, Volume, Parent string
		Port                        int
	}
	r := e.OK("branch", "list", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &bs); err != nil {
		e.T.Fatalf("branch list --json: %v\n%s", err, r.Stdout)
	}
	for i := range bs {
		if slices.Contains(serverOnItsOwn, bs[i].Name) {
			bs[i].State = "(not compared)"
		}
	}
	return fmt.Sprint(bs)
}

type ConnInfo struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Password string `json:"password"`
	URL      string `json:"url"`
	CACert   string `json:"ca_cert"`
	// The one-port URLs through velo serve.
	RouterURL    string `json:"router_url"`
	RouterTLSURL string `json:"router_tls_url"`
}

func (e *Env) Conn(ref string) ConnInfo {
	e.T.Helper()
	var c ConnInfo
	r := e.OK("branch", "password", ref, "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &c); err != nil {
		e.T.Fatalf("branch password --json: %v", err)
	}
	return c
}

// Psql runs SQL on a branch with the real psql and returns its unaligned output.
func (e *Env) Psql(ref, sql string) string {
	e.T.Helper()
	out, err := e.PsqlErr(ref, sql)
	if err != nil {
		e.T.Fatalf("psql on %s: %v\n%s", ref, err, out)
	}
	return out
}

func (e *Env) PsqlErr(ref, sql string) (string, error) {
	c := e.Conn(ref)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := NetnsCommand(ctx, e.Netns, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "localhost", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Rows returns the values of a one-column query, one per line.
func (e *Env) Rows(ref, sql string) string {
	return strings.ReplaceAll(e.Psql(ref, sql), "\n", ",")
}

func (e *Env) Create(project string, extra ...string) {
	e.T.Helper()
	args := []string{"project", "create", project, "--pool", e.Pool}
	if e.Storage == "copy" || e.Storage == "reflink" {
		args = append(args, "--storage", e.Storage)
	}
	e.OK(append(args, extra...)...)
}

// Teardown deletes every project, then stops any server left under home
// or pool, so that filesystems can be unmounted.
func (e *Env) Teardown() {
	r := e.Run("project", "list", "--json")
	var ps []struct{ Name string }
	_ = json.Unmarshal([]byte(r.Stdout), &ps)
	for _, p := range ps {
		if r := e.Run("project", "delete", p.Name, "--force"); r.Code != 0 {
			e.T.Logf("teardown: %s", r)
		}
	}
	KillServers(e.T, e.Home, e.Pool)
}

// KillServers stops any postmaster whose command line names one of dirs.
func KillServers(t testing.TB, dirs ...string) {
	SignalServers(t, syscall.SIGQUIT, dirs...)
}

// SignalServers sends sig to every postmaster whose command line names one of dirs.
func SignalServers(t testing.TB, sig syscall.Signal, dirs ...string) {
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
