package crash

import (
	"slices"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestDiffDatabase: velo diff compares the database --database names (an
// application's own, not postgres), and refuses one the branch lacks with
// exit 2 and nothing left behind.
func TestDiffDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("dd")
	e.Psql("dd/main", "CREATE DATABASE app")
	e.PsqlDB("dd/main", "app", "CREATE TABLE orders (id int PRIMARY KEY, total int); INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g")
	e.OK("branch", "create", "dd/dev")
	e.PsqlDB("dd/dev", "app", "INSERT INTO orders VALUES (101, 1); UPDATE orders SET total = 0 WHERE id = 1; DELETE FROM orders WHERE id = 2; CREATE TABLE refunds (id int)")

	got := e.diff("dd/dev", "--database", "app")
	if s := got.dataList(); !slices.Equal(s, []string{"public.orders +1 -1 ~1"}) {
		t.Errorf("diff --database app: data %v, want public.orders +1 -1 ~1", s)
	}
	if s := got.schemaList(); !slices.Contains(s, "added table public.refunds") {
		t.Errorf("diff --database app: schema %v lacks the new table", s)
	}
	// Two branches, -d as psql spells it.
	if s := e.diff("dd/main", "dd/dev", "-d", "app").dataList(); !slices.Equal(s, []string{"public.orders +1 -1 ~1"}) {
		t.Errorf("diff dd/main dd/dev -d app: %v", s)
	}
	// The postgres database did not change.
	if d := e.diff("dd/dev"); !d.Same {
		t.Errorf("diff dd/dev (postgres) differs: %v %v", d.schemaList(), d.dataList())
	}

	before := harness.Volumes(e.Pool)
	e.Refused([]string{"has no database \"nosuch\"", "--database"}, "diff", "dd/dev", "--database", "nosuch")
	e.Refused([]string{"is not a database name"}, "diff", "dd/dev", "--database", strings.Repeat("x", 64))
	if after := harness.Volumes(e.Pool); len(after) != len(before) {
		t.Errorf("after the refusals the pool holds %d volumes, want %d", len(after), len(before))
	}
	if r := e.Run("doctor"); r.Code != 0 {
		t.Errorf("velo doctor after the refusals: %s", r)
	}
}
