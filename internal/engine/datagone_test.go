package engine

import (
	"strings"
	"testing"

	"github.com/velohq/velo/internal/state"
)

func TestRebuildFix(t *testing.T) {
	p := state.Project{ID: "p1", Name: "demo"}
	main := state.Branch{ID: "b1", Name: "main"}
	dev := state.Branch{ID: "b2", Name: "dev", ParentID: "b1"}
	kid := state.Branch{ID: "b3", Name: "kid", ParentID: "b2"}
	all := []state.Branch{main, dev, kid}
	for _, c := range []struct {
		b    state.Branch
		want string
	}{
		{kid, "velo branch reset demo/kid (rebuilds"},
		{dev, "velo branch reset demo/dev --force (rebuilds"},
		{main, "velo project delete demo --force"},
	} {
		if got := rebuildFix(p, c.b, all); !strings.HasPrefix(got, c.want) && !strings.Contains(got, c.want) {
			t.Errorf("rebuildFix(%s) = %q, want %q", c.b.Name, got, c.want)
		}
	}
}
