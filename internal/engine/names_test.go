package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

func TestParseRef(t *testing.T) {
	good := map[string][2]string{"demo/dev": {"demo", "dev"}, "a-b/c_d": {"a-b", "c_d"}, "0/9": {"0", "9"}}
	for in, want := range good {
		p, b, err := ParseRef(in)
		if err != nil || p != want[0] || b != want[1] {
			t.Errorf("ParseRef(%q) = %q, %q, %v", in, p, b, err)
		}
	}
	bad := []string{"", "demo", "demo/", "/dev", "demo/dev/x", "Demo/dev", "demo/Dev", "../etc/passwd", "demo/a b", "demo/-x", "demo/$(id)",
		"demo/a;b", "demo/\x00", "demo/dév", "demo/" + strings.Repeat("a", 64), "demo/ａ"}
	for _, in := range bad {
		if _, _, err := ParseRef(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseRef(%q) = %v; want errdefs.ErrInvalid", in, err)
		}
	}
	if _, _, err := ParseRef("demo/" + strings.Repeat("a", 63)); err != nil {
		t.Errorf("63-character name refused: %v", err)
	}
}

func TestLeavesFirst(t *testing.T) {
	bs := []state.Branch{{ID: "main", Name: "main"}, {ID: "dev", Name: "dev", ParentID: "main"}, {ID: "feat", Name: "feat", ParentID: "dev"}, {ID: "x", Name: "x", ParentID: "main"}, {ID: "deep", Name: "deep", ParentID: "feat"}}
	pos := map[string]int{}
	for i, b := range leavesFirst(bs) {
		pos[b.ID] = i
	}
	for _, b := range bs {
		if b.ParentID != "" && pos[b.ID] > pos[b.ParentID] {
			t.Errorf("%s comes after its parent %s", b.ID, b.ParentID)
		}
	}
	d := descendants(bs, "dev")
	if len(d) != 2 || d[0].ID != "feat" || d[1].ID != "deep" {
		t.Errorf("descendants(dev) = %v", d)
	}
	got := tree(state.Project{Name: "p"}, bs, "main", "")
	want := "\n└─ p/dev\n   └─ p/feat\n      └─ p/deep\n└─ p/x"
	if got != want {
		t.Errorf("tree =%s\nwant%s", got, want)
	}
}

// TestMessagesCount: counts and their nouns agree, and no count stands
// before "that" ("delete 1 that branch first").
func TestMessagesCount(t *testing.T) {
	for got, want := range map[string]string{
		plural(1, "branch", "branches"):           "1 branch",
		plural(2, "branch", "branches"):           "2 branches",
		form(1, "that branch", "those branches"):  "that branch",
		form(3, "that branch", "those branches"):  "those branches",
		madeFrom([]string{"demo/at"}):             "branch demo/at was made from it",
		madeFrom([]string{"demo/at", "demo/at2"}): "branches demo/at, demo/at2 were made from it",
	} {
		if got != want {
			t.Errorf("%q; want %q", got, want)
		}
	}
}
