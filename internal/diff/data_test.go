package diff

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func s(v string) *string { return &v }

func TestEncodeKeepsValuesApart(t *testing.T) {
	// Rows that a naive join would confuse must encode differently.
	pairs := [][2][]*string{
		{{s("a"), s("bc")}, {s("ab"), s("c")}},
		{{nil}, {s("N;")}},
		{{nil}, {s("")}},
		{{s("1:x")}, {s("x")}},
	}
	for _, p := range pairs {
		if encode(p[0], nil) == encode(p[1], nil) {
			t.Errorf("encode(%v) == encode(%v)", deref(p[0]), deref(p[1]))
		}
	}
	if encode([]*string{s("k"), s("x")}, []int{0}) != encode([]*string{s("k"), s("y")}, []int{0}) {
		t.Errorf("encode with key columns looks at other columns")
	}
}

func deref(v []*string) []string {
	out := make([]string, len(v))
	for i, x := range v {
		if x == nil {
			out[i] = "NULL"
		} else {
			out[i] = *x
		}
	}
	return out
}

func TestDiffKeyed(t *testing.T) {
	old := [][]*string{{s("1"), s("a")}, {s("2"), s("b")}, {s("3"), nil}, {s("4"), s("d")}}
	new := [][]*string{{s("1"), s("a")}, {s("2"), s("B")}, {s("3"), s("c")}, {s("5"), s("e")}}
	var td TableDiff
	diffKeyed(&td, old, new, []int{0}, 10)
	if td.Added != 1 || td.Deleted != 1 || td.Changed != 2 {
		t.Fatalf("added %d deleted %d changed %d, want 1 1 2", td.Added, td.Deleted, td.Changed)
	}
	// Samples in key order: 2 and 3 changed, 4 deleted, 5 added.
	var got []string
	for _, x := range td.Samples {
		got = append(got, strings.Join(deref(x.Old), "/")+">"+strings.Join(deref(x.New), "/"))
	}
	want := []string{"2/b>2/B", "3/NULL>3/c", "4/d>", ">5/e"}
	if !slices.Equal(got, want) {
		t.Errorf("samples %q, want %q", got, want)
	}
	td = TableDiff{}
	diffKeyed(&td, old, new, []int{0}, 1)
	if len(td.Samples) != 1 || td.Changed != 2 {
		t.Errorf("samples capped at 1: %d samples, %d changed", len(td.Samples), td.Changed)
	}
}

func TestDiffRowsCountsDuplicates(t *testing.T) {
	// Without a key, rows are a multiset: one of two equal rows deleted
	// and a third copy of another added.
	old := [][]*string{{s("x")}, {s("x")}, {s("y")}}
	new := [][]*string{{s("x")}, {s("y")}, {s("y")}, {s("y")}}
	var td TableDiff
	diffRows(&td, old, new, 10)
	if td.Added != 2 || td.Deleted != 1 || td.Changed != 0 {
		t.Fatalf("added %d deleted %d changed %d, want 2 1 0", td.Added, td.Deleted, td.Changed)
	}
	if len(td.Samples) != 3 {
		t.Errorf("%d samples, want 3", len(td.Samples))
	}
}

func TestByteFinder(t *testing.T) {
	dir := t.TempDir()
	block := func(c byte) []byte {
		b := make([]byte, BlockSize)
		for i := range b {
			b[i] = c
		}
		return b
	}
	var oldData, newData []byte
	for i := range 300 {
		oldData = append(oldData, block(byte(i))...)
		c := byte(i)
		if i == 5 || i == 6 || i == 200 {
			c = 255 // changed blocks: two that touch and one apart
		}
		newData = append(newData, block(c)...)
	}
	newData = append(newData, block(1)...) // one block more on the new side
	oldPath, newPath := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	if err := os.WriteFile(oldPath, oldData, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newPath, newData, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ByteFinder{}.Changed(context.Background(), oldPath, newPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{5, 7}, {200, 201}, {300, 301}}
	if !slices.Equal(f.Ranges, want) || f.Blocks != 301 {
		t.Errorf("ranges %v blocks %d, want %v and 301", f.Ranges, f.Blocks, want)
	}
	if f, err = (ByteFinder{}).Changed(context.Background(), oldPath, oldPath); err != nil || len(f.Ranges) != 0 {
		t.Errorf("a file against itself: %v %v", f.Ranges, err)
	}
	// A relation the old side lacks (created on the branch): every block.
	if f, err = (ByteFinder{}).Changed(context.Background(), filepath.Join(dir, "none"), newPath); err != nil || !slices.Equal(f.Ranges, []Range{{0, 301}}) {
		t.Errorf("missing old side: %v %v", f.Ranges, err)
	}
}
