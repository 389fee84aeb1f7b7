package importing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestRefreshNoFollow refreshes a physical --no-follow import on the
// drivers whose branches share blocks with main (btrfs, zfs): without the
// source's password (the project keeps none) it is refused and nothing
// changes; with it, main holds a new copy of the source on the same port
// with the same password, a branch made before keeps its own data, the
// source is only read, and doctor finds nothing.
func TestRefreshNoFollow(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			src := harness.NewProdSource(t, 1)
			e := newEnv(t, d)
			from := fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port)
			e.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
			e.createR("prod", "--from", from, "--no-follow")
			e.Extra = nil
			e.OK("branch", "create", "prod/dev")
			e.Psql("prod/dev", "INSERT INTO sentinel VALUES (2000, 'on dev')")
			e.Psql("prod/main", "INSERT INTO sentinel VALUES (1000, 'on main')")
			src.SQL("INSERT INTO sentinel VALUES (500, 'new on the source'); INSERT INTO marks (name) VALUES ('since the import')")
			before := src.Fingerprint()
			conn := e.Conn("prod/main")

			// No password for the source anywhere: refused, nothing changed.
			e.Extra = []string{"PGPASSWORD=", "PGPASSFILE=/nonexistent"}
			r := e.Run("project", "refresh", "prod")
			if r.Code != 2 || !strings.Contains(r.Stderr, "PGPASSWORD") {
				t.Errorf("refresh without the source's password: want exit 2 naming PGPASSWORD, got %s", r)
			}
			if got := e.Psql("prod/main", "SELECT count(*) FROM sentinel WHERE id IN (500, 1000)"); got != "1" {
				t.Errorf("a refused refresh changed main: rows 500 and 1000 counted %s, want 1 (its own)", got)
			}

			e.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
			r = e.OK("project", "refresh", "prod")
			e.Extra = nil
			if !strings.Contains(r.Stderr, "Base backup") {
				t.Errorf("refresh shows no base backup:\n%s", r.Stderr)
			}
			if strings.Contains(r.Stdout+r.Stderr, harness.SourceReplPassword) {
				t.Errorf("refresh shows the source's password:\n%s", r)
			}
			if after := e.Conn("prod/main"); after.Port != conn.Port || after.Password != conn.Password {
				t.Errorf("refresh moved main from port %d to %d or changed its password", conn.Port, after.Port)
			}
			// Main is the source as it is now: its new rows in, main's own
			// write replaced; writable, with Velo's password.
			if got := e.Psql("prod/main", "SELECT pg_is_in_recovery(), (SELECT string_agg(id::text, ',' ORDER BY id) FROM sentinel WHERE id >= 500), (SELECT count(*) FROM marks)"); got != "f|500|1" {
				t.Errorf("prod/main after refresh: recovery, rows >= 500, marks = %s, want f|500|1", got)
			}
			e.Psql("prod/main", "INSERT INTO sentinel VALUES (1001, 'after refresh')")
			if got := e.Rows("prod/dev", "SELECT id FROM sentinel WHERE id >= 500 ORDER BY id"); got != "2000" {
				t.Errorf("prod/dev after refresh has rows %q, want its own 2000 only", got)
			}
			assertNoSourceIn(t, e.Psql("prod/main", "SHOW data_directory"), src.Port)
			if got := src.SQL("SELECT count(*) FROM sentinel WHERE id > 1000"); got != "0" {
				t.Errorf("a write to the refreshed main reached the source")
			}
			if after := src.Fingerprint(); after != before {
				t.Errorf("the refresh changed the source:\nbefore %s\nafter  %s", before, after)
			}
			if !strings.Contains(e.OK("project", "get", "prod").Stdout, "refreshed") {
				t.Errorf("project get does not say when prod was refreshed")
			}
			// Main's point-in-time window opens at the refresh; a branch of it works.
			e.OK("branch", "create", "prod/after")
			if got := e.Rows("prod/after", "SELECT id FROM sentinel WHERE id >= 500 ORDER BY id"); got != "500,1001" {
				t.Errorf("prod/after has rows %q, want 500 and 1001", got)
			}
			if r := e.Run("doctor"); r.Code != 0 {
				t.Errorf("doctor after refresh: %s", r)
			}
		})
	}
}
