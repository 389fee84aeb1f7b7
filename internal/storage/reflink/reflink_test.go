package reflink_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/reflink"
	"github.com/velohq/velo/internal/storage/storagetest"
)

func loopXFS(tb testing.TB, reflinkOpt string) string {
	return filepath.Join(storagetest.LoopFS(tb, "xfs", 3<<30, []string{"-q", "-f", "-m", "reflink=" + reflinkOpt}, ""), "velo")
}

func suite(t *testing.T, root string) {
	storagetest.Suite(t, func(t *testing.T) storage.Driver {
		d, err := reflink.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestConformance(t *testing.T) {
	suite(t, loopXFS(t, "1"))
}

// btrfs clones files too.
func TestConformanceOnBtrfs(t *testing.T) {
	suite(t, filepath.Join(storagetest.LoopFS(t, "btrfs", 3<<30, []string{"-q", "-f"}, ""), "velo"))
}

func TestNewRefusesWithoutReflink(t *testing.T) {
	_, err := reflink.New(loopXFS(t, "0"))
	if !errors.Is(err, errdefs.ErrUnsupported) || !strings.Contains(err.Error(), "cannot clone files") {
		t.Errorf("New on XFS without reflink: %v; want ErrUnsupported saying the filesystem cannot clone files", err)
	}
}

// Usage reads extents in batches: a file of 600 separate extents, half of
// them rewritten in a clone, makes the clone's own exactly those blocks.
func TestUsageCountsUnsharedExtents(t *testing.T) {
	d, err := reflink.New(loopXFS(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := d.CreateVolume(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	const n, block, stride = 600, 4096, 64 << 10
	data := make([]byte, block)
	for i := range data {
		data[i] = byte(i)
	}
	writeBlocks := func(path string, every int) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Writing below the end of file keeps XFS from preallocating
		// past it, and so leaves each block its own extent.
		if err := f.Truncate(n * stride); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i += every {
			if _, err := f.WriteAt(data, int64(i)*stride); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	writeBlocks(filepath.Join(v, "f"), 1)
	if u, err := d.Usage(ctx, "v"); err != nil || u.Exclusive < n*block || u.Exclusive > n*block+64<<10 {
		t.Errorf("volume of %d blocks: usage %+v, %v", n, u, err)
	}
	if err := d.Snapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	c, err := d.Clone(ctx, "s", "c")
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(filepath.Join(c, "f"), 2)
	syscall.Sync()
	want := int64(n / 2 * block)
	if u, err := d.Usage(ctx, "c"); err != nil || u.Exclusive < want || u.Exclusive > want+64<<10 || u.Referenced < n*block {
		t.Errorf("clone with %d of its %d blocks rewritten: usage %+v, %v; want about %d exclusive", n/2, n, u, err, want)
	}
	if u, err := d.Usage(ctx, "v"); err != nil || u.Exclusive > 64<<10 {
		t.Errorf("volume sharing all with its snapshot: usage %+v, %v", u, err)
	}
}

func BenchmarkSnapshotClone(b *testing.B) {
	d, err := reflink.New(loopXFS(b, "1"))
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Bench(b, d)
}

// On a full filesystem New still opens a root it used before (deleting a
// volume there is how space comes back); a new root, which it cannot probe,
// is refused with the reason.
func TestNewOnFullFilesystem(t *testing.T) {
	mnt := storagetest.LoopFS(t, "xfs", 512<<20, []string{"-q", "-f", "-m", "reflink=1"}, "")
	root := filepath.Join(mnt, "velo")
	d, err := reflink.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateVolume(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	// Take the free blocks in shrinking steps until not one is left.
	for _, n := range []int64{int64(st.Bavail) * st.Bsize / 2, 16 << 20, 1 << 20, 64 << 10, 4 << 10} {
		for n > 0 && syscall.Fallocate(int(filler.Fd()), 0, mustSize(t, filler), n) == nil {
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "one-more"), make([]byte, 64<<10), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filesystem not full: writing 64 KiB gave %v", err)
	}
	d, err = reflink.New(root)
	if err != nil {
		t.Fatalf("New on a full filesystem, root used before: %v", err)
	}
	if _, err := d.Path(context.Background(), "v1"); err != nil {
		t.Errorf("volume v1 on the full filesystem: %v", err)
	}
	if _, err := reflink.New(filepath.Join(mnt, "fresh")); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("New of a fresh root on a full filesystem: %v; want an error saying there is no space", err)
	}
}

func mustSize(t *testing.T, f *os.File) int64 {
	t.Helper()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
