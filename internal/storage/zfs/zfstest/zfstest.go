// Package zfstest makes throwaway ZFS pools for tests: a pool on a sparse
// image file, served by zfs-fuse (the only ZFS a kernel without loadable
// modules can have).
package zfstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
)

// Size is the pool's image file. zfs-fuse dies when a pool fills up, so it
// is several times what any one test writes; the file is sparse, so only
// what is written takes disk space.
const Size = 4 << 30

// Pool creates a ZFS pool with a unique name on a sparse image file in a
// temporary directory, starting the zfs-fuse daemon when none runs (and
// leaving it running), and returns the pool's name. Its datasets mount
// under that directory. The pool is destroyed and the file removed when
// the test ends, failed or not. It needs root and the zfs, zpool and
// zfs-fuse commands; otherwise it skips (or fails under VELO_TEST_REQUIRE).
func Pool(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	for _, cmd := range []string{"zfs", "zpool", "zfs-fuse"} {
		testenv.RequireCommand(t, cmd)
	}
	dir, err := os.MkdirTemp("", "velo-zfs-")
	if err != nil {
		t.Fatal(err)
	}
	// The Postgres user must pass through to data directories in the pool.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir)

	img := filepath.Join(dir, "pool.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(Size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	name := fmt.Sprintf("velotest%08x", rand.Uint32())
	t.Cleanup(func() {
		destroyPool(t, name)
		_ = os.RemoveAll(dir)
	})
	run(t, "zpool", "create", "-f", "-m", filepath.Join(dir, "mnt"), name, img)
	return name
}

// startDaemon starts zfs-fuse unless one answers, and waits until it does.
// It asks zpool rather than pgrep: a daemon that died (as zfs-fuse does
// when a pool fills up) can linger as a zombie that pgrep still finds.
func startDaemon(t testing.TB, dir string) {
	t.Helper()
	if daemonAnswers() == nil {
		return
	}
	// Test processes of several packages run at once (go test -p): one
	// starts the daemon, the others wait for it and find it answering.
	unlock := lockStart(t)
	defer unlock()
	if daemonAnswers() == nil {
		return
	}
	// The daemon forks and outlives this test: its output goes to a file,
	// since a pipe it inherited would keep the test waiting for EOF.
	logPath := filepath.Join(dir, "zfs-fuse.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("zfs-fuse")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("start zfs-fuse: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = daemonAnswers(); err == nil {
			return
		}
	}
	t.Fatalf("zfs-fuse started but zpool cannot reach it: %v", err)
}

// lockStart takes an exclusive flock on a lock file in the temporary
// directory, held until the returned function is called.
func lockStart(t testing.TB) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "velo-test-zfs-fuse.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

func daemonAnswers() error {
	if out, err := exec.Command("zpool", "list", "-H", "-o", "name").CombinedOutput(); err != nil {
		return fmt.Errorf("zpool list: %v: %s", err, out)
	}
	return nil
}

// destroyPool retries while the pool is busy: zfs-fuse holds a dataset for
// about a second after the last process using it exits.
func destroyPool(t testing.TB, name string) {
	var out []byte
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err = exec.Command("zpool", "destroy", "-f", name).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "busy") {
			break
		}
	}
	if err != nil {
		t.Errorf("zpool destroy -f %s: %v\n%s", name, err, out)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
