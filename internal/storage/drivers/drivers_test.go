package drivers_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/storage/storagetest"
)

func TestResolveByFilesystem(t *testing.T) {
	ctx := context.Background()
	btrfsMnt := storagetest.LoopFS(t, "btrfs", 1<<30, []string{"-q", "-f"}, "")
	xfsMnt := storagetest.LoopFS(t, "xfs", 1<<30, []string{"-q", "-f", "-m", "reflink=1"}, "")
	plainXFS := storagetest.LoopFS(t, "xfs", 1<<30, []string{"-q", "-f", "-m", "reflink=0"}, "")
	for _, c := range []struct{ pool, force, want string }{
		{btrfsMnt, "", "btrfs"},
		{xfsMnt, "", "reflink"},
		{plainXFS, "", "copy"},
		{btrfsMnt, "copy", "copy"},
		{btrfsMnt, "reflink", "reflink"},
		{"tank", "", "zfs"},
	} {
		got, pool, err := drivers.Resolve(ctx, c.pool, c.force, "/nonexistent")
		if err != nil || got != c.want || pool != c.pool {
			t.Errorf("Resolve(%q, %q) = %q, %q, %v; want %q", c.pool, c.force, got, pool, err, c.want)
		}
	}
	// The chosen driver really opens there.
	for pool, name := range map[string]string{btrfsMnt: "btrfs", xfsMnt: "reflink", plainXFS: "copy"} {
		d, err := drivers.Open(ctx, name, pool)
		if err != nil || d.Name() != name {
			t.Errorf("Open(%s, %s) = %v", name, pool, err)
		}
	}
	if _, err := drivers.Open(ctx, "reflink", plainXFS); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("reflink forced onto XFS without reflink: %v", err)
	}
}

func TestResolveRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct{ pool, force string }{
		{dir, "ntfs"},
		{dir, "zfs"},
		{"tank", "btrfs"},
		{"../relative", ""},
		{"has space", ""},
	} {
		if _, _, err := drivers.Resolve(ctx, c.pool, c.force, dir); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Resolve(%q, %q) = %v; want ErrInvalidArgument", c.pool, c.force, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("refusals created %v", entries)
	}
}
