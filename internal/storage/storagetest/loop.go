package storagetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
)

// LoopFS makes a filesystem of type fstype ("btrfs" or "xfs") in an image
// file of size bytes, loop-mounts it, and returns the mount point. The mount
// and the image are removed when the test ends, failed or not. It needs
// root and the mkfs tool; otherwise it skips (or fails under
// VELO_TEST_REQUIRE).
func LoopFS(t testing.TB, fstype string, size int64, mkfsArgs []string, mountOpts string) string {
	t.Helper()
	testenv.RequireRoot(t)
	mkfs := testenv.RequireCommand(t, "mkfs."+fstype)
	dir, err := os.MkdirTemp("", "velo-"+fstype+"-")
	if err != nil {
		t.Fatal(err)
	}
	// The Postgres user must pass through to data directories on the mount.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "pool.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		Unmount(t, mnt)
		_ = os.RemoveAll(dir)
	})
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, mkfs, append(mkfsArgs, img)...)
	opts := "loop"
	if mountOpts != "" {
		opts += "," + mountOpts
	}
	run(t, "mount", "-o", opts, img, mnt)
	// The mount point itself must be traversable by the Postgres user.
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// Unmount unmounts mnt (retrying while it is busy) and frees its loop device.
func Unmount(t testing.TB, mnt string) {
	for i := 0; i < 20; i++ {
		out, err := exec.Command("umount", mnt).CombinedOutput()
		if err == nil || strings.Contains(string(out), "not mounted") {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
		t.Logf("umount -l %s: %v: %s", mnt, err, out)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
