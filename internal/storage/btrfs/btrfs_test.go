package btrfs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/btrfs"
	"github.com/velohq/velo/internal/storage/storagetest"
)

func loopBtrfs(tb testing.TB) string {
	return filepath.Join(storagetest.LoopFS(tb, "btrfs", 3<<30, []string{"-q", "-f"}, "user_subvol_rm_allowed"), "velo")
}

func TestConformance(t *testing.T) {
	root := loopBtrfs(t)
	storagetest.Suite(t, func(t *testing.T) storage.Driver {
		d, err := btrfs.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestNewRefusesOtherFilesystems(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || uint32(st.Type) == unix.BTRFS_SUPER_MAGIC {
		t.Skipf("the temporary directory %s is on btrfs (or statfs failed: %v)", dir, err)
	}
	_, err := btrfs.New(filepath.Join(dir, "not", "yet", "made"))
	if !errors.Is(err, errdefs.ErrUnsupported) || !strings.Contains(err.Error(), "not btrfs") {
		t.Errorf("New on a non-btrfs directory: %v; want ErrUnsupported saying why", err)
	}
}

// Snapshots are read-only subvolumes, and whatever a crash leaves under
// tmp/ or trash/ (subvolumes, read-only ones, plain directories) is swept.
func TestReadOnlySnapshotsAndSweep(t *testing.T) {
	root := loopBtrfs(t)
	d, err := btrfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := d.CreateVolume(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(root, "snap", "s", "ro", "f"), []byte("y"), 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a snapshot: %v; want EROFS", err)
	}

	// Leftovers of interrupted builds and removals.
	if err := d.Ops.Snapshot(ctx, v, filepath.Join(root, "tmp", "half-snap")); err != nil {
		t.Fatal(err)
	}
	if err := d.Ops.Clone(ctx, filepath.Join(root, "snap", "s"), filepath.Join(root, "trash", "rm-clone")); err != nil {
		t.Fatal(err)
	}
	if err := d.Ops.MakeVolume(ctx, filepath.Join(root, "tmp", "vol")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp", "plain", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if left, err := d.Leftovers(); err != nil || len(left) != 4 {
		t.Fatalf("Leftovers = %v, %v; want 4", left, err)
	}
	if err := d.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if left, err := d.Leftovers(); err != nil || len(left) != 0 {
		t.Errorf("after Sweep, Leftovers = %v, %v", left, err)
	}

	if err := d.DestroySnapshot(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if err := d.DestroyVolume(ctx, "v"); err != nil {
		t.Fatal(err)
	}
}

func TestNewNeedsTheBtrfsCommand(t *testing.T) {
	root := loopBtrfs(t)
	t.Setenv("PATH", t.TempDir())
	_, err := btrfs.New(root)
	if !errors.Is(err, errdefs.ErrUnsupported) || !strings.Contains(err.Error(), "btrfs-progs") {
		t.Errorf("New without the btrfs command: %v; want ErrUnsupported naming btrfs-progs", err)
	}
}

func BenchmarkSnapshotClone(b *testing.B) {
	d, err := btrfs.New(loopBtrfs(b))
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Bench(b, d)
}
