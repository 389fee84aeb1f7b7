package diff

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/velohq/velo/internal/storage"
)

func TestCandidates(t *testing.T) {
	got := candidates(
		[]storage.ByteRange{{Off: 3 * BlockSize, Len: BlockSize}, {Off: 90 * BlockSize, Len: -1}},
		[]storage.ByteRange{{Off: 4*BlockSize + 100, Len: 10}, {Off: 10 * BlockSize, Len: 2 * BlockSize}, {Off: 500 * BlockSize, Len: BlockSize}},
		50*BlockSize, 100)
	want := []Range{{3, 5}, {10, 12}, {50, 100}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}

// TestObjectFinder: the same file of the lineage on both sides (one inode
// here) is read only where a side's list says it wrote; two files that are
// not the same one are read whole.
func TestObjectFinder(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "16384"), filepath.Join(dir, "16385")
	var data []byte
	for i := 0; i < 20; i++ {
		data = append(data, page(uint64(i+1), byte(i))...)
	}
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	ino, _ := inode(mustOpen(t, a))
	loads := 0
	f := &ObjectFinder{Load: func(context.Context) (old, new map[uint64][]storage.ByteRange, err error) {
		loads++
		return map[uint64][]storage.ByteRange{ino: {{Off: 2 * BlockSize, Len: BlockSize}}},
			map[uint64][]storage.ByteRange{ino: {{Off: 7 * BlockSize, Len: 2 * BlockSize}}}, nil
	}}
	found, err := f.Changed(context.Background(), a, a)
	if err != nil {
		t.Fatal(err)
	}
	if found.Read != 2*3*BlockSize || len(found.Ranges) != 0 || found.Blocks != st.Size()/BlockSize || found.Method != "zfs-send" {
		t.Errorf("the same file: %+v, want 3 blocks read on each side, none differing", found)
	}
	// Another file: read whole, and a block written differently found.
	if err := os.WriteFile(b, append(data[:5*BlockSize:5*BlockSize], append(page(99, 1), data[6*BlockSize:]...)...), 0o600); err != nil {
		t.Fatal(err)
	}
	found, err = f.Changed(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if found.Read != 2*st.Size() || !reflect.DeepEqual(found.Ranges, []Range{{5, 6}}) {
		t.Errorf("two files: %+v, want both read whole and block 5 found", found)
	}
	if loads != 1 {
		t.Errorf("Load called %d times, want once", loads)
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
