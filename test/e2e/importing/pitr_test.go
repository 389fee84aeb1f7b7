package importing

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

func TestPITR(t *testing.T) {
	for _, d := range harness.DriverNames {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			testPITR(e)
		})
	}
}

func testPITR(e *env) {
	t := e.T
	e.Create("pitr")
	e.Psql("pitr/main", "CREATE TABLE t (v int)")
	base := strings.TrimSpace(e.OK("snapshot", "create", "pitr/main", "--label", "before the inserts").Stdout)
	if !strings.HasPrefix(base, "s") || len(base) != 13 {
		t.Fatalf("snapshot create printed %q, want an ID", base)
	}
	times := harness.CommitTimes(e.Env, "pitr/main", 1, 10)

	// Ten moments, in RFC 3339 with offsets, with Z, and without a zone (UTC).
	plus2 := time.FixedZone("", 2*3600)
	minus5 := time.FixedZone("", -5*3600)
	for i, at := range times {
		k := i + 1
		var arg string
		switch k % 4 {
		case 0:
			arg = at.In(plus2).Format(time.RFC3339Nano)
		case 1:
			arg = at.UTC().Format(time.RFC3339Nano)
		case 2:
			arg = at.In(minus5).Format("2006-01-02T15:04:05.999999-07:00")
		case 3:
			arg = at.UTC().Format("2006-01-02 15:04:05.999999") // no zone: UTC
		}
		r := e.OK("branch", "create", fmt.Sprintf("pitr/r%d", k), "--pitr", arg)
		if k%4 == 3 && !strings.Contains(r.Stderr, "UTC") {
			t.Errorf("a time without zone is not said to be UTC:\n%s", r.Stderr)
		}
		want := make([]string, k)
		for j := range want {
			want[j] = fmt.Sprint(j + 1)
		}
		if got := e.Rows(fmt.Sprintf("pitr/r%d", k), "SELECT v FROM t ORDER BY v"); got != strings.Join(want, ",") {
			t.Errorf("branch at %s (after commit %d) holds %s", arg, k, got)
		}
	}
	// A recovered branch is a branch like any other: writable, isolated.
	e.Psql("pitr/r3", "INSERT INTO t VALUES (300)")
	if got := e.Psql("pitr/main", "SELECT count(*) FROM t WHERE v = 300"); got != "0" {
		t.Errorf("write on a PITR branch reached main")
	}

	// Relative time.
	time.Sleep(3 * time.Second)
	e.Psql("pitr/main", "INSERT INTO t VALUES (11)")
	e.OK("branch", "create", "pitr/rel", "--pitr", "2s ago")
	if got := e.Psql("pitr/rel", "SELECT max(v) FROM t"); got != "10" {
		t.Errorf("--pitr '2s ago' holds up to %s, want 10", got)
	}

	// A PITR branch of a PITR branch.
	e.OK("snapshot", "create", "pitr/r5")
	more := harness.CommitTimes(e.Env, "pitr/r5", 100, 2)
	e.OK("branch", "create", "pitr/r5x", "--parent", "pitr/r5", "--pitr", more[0].Format(time.RFC3339Nano))
	if got := e.Rows("pitr/r5x", "SELECT v FROM t ORDER BY v"); got != "1,2,3,4,5,100" {
		t.Errorf("PITR of a PITR branch = %s", got)
	}

	// Refusals: exit 2, the reachable bound named, nothing changed.
	e.Refused([]string{"earliest reachable"}, "branch", "create", "pitr/x", "--pitr", "2 hours ago")
	e.Refused([]string{"future"}, "branch", "create", "pitr/x", "--pitr", time.Now().Add(time.Hour).Format(time.RFC3339))
	e.Refused([]string{"RFC 3339"}, "branch", "create", "pitr/x", "--pitr", "yesterday-ish")
	e.Refused([]string{"no snapshot", "velo snapshot create"}, "branch", "create", "pitr/x", "--parent", "pitr/rel", "--pitr", "1s ago")
	e.OK("branch", "stop", "pitr/r5")
	time.Sleep(1500 * time.Millisecond)
	e.Refused([]string{"latest reachable"}, "branch", "create", "pitr/x", "--parent", "pitr/r5", "--pitr", "0s ago")

	testSnapshotCommands(e, base)
	testWALCommands(e, times)
}

// projectBase is the snapshot project create took of main: its oldest.
func (e *env) projectBase(ref string) string {
	e.T.Helper()
	var list []struct{ ID string }
	if err := json.Unmarshal([]byte(e.OK("snapshot", "list", ref, "--json").Stdout), &list); err != nil || len(list) == 0 {
		e.T.Fatalf("snapshot list %s: %v %+v", ref, err, list)
	}
	return list[len(list)-1].ID
}

