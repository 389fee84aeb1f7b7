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
	return []crashCase{{
		name:    "project create --from --slot",
		drivers: []string{"btrfs"},
		setup:   func() { e.Extra = append(e.Extra, "PGPASSWORD="+harness.SourceReplPassword) },
		args: func() []string {
			return []string{"project", "create", "imp", "--pool", e.Pool, "--from", fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port), "--slot"}
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
	}}
}
