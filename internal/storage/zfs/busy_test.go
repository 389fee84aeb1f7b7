package zfs

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/storage/zfs/zfstest"
	"github.com/velohq/velo/internal/testenv"
)

// A volume still mounted in another mount namespace (a program started by
// unshare -m, as ip netns exec does, while it was mounted) stays busy
// after zfs unmount here: the destroy says so and names the program, and
// succeeds once it ends.
func TestDestroyBusyElsewhere(t *testing.T) {
	testenv.RequireCommand(t, "unshare")
	ctx := context.Background()
	d, err := New(ctx, zfstest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateVolume(ctx, "vbusy"); err != nil {
		t.Fatal(err)
	}
	// Private propagation, so that the unmount here does not reach it
	// (the way a host whose root mount is private behaves).
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// unshare has made its namespace once it has exec'd sleep.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, err := exec.Command("ps", "-o", "comm=", "-p", strconv.Itoa(cmd.Process.Pid)).Output(); err == nil && strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not start sleep")
		}
		time.Sleep(20 * time.Millisecond)
	}
	busyFor = time.Second
	defer func() { busyFor = 30 * time.Second }()
	err = d.DestroyVolume(ctx, "vbusy")
	want := "still mounted in the mount namespace of pid " + strconv.Itoa(cmd.Process.Pid) + " (sleep)"
	if err == nil || !strings.Contains(err.Error(), "dataset is busy") || !strings.Contains(err.Error(), want) {
		t.Fatalf("destroy of a volume mounted in another namespace: %v; want busy, and %q", err, want)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	busyFor = 30 * time.Second
	if err := d.DestroyVolume(ctx, "vbusy"); err != nil {
		t.Fatalf("destroy once the other namespace is gone: %v", err)
	}
}
