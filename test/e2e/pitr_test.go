package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPITR(t *testing.T) {
	for _, d := range driverNames {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			testPITR(e)
		})
	}
}

// commitTimes inserts v = 1..n into pitr.t, one commit at a time, and
// returns for each k a moment after commit k and before commit k+1.
func commitTimes(e *env, ref string, from, n int) []time.Time {
	var at []time.Time
	for k := from; k < from+n; k++ {
		e.psql(ref, fmt.Sprintf("INSERT INTO t VALUES (%d)", k))
		after, err := time.Parse("2006-01-02 15:04:05.999999-07", e.psql(ref, "SELECT clock_timestamp()"))
		if err != nil {
			e.t.Fatal(err)
		}
		at = append(at, after.Add(100*time.Millisecond))
		time.Sleep(250 * time.Millisecond)
	}
	return at
}

func testPITR(e *env) {
	t := e.t
	e.create("pitr")
	e.psql("pitr/main", "CREATE TABLE t (v int)")
	base := strings.TrimSpace(e.ok("snapshot", "create", "pitr/main", "--label", "before the inserts").stdout)
	if !strings.HasPrefix(base, "s") || len(base) != 13 {
		t.Fatalf("snapshot create printed %q, want an ID", base)
	}
	times := commitTimes(e, "pitr/main", 1, 10)

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
		r := e.ok("branch", "create", fmt.Sprintf("pitr/r%d", k), "--pitr", arg)
		if k%4 == 3 && !strings.Contains(r.stderr, "UTC") {
			t.Errorf("a time without zone is not said to be UTC:\n%s", r.stderr)
		}
		want := make([]string, k)
		for j := range want {
			want[j] = fmt.Sprint(j + 1)
		}
		if got := e.rows(fmt.Sprintf("pitr/r%d", k), "SELECT v FROM t ORDER BY v"); got != strings.Join(want, ",") {
			t.Errorf("branch at %s (after commit %d) holds %s", arg, k, got)
		}
	}
	// A recovered branch is a branch like any other: writable, isolated.
	e.psql("pitr/r3", "INSERT INTO t VALUES (300)")
	if got := e.psql("pitr/main", "SELECT count(*) FROM t WHERE v = 300"); got != "0" {
		t.Errorf("write on a PITR branch reached main")
	}

	// Relative time.
	time.Sleep(3 * time.Second)
	e.psql("pitr/main", "INSERT INTO t VALUES (11)")
	e.ok("branch", "create", "pitr/rel", "--pitr", "2s ago")
	if got := e.psql("pitr/rel", "SELECT max(v) FROM t"); got != "10" {
		t.Errorf("--pitr '2s ago' holds up to %s, want 10", got)
	}

	// A PITR branch of a PITR branch.
	e.ok("snapshot", "create", "pitr/r5")
	more := commitTimes(e, "pitr/r5", 100, 2)
	e.ok("branch", "create", "pitr/r5x", "--parent", "pitr/r5", "--pitr", more[0].Format(time.RFC3339Nano))
	if got := e.rows("pitr/r5x", "SELECT v FROM t ORDER BY v"); got != "1,2,3,4,5,100" {
		t.Errorf("PITR of a PITR branch = %s", got)
	}

	// Refusals: exit 2, the reachable bound named, nothing changed.
	e.refused([]string{"earliest reachable"}, "branch", "create", "pitr/x", "--pitr", "2 hours ago")
	e.refused([]string{"future"}, "branch", "create", "pitr/x", "--pitr", time.Now().Add(time.Hour).Format(time.RFC3339))
	e.refused([]string{"RFC 3339"}, "branch", "create", "pitr/x", "--pitr", "yesterday-ish")
	e.refused([]string{"no snapshot", "velo snapshot create"}, "branch", "create", "pitr/x", "--parent", "pitr/rel", "--pitr", "1s ago")
	e.ok("branch", "stop", "pitr/r5")
	time.Sleep(1500 * time.Millisecond)
	e.refused([]string{"latest reachable"}, "branch", "create", "pitr/x", "--parent", "pitr/r5", "--pitr", "0s ago")

	testSnapshotCommands(e, base)
	testWALCommands(e, times)
}

// projectBase is the snapshot project create took of main: its oldest.
func (e *env) projectBase(ref string) string {
	e.t.Helper()
	var list []struct{ ID string }
	if err := json.Unmarshal([]byte(e.ok("snapshot", "list", ref, "--json").stdout), &list); err != nil || len(list) == 0 {
		e.t.Fatalf("snapshot list %s: %v %+v", ref, err, list)
	}
	return list[len(list)-1].ID
}

