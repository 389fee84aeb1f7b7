package pgconf

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// WriteAtomic leaves a file that already holds the data as it is (no
// new inode), and replaces it when the data or the mode differ.
func TestWriteAtomicUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "velo.conf")
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if err := WriteAtomic(path, []byte("port = 5432\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := inode()
	if err := WriteAtomic(path, []byte("port = 5432\n"), 0o600); err != nil || inode() != first {
		t.Fatalf("the same content again: %v, inode %d -> %d; want it left as it is", err, first, inode())
	}
	if err := WriteAtomic(path, []byte("port = 5432\n"), 0o644); err != nil || inode() == first {
		t.Fatalf("another mode: %v; want the file replaced", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
	second := inode()
	if err := WriteAtomic(path, []byte("port = 5433\n"), 0o644); err != nil || inode() == second {
		t.Fatalf("other content: %v; want the file replaced", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "port = 5433\n" {
		t.Fatalf("content %q", b)
	}
}
