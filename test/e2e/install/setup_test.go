package install

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/storage/storagetest"
	"github.com/velohq/velo/internal/testenv"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestSetupPoolFile makes a loop-backed btrfs pool with velo setup, runs
// it again (nothing to do), uses the pool, and installs the boot unit.
func TestSetupPoolFile(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.btrfs")
	dir := harness.TmpDir(t, "velo-setup-")
	img := filepath.Join(dir, "pool.img")
	mnt := filepath.Join(dir, "pool")
	e := &env{&harness.Env{T: t, Home: harness.TmpDir(t, "velo-home-"), Pool: mnt, Storage: "btrfs"}}
	t.Cleanup(func() {
		e.Teardown()
		storagetest.Unmount(t, mnt)
	})
	r := e.OK("setup", "--pool-file", img, "--size", "2G", "--fs", "btrfs")
	for _, want := range []string{"made a btrfs image", "mounted it at " + mnt, "/etc/fstab", "velo project create NAME --pool " + mnt} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("setup output lacks %q:\n%s", want, r.Stdout)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || uint32(st.Type) != uint32(unix.BTRFS_SUPER_MAGIC) {
		t.Fatalf("%s is not a mounted btrfs: %v", mnt, err)
	}
	if r := e.OK("setup", "--pool-file", img, "--size", "2G"); !strings.Contains(r.Stdout, "already mounted") {
		t.Errorf("second setup is not idempotent:\n%s", r.Stdout)
	}
	e.Create("onloop")
	e.Psql("onloop/main", "SELECT 1")
	e.Refused([]string{"--size"}, "setup", "--pool-file", filepath.Join(dir, "other.img"), "--size", "lots")
	e.Refused([]string{"btrfs or xfs"}, "setup", "--pool-file", filepath.Join(dir, "other.img"), "--fs", "ext4")
	if _, err := os.Stat(filepath.Join(dir, "other.img")); err == nil {
		t.Error("a refused setup made an image")
	}

	units := filepath.Join(dir, "units")
	r = e.OK("setup", "--systemd", "--unit-dir", units)
	unit, err := os.ReadFile(filepath.Join(units, "velo.service"))
	if err != nil {
		t.Fatalf("no unit written: %v\n%s", err, r)
	}
	for _, want := range []string{"ExecStart=", "branch start --all", "VELO_HOME=" + e.Home, "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if r := e.OK("setup", "--systemd", "--unit-dir", units); !strings.Contains(r.Stdout, "already in place") {
		t.Errorf("second --systemd:\n%s", r.Stdout)
	}
	testServeUnit(e, filepath.Join(units, "velo-serve.service"), filepath.Join(units, "velo.service"))

	// The bash completion, as velo completion bash prints it, where
	// bash-completion reads it; a second run finds it in place.
	completions := filepath.Join(dir, "bash_completion.d")
	r = e.OK("setup", "--completion", "--completion-dir", completions)
	script, err := os.ReadFile(filepath.Join(completions, "velo"))
	if err != nil {
		t.Fatalf("no completion written: %v\n%s", err, r)
	}
	if want := e.OK("completion", "bash").Stdout; string(script) != want {
		t.Errorf("installed completion differs from velo completion bash (%d bytes, want %d)", len(script), len(want))
	}
	if fi, err := os.Stat(filepath.Join(completions, "velo")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("completion file mode: %v %v", fi.Mode(), err)
	}
	if r := e.OK("setup", "--completion", "--completion-dir", completions); !strings.Contains(r.Stdout, "already in place") {
		t.Errorf("second --completion:\n%s", r.Stdout)
	}
	e.Refused([]string{"goes with --completion"}, "setup", "--completion-dir", completions)
	e.Refused([]string{"must be an absolute path"}, "setup", "--completion", "--completion-dir", "relative/dir")
}

// testServeUnit checks velo-serve.service: systemd-analyze verifies both
// units; then the service's command runs as systemd would run it (its
// User, Environment and ExecStart, the listen addresses given as a
// systemctl edit drop-in would give them), routes to a branch, and stops
// on the unit's KillSignal with only its own process signalled
// (KillMode=process), leaving the branch's server running.
func testServeUnit(e *env, path string, others ...string) {
	t := e.T.(*testing.T)
	testenv.RequireCommand(t, "systemd-analyze")
	if out, err := exec.Command("systemd-analyze", append([]string{"verify", path}, others...)...).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(text), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{"KillMode": "process", "Restart": "on-failure", "User": "root",
		"Environment": "VELO_HOME=" + e.Home, "After": "velo.service network.target"} {
		if fields[k] != want {
			t.Errorf("velo-serve.service: %s=%q, want %q", k, fields[k], want)
		}
	}
	exe := strings.Fields(fields["ExecStart"])
	if len(exe) != 2 || exe[1] != "serve" {
		t.Fatalf("velo-serve.service ExecStart=%q", fields["ExecStart"])
	}
	port := freePort(t)
	cmd := exec.Command(exe[0], exe[1], "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--http", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	cmd.Env = append(os.Environ(), fields["Environment"])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c := e.Conn("onloop/main")
	url := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/onloop/main", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		psql := exec.Command("psql", "-X", "-At", url, "-c", "SELECT 'routed'")
		psql.Env = append(os.Environ(), "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=5")
		out, err := psql.CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == "routed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("velo serve from the unit does not route: %v %s\n%s", err, out, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("velo serve on SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("velo serve did not stop within 30s of SIGTERM")
	}
	if out := e.Psql("onloop/main", "SELECT 'still running'"); out != "still running" {
		t.Errorf("the branch after velo serve stopped: %q", out)
	}
}

// freePort is a TCP port free on loopback.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
