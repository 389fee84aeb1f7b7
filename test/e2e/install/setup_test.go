package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
