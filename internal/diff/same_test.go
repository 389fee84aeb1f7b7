package diff

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// page is one block with page LSN lsn and a fill byte after the header.
func page(lsn uint64, fill byte) []byte {
	p := make([]byte, BlockSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(lsn>>32))
	binary.LittleEndian.PutUint32(p[4:], uint32(lsn))
	for i := 24; i < BlockSize; i++ {
		p[i] = fill
	}
	return p
}

func writeRel(t *testing.T, dir, name string, pages ...[]byte) {
	t.Helper()
	var b []byte
	for _, p := range pages {
		b = append(b, p...)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSameDir: the files of a database are the same when the main forks
// are, block for block, or differ in blocks whose page LSN did not move
// (hint bits); a block with a newer LSN, a zero LSN, a file more or of
// another size, or another relation map are a difference. The other
// forks are not looked at.
func TestSameDir(t *testing.T) {
	cases := []struct {
		name string
		new  func(dir string)
		same bool
	}{
		{"identical", func(string) {}, true},
		{"hint bits only", func(d string) { writeRel(t, d, "16384", page(0x10, 1), page(0x20, 9)) }, true},
		{"a newer LSN", func(d string) { writeRel(t, d, "16384", page(0x10, 1), page(0x30, 9)) }, false},
		{"a file more", func(d string) { writeRel(t, d, "16390", page(0x40, 1)) }, false},
		{"a block more", func(d string) { writeRel(t, d, "16384", page(0x10, 1), page(0x20, 2), page(0x50, 3)) }, false},
		{"another relation map", func(d string) { os.WriteFile(filepath.Join(d, "pg_filenode.map"), []byte("other"), 0o600) }, false},
		{"the free space map", func(d string) { writeRel(t, d, "16384_fsm", page(0x90, 7)) }, true},
		{"a later segment", func(d string) { writeRel(t, d, "16384.1", page(0x70, 5)) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, new := t.TempDir(), t.TempDir()
			for _, d := range []string{old, new} {
				writeRel(t, d, "16384", page(0x10, 1), page(0x20, 2))
				writeRel(t, d, "16384_fsm", page(0, 0))
				writeRel(t, d, "1259", page(0x05, 3))
				if err := os.WriteFile(filepath.Join(d, "pg_filenode.map"), []byte("map"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c.new(new)
			found := map[string]Found{}
			same, err := sameDir(context.Background(), old, new, "base/5", found)
			if err != nil {
				t.Fatal(err)
			}
			if same != c.same {
				t.Errorf("sameDir = %v, want %v", same, c.same)
			}
			if same && found["base/5/16384"].Method != "fiemap" {
				t.Errorf("found %+v: want base/5/16384 recorded", found)
			}
		})
	}
	// Zero LSNs on both sides are never taken for the same page.
	old, new := t.TempDir(), t.TempDir()
	writeRel(t, old, "16384", page(0, 1))
	writeRel(t, new, "16384", page(0, 2))
	if same, err := sameDir(context.Background(), old, new, "base/5", map[string]Found{}); err != nil || same {
		t.Errorf("zero LSNs: same %v, err %v; want a difference", same, err)
	}
}