func testSnapshotCommands(e *env, base string) {
	t := e.t
	extra := strings.TrimSpace(e.ok("snapshot", "create", "pitr/main", "--label", "extra").stdout)
	var list []struct {
		ID, Branch, Label string
		Clones            []string
	}
	if err := json.Unmarshal([]byte(e.ok("snapshot", "list", "pitr/main", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) < 2 || list[0].ID != extra || list[0].Label != "extra" {
		t.Fatalf("snapshot list is not newest first: %+v", list)
	}
	e.refused([]string{"printable"}, "snapshot", "create", "pitr/main", "--label", "bad\x07label")
	e.refused([]string{"100 characters"}, "snapshot", "create", "pitr/main", "--label", strings.Repeat("x", 101))
	e.refused([]string{"at least 4"}, "snapshot", "delete", base[:3])
	e.refused([]string{"pitr/r1", "delete"}, "snapshot", "delete", base[:6])
	e.refused([]string{"no snapshot"}, "snapshot", "delete", "szzzzzzz")

	// cleanup: the dry run lists exactly what the real run removes.
	var dry, real struct {
		Removed []struct{ ID string }
		Kept    []struct {
			ID     string
			Reason string
		}
	}
	if err := json.Unmarshal([]byte(e.ok("snapshot", "cleanup", "pitr/main", "--days", "0", "--dry-run", "--json").stdout), &dry); err != nil {
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
	if r := e.ok("snapshot", "list", "pitr/main"); !strings.Contains(r.stdout, extra) {
		t.Error("dry run removed the snapshot")
	}
	if err := json.Unmarshal([]byte(e.ok("snapshot", "cleanup", "pitr/main", "--days", "0", "--json").stdout), &real); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(real.Removed) != fmt.Sprint(dry.Removed) {
		t.Errorf("cleanup removed %+v, dry run said %+v", real.Removed, dry.Removed)
	}
	r := e.ok("snapshot", "list", "pitr/main")
	if strings.Contains(r.stdout, extra) || !strings.Contains(r.stdout, base) {
		t.Errorf("after cleanup:\n%s", r.stdout)
	}
	// Delete by a prefix once nothing is cloned from it.
	lone := strings.TrimSpace(e.ok("snapshot", "create", "pitr/r2").stdout)
	e.ok("snapshot", "delete", lone[:5])
	if r := e.ok("snapshot", "list"); strings.Contains(r.stdout, lone) {
		t.Errorf("deleted snapshot still listed:\n%s", r.stdout)
	}
}

func testWALCommands(e *env, times []time.Time) {
	t := e.t
	var infos []struct {
		Directory  string
		Segments   int
		Continuous bool
		Earliest   *time.Time `json:"earliest_pitr"`
		Latest     *time.Time `json:"latest_pitr"`
	}
	if err := json.Unmarshal([]byte(e.ok("wal", "info", "pitr/main", "--json").stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Segments < 3 || !infos[0].Continuous || infos[0].Earliest == nil || infos[0].Latest == nil {
		t.Fatalf("wal info = %+v", infos)
	}
	// wal cleanup: dry run and real run agree; the segments the kept
	// snapshot needs stay, so recovery still works afterwards.
	var dry, real struct{ Removed []string }
	_ = json.Unmarshal([]byte(e.ok("wal", "cleanup", "pitr/main", "--days", "0", "--dry-run", "--json").stdout), &dry)
	_ = json.Unmarshal([]byte(e.ok("wal", "cleanup", "pitr/main", "--days", "0", "--json").stdout), &real)
	if fmt.Sprint(dry.Removed) != fmt.Sprint(real.Removed) {
		t.Errorf("wal cleanup removed %v, dry run said %v", real.Removed, dry.Removed)
	}
	e.ok("branch", "create", "pitr/again", "--pitr", times[2].Format(time.RFC3339Nano))
	if got := e.rows("pitr/again", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
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
	r := e.run("wal", "info", "pitr/main")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "missing") {
		t.Errorf("wal info with a removed segment: %s", r)
	}
	// A recovery that cannot cross the gap fails with Postgres's own
	// reason and leaves nothing behind.
	before := e.snapshotState()
	r = e.run("branch", "create", "pitr/broken", "--pitr", time.Now().Add(-500*time.Millisecond).Format(time.RFC3339Nano))
	if r.code != 1 || !strings.Contains(r.stderr, "recovery") {
		t.Errorf("PITR across a gap: %s", r)
	}
	if after := e.snapshotState(); after != before {
		t.Errorf("failed recovery changed the branches:\nbefore %s\nafter  %s", before, after)
	}
	e.assertNoLeaks()
}
