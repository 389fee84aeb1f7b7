package zfs_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/zfs"
	"github.com/velohq/velo/internal/storage/zfs/zfstest"
)

// TestChanges: on a real pool, the changes of a clone since its origin name
// the blocks it wrote, by the file's inode number, and not the others; a
// file made since is listed whole; the origin's own later snapshot lists
// nothing of the clone's.
func TestChanges(t *testing.T) {
	ctx := context.Background()
	d, err := zfs.New(ctx, zfstest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	if !d.ListsChanges() {
		t.Fatal("zstreamdump is not installed: the zfs driver cannot list changes (scripts/install-deps.sh installs zfs-fuse, which has it)")
	}
	t.Cleanup(func() {
		for _, id := range []string{"chgt2", "chgt"} {
			_ = d.DestroySnapshot(ctx, id)
		}
		_ = d.DestroyVolume(ctx, "chgc")
		_ = d.DestroySnapshot(ctx, "chgs")
		_ = d.DestroyVolume(ctx, "chgv")
	})
	const block = 8192
	vol, err := d.CreateVolume(ctx, "chgv")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100*block)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(vol, "rel"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "chgv", "chgs"); err != nil {
		t.Fatal(err)
	}
	clone, err := d.Clone(ctx, "chgs", "chgc")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(clone, "rel"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, block), 10*block); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(clone, "new"), data[:3*block], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "chgc", "chgt"); err != nil {
		t.Fatal(err)
	}
	ch, err := d.Changes(ctx, "chgs", "chgt")
	if err != nil {
		t.Fatal(err)
	}
	covers := func(rs []storage.ByteRange, off int64) bool {
		for _, r := range rs {
			if off >= r.Off && (r.Len < 0 || off+block <= r.Off+r.Len) {
				return true
			}
		}
		return false
	}
	rel, nw := ino(t, filepath.Join(clone, "rel")), ino(t, filepath.Join(clone, "new"))
	if ino(t, filepath.Join(vol, "rel")) != rel {
		t.Fatalf("the clone's file has another inode number than its origin's")
	}
	if !covers(ch[rel], 10*block) {
		t.Errorf("block 10 of rel, written in the clone, is not listed: %v", ch[rel])
	}
	for _, b := range []int64{0, 9, 11, 50, 99} {
		if covers(ch[rel], b*block) {
			t.Errorf("block %d of rel, not written, is listed: %v", b, ch[rel])
		}
	}
	for b := int64(0); b < 3; b++ {
		if !covers(ch[nw], b*block) {
			t.Errorf("block %d of the new file is not listed: %v", b, ch[nw])
		}
	}
	// The origin wrote nothing since: its snapshot lists no block of rel.
	if err := d.Snapshot(ctx, "chgv", "chgt2"); err != nil {
		t.Fatal(err)
	}
	ch, err = d.Changes(ctx, "chgs", "chgt2")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{0, 10, 99} {
		if covers(ch[rel], b*block) {
			t.Errorf("the origin's later snapshot lists block %d of rel: %v", b, ch[rel])
		}
	}
	if _, err := d.Changes(ctx, "chgs", "nosuch"); err == nil {
		t.Error("Changes to a snapshot that does not exist did not fail")
	}
}

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