func testSnapshotCommands(e *env, base string) {
	t := e.T
	extra := strings.TrimSpace(e.OK("snapshot", "create", "pitr/main", "--label", "extra").Stdout)
	var list []struct {
		ID, Branch, Label string
		Clones            []string
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "pitr/main", "--json").Stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) < 2 || list[0].ID != extra || list[0].Label != "extra" {
		t.Fatalf("snapshot list is not newest first: %+v", list)
	}
	e.Refused([]string{"printable"}, "snapshot", "create", "pitr/main", "--label", "bad\x07label")
	e.Refused([]string{"100 characters"}, "snapshot", "create", "pitr/main", "--label", strings.Repeat("x", 101))
	e.Refused([]string{"at least 4"}, "snapshot", "delete", base[:3])
	e.Refused([]string{"pitr/r1", "delete"}, "snapshot", "delete", base[:6])
	e.Refused([]string{"no snapshot"}, "snapshot", "delete", "szzzzzzz")

	// cleanup: the dry run lists exactly what the real run removes.
	var dry, real struct {
		Removed []struct{ ID string }
		Kept    []struct {
			ID     string
			Reason string
		}
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "cleanup", "pitr/main", "--days", "0", "--dry-run", "--json").Stdout), &dry); err != nil {
		t.Fatal(err)
	}
	// What goes: extra, and the snapshot project create took (no branch
	// comes from it; cleanup says how far main's window shrinks).
	if fmt.Sprint(dry.Removed) != fmt.Sprintf("[{%s} {%s}]", extra, e.projectBase("pitr/main")) {
		t.Errorf("dry run would remove %+v, want %s and the project's base snapshot", dry.Removed, extra)
	}
	keptBase := false
	for _, k := range dry.Kept {
		keptBase = keptBase || (k.ID == base && strings.Contains(k.Reason, "pitr/r1"))
	}
	if !keptBase {
		t.Errorf("dry run does not keep %s for its branches: %+v", base, dry.Kept)
	}
	if r := e.OK("snapshot", "list", "pitr/main"); !strings.Contains(r.Stdout, extra) {
		t.Error("dry run removed the snapshot")
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "cleanup", "pitr/main", "--days", "0", "--json").Stdout), &real); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(real.Removed) != fmt.Sprint(dry.Removed) {
		t.Errorf("cleanup removed %+v, dry run said %+v", real.Removed, dry.Removed)
	}
	r := e.OK("snapshot", "list", "pitr/main")
	if strings.Contains(r.Stdout, extra) || !strings.Contains(r.Stdout, base) {
		t.Errorf("after cleanup:\n%s", r.Stdout)
	}
	// Delete by a prefix once nothing is cloned from it.
	lone := strings.TrimSpace(e.OK("snapshot", "create", "pitr/r2").Stdout)
	e.OK("snapshot", "delete", lone[:5])
	if r := e.OK("snapshot", "list"); strings.Contains(r.Stdout, lone) {
		t.Errorf("deleted snapshot still listed:\n%s", r.Stdout)
	}
}

func testWALCommands(e *env, times []time.Time) {
	t := e.T
	var infos []struct {
		Directory  string
		Segments   int
		Continuous bool
		Earliest   *time.Time `json:"earliest_pitr"`
		Latest     *time.Time `json:"latest_pitr"`
	}
	if err := json.Unmarshal([]byte(e.OK("wal", "info", "pitr/main", "--json").Stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Segments < 3 || !infos[0].Continuous || infos[0].Earliest == nil || infos[0].Latest == nil {
		t.Fatalf("wal info = %+v", infos)
	}
	// wal cleanup: dry run and real run agree; the segments the kept
	// snapshot needs stay, so recovery still works afterwards.
	var dry, real struct{ Removed []string }
	_ = json.Unmarshal([]byte(e.OK("wal", "cleanup", "pitr/main", "--days", "0", "--dry-run", "--json").Stdout), &dry)
	_ = json.Unmarshal([]byte(e.OK("wal", "cleanup", "pitr/main", "--days", "0", "--json").Stdout), &real)
	if fmt.Sprint(dry.Removed) != fmt.Sprint(real.Removed) {
		t.Errorf("wal cleanup removed %v, dry run said %v", real.Removed, dry.Removed)
	}
	e.OK("branch", "create", "pitr/again", "--pitr", times[2].Format(time.RFC3339Nano))
	if got := e.Rows("pitr/again", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("PITR after wal cleanup = %s", got)
	}
	// A removed segment breaks the continuity check.
	names, _ := filepath.Glob(filepath.Join(infos[0].Directory, "0000000*"))
	if len(names) < 3 {
		t.Fatalf("archive has %d segments", len(names))
	}
	if err := os.Remove(names[len(names)/2]); err != nil {
		t.Fatal(err)
	}
	r := e.Run("wal", "info", "pitr/main")
	if r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "missing") {
		t.Errorf("wal info with a removed segment: %s", r)
	}
	// A recovery that cannot cross the gap fails with Postgres's own
	// reason and leaves nothing behind.
	before := e.SnapshotState()
	r = e.Run("branch", "create", "pitr/broken", "--pitr", time.Now().Add(-500*time.Millisecond).Format(time.RFC3339Nano))
	if r.Code != 1 || !strings.Contains(r.Stderr, "recovery") {
		t.Errorf("PITR across a gap: %s", r)
	}
	if after := e.SnapshotState(); after != before {
		t.Errorf("failed recovery changed the branches:\nbefore %s\nafter  %s", before, after)
	}
	e.AssertNoLeaks()
}
