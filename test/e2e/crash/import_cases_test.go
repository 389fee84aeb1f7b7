package crash

import (
	"fmt"

	"github.com/velohq/velo/test/e2e/harness"
)

// physicalCases is project create --from --slot for the crash test, on
// btrfs (its storage steps are project create's): every kill leaves no
// slot on the source once repaired (done checks it), and main follows.
func (c *crashRun) physicalCases() []crashCase {
	e := c.e
	if e.Storage != "btrfs" {
		return nil
	}
	src := harness.NewProdSource(e.T, 1)
	exists := func() bool { return e.Run("project", "get", "imp").Code == 0 }
	from := fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port)
	marks := func() string { return e.Psql("nf/main", "SELECT count(*) FROM marks") }
	var port int
	next := 1
	return []crashCase{{
		name:    "project create --from --slot",
		drivers: []string{"btrfs"},
		setup:   func() { e.Extra = append(e.Extra, "PGPASSWORD="+harness.SourceReplPassword) },
		args: func() []string {
			return []string{"project", "create", "imp", "--pool", e.Pool, "--from", from, "--slot"}
		},
		done: func() bool {
			if exists() {
				return true
			}
			if got := src.SQL("SELECT count(*) FROM pg_replication_slots"); got != "0" {
				e.T.Fatalf("no project imp, but %s slots on the source", got)
			}
			return false
		},
		check: func() {
			if got := src.SQL("SELECT count(*) FROM pg_replication_slots WHERE active"); got != "1" {
				e.T.Fatalf("imp's slot on the source: %s active", got)
			}
		},
		undo: func() { e.OK("project", "delete", "imp") },
	}, {
		// Refresh of a --no-follow copy: killed anywhere, main answers on
		// its port with either its old copy or the new one, whole.
		name:    "project refresh --no-follow",
		drivers: []string{"btrfs"},
		setup: func() {
			e.Extra = append(e.Extra, "PGPASSWORD="+harness.SourceReplPassword)
			e.OK("project", "create", "nf", "--pool", e.Pool, "--from", from, "--no-follow")
			port = e.Conn("nf/main").Port
			src.SQL(fmt.Sprintf("INSERT INTO marks (name) VALUES ('refresh %d')", next))
			next++
		},
		args: func() []string { return []string{"project", "refresh", "nf"} },
		done: func() bool { return marks() == src.SQL("SELECT count(*) FROM marks") },
		check: func() {
			if p := e.Conn("nf/main").Port; p != port {
				e.T.Fatalf("nf/main moved from port %d to %d", port, p)
			}
			harness.PgbenchInvariant(e.T, "nf/main", func(q string) string { return e.Psql("nf/main", q) })
		},
		undo: func() {
			src.SQL(fmt.Sprintf("INSERT INTO marks (name) VALUES ('refresh %d')", next))
			next++
		},
	}}
}
