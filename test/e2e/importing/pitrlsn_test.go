package importing

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestPITRLSN: branch create --pitr and branch restore --to take an LSN,
// as pg_current_wal_lsn() shows it: the rows committed before it are
// there, those after are not.
func TestPITRLSN(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			testPITRLSN(e)
		})
	}
}

// lsnMarks inserts v = from..from+n-1 into t, one commit each, and
// returns pg_current_wal_lsn() after each commit.
func lsnMarks(e *env, ref string, from, n int) []string {
	var out []string
	for k := from; k < from+n; k++ {
		e.Psql(ref, fmt.Sprintf("INSERT INTO t VALUES (%d)", k))
		out = append(out, e.Psql(ref, "SELECT pg_current_wal_lsn()"))
	}
	return out
}

func upTo(n int) string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, ",")
}

func testPITRLSN(e *env) {
	t := e.T
	e.Create("lsn")
	e.Psql("lsn/main", "CREATE TABLE t (v int)")
	e.OK("snapshot", "create", "lsn/main")
	marks := lsnMarks(e, "lsn/main", 1, 4)
	for i, m := range marks {
		k := i + 1
		ref := fmt.Sprintf("lsn/l%d", k)
		e.OK("branch", "create", ref, "--pitr", m)
		if got := e.Rows(ref, "SELECT v FROM t ORDER BY v"); got != upTo(k) {
			t.Errorf("branch at LSN %s (after commit %d) holds %q, want %q", m, k, got, upTo(k))
		}
	}
	// The LSN is shown by branch get, in text and JSON.
	var b struct {
		PITR *struct {
			LSN            string `json:"lsn"`
			SourceSnapshot string `json:"source_snapshot"`
		} `json:"pitr"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "lsn/l2", "--json").Stdout), &b); err != nil || b.PITR == nil || b.PITR.LSN != strings.ToUpper(marks[1]) || b.PITR.SourceSnapshot == "" {
		t.Errorf("branch get --json pitr = %+v (%v), want lsn %s", b.PITR, err, marks[1])
	}
	if r := e.OK("branch", "get", "lsn/l2"); !strings.Contains(r.Stdout, "LSN "+strings.ToUpper(marks[1])) {
		t.Errorf("branch get does not show the LSN:\n%s", r.Stdout)
	}

	// Restore in place to an LSN of the branch's own history.
	e.OK("snapshot", "create", "lsn/l4")
	e.Refused([]string{"after the newest WAL", "earliest reachable LSN"}, "branch", "restore", "lsn/l4", "--to", "FF/0")
	more := lsnMarks(e, "lsn/l4", 5, 2) // l4 now holds 1..6
	r := e.OK("branch", "restore", "lsn/l4", "--to", more[0], "--discard", "--json")
	var res struct {
		LSN string `json:"lsn"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.LSN != strings.ToUpper(more[0]) {
		t.Errorf("restore --json lsn = %q (%v), want %s", res.LSN, err, more[0])
	}
	if got := e.Rows("lsn/l4", "SELECT v FROM t ORDER BY v"); got != upTo(5) {
		t.Errorf("lsn/l4 restored to LSN %s holds %q, want %q", more[0], got, upTo(5))
	}

	// Refusals: exit 2, nothing changed; a malformed LSN is not read as a
	// time; one outside the history names the reachable LSNs.
	for _, bad := range []string{"0/", "0/3000060/1", "g/1", "123456789/0"} {
		e.Refused([]string{"LSN", "0/3000060"}, "branch", "create", "lsn/x", "--pitr", bad)
		e.Refused([]string{"LSN", "0/3000060"}, "branch", "restore", "lsn/l1", "--to", bad)
	}
	e.Refused([]string{"before the oldest snapshot", "earliest reachable LSN", "latest reachable LSN"}, "branch", "create", "lsn/x", "--pitr", "0/10")
	e.Refused([]string{"after the newest WAL", "earliest reachable LSN", "(now)"}, "branch", "create", "lsn/x", "--pitr", "FF/0")
	// A stopped branch reaches the end of its archived WAL.
	e.OK("branch", "stop", "lsn/main")
	e.Refused([]string{"after the newest WAL", "it is stopped"}, "branch", "create", "lsn/x", "--pitr", "FF/0")
}
