package crash

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestCrashMasked kills branch create --mask at every journalled step
// (crash_test.go's crashRun): velo doctor --repair then leaves nothing of
// the branch, and main's rows as they were.
func TestCrashMasked(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			var steps []string
			c := &crashRun{e: e, outcome: func(command, step, outcome, repair string) {
				steps = append(steps, step+": "+outcome+" ("+repair+")")
			}}
			e.Create("cm")
			e.Psql("cm/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2)")
			c.witness, c.rows = "cm/main", "1,2"
			mask := filepath.Join(harness.TmpDir(t, "mask-"), "mask.sql")
			if err := os.WriteFile(mask, []byte("UPDATE t SET v = v + 10;\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c.every(crashCase{
				name: "branch create --mask",
				args: func() []string { return []string{"branch", "create", "cm/m", "--mask", mask} },
				done: func() bool { return e.Run("branch", "get", "cm/m").Code == 0 },
				check: func() {
					if got := e.Rows("cm/m", "SELECT v FROM t ORDER BY v"); got != "11,12" {
						t.Fatalf("cm/m holds %s, want the masked 11,12", got)
					}
					var b struct{ Masked bool }
					if err := json.Unmarshal([]byte(e.OK("branch", "get", "cm/m", "--json").Stdout), &b); err != nil || !b.Masked {
						t.Fatalf("cm/m is not recorded as masked (%v)", err)
					}
				},
				undo: func() { e.OK("branch", "delete", "cm/m") },
			})
			t.Logf("branch create --mask killed at each step:\n%s", strings.Join(steps, "\n"))
		})
	}
}
