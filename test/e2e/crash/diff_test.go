package crash

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// diffDoc is what the tests read of velo diff --json.
type diffDoc struct {
	Old, New string
	Same     bool
	Schema   []struct{ Kind, Name, Change, Old, New string }
	Sketch   []string
	Notes    []string
	// OriginRead: "files" when the branch's files are its snapshot's
	// (nothing started for the origin), "server" otherwise.
	OriginRead string `json:"origin_read"`
	Tables     []struct {
		Table       string
		Key         []string
		WholeRows   bool  `json:"whole_rows"`
		RowsAdded   int64 `json:"rows_added"`
		RowsDeleted int64 `json:"rows_deleted"`
		RowsChanged int64 `json:"rows_changed"`
		Samples     []struct{ Old, New []*string }
		Method      string
		Finder      string
		Candidates  int64 `json:"candidate_blocks"`
		RowsRead    int64 `json:"rows_read"`
	}
}

func (e *env) diff(args ...string) diffDoc {
	e.T.Helper()
	r := e.OK(append([]string{"diff", "--json"}, args...)...)
	var d diffDoc
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		e.T.Fatalf("velo diff --json: %v\n%s", err, r.Stdout)
	}
	return d
}

// schemaList is the schema changes as "change kind name" lines, sorted.
func (d diffDoc) schemaList() []string {
	var out []string
	for _, c := range d.Schema {
		out = append(out, c.Change+" "+c.Kind+" "+c.Name)
	}
	slices.Sort(out)
	return out
}

// dataList is the tables that differ as "table +A -D ~C" lines, sorted.
func (d diffDoc) dataList() []string {
	var out []string
	for _, t := range d.Tables {
		if t.RowsAdded+t.RowsDeleted+t.RowsChanged > 0 {
			out = append(out, fmt.Sprintf("%s +%d -%d ~%d", t.Table, t.RowsAdded, t.RowsDeleted, t.RowsChanged))
		}
	}
	slices.Sort(out)
	return out
}

func (d diffDoc) table(name string) int {
	for i, t := range d.Tables {
		if t.Table == name {
			return i
		}
	}
	return -1
}

const diffSetup = `
CREATE TABLE acc (id int PRIMARY KEY, v text, n int);
INSERT INTO acc SELECT g, 'v' || g, g FROM generate_series(1, 5000) g;
CREATE TABLE nopk (a int, b text);
INSERT INTO nopk SELECT g % 50, 'dup' FROM generate_series(1, 100) g;
CREATE TABLE trunc (id int PRIMARY KEY);
INSERT INTO trunc SELECT generate_series(1, 10);
CREATE TABLE rew (id int PRIMARY KEY, x int);
INSERT INTO rew SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE drops (id int PRIMARY KEY, c int);
INSERT INTO drops SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE frozen (id int PRIMARY KEY, v text);
INSERT INTO frozen SELECT g, 'f' FROM generate_series(1, 3000) g;
CREATE TABLE toast (id int PRIMARY KEY, big text);
ALTER TABLE toast ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO toast SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 3000) i) FROM generate_series(1, 2) g;
CREATE VIEW v1 AS SELECT id FROM acc WHERE id < 10;
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE TYPE mood AS ENUM ('a', 'b');
`

const diffChanges = `
INSERT INTO acc VALUES (10001, 'new', 1), (10002, NULL, NULL);
UPDATE acc SET v = 'x' WHERE id = 5;
UPDATE acc SET n = NULL WHERE id = 6;
UPDATE acc SET id = 20000 WHERE id = 7;
DELETE FROM acc WHERE id = 8;
INSERT INTO nopk VALUES (1, 'dup');
DELETE FROM nopk WHERE ctid = (SELECT ctid FROM nopk WHERE a = 2 LIMIT 1);
TRUNCATE trunc;
ALTER TABLE rew ALTER COLUMN x TYPE bigint;
ALTER TABLE drops DROP COLUMN c;
ALTER TABLE drops ADD COLUMN d int DEFAULT 1;
CREATE INDEX acc_n ON acc (n);
DROP VIEW v1;
CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';
ALTER TYPE mood ADD VALUE 'c';
UPDATE toast SET big = big || 'z' WHERE id = 1;
SELECT lo_create(0);
`

var diffWantSchema = []string{
	"added column public.drops.d",
	"added index public.acc_n",
	"changed column public.rew.x",
	"changed function public.f()",
	"changed type public.mood",
	"dropped column public.drops.c",
	"dropped view public.v1",
}

var diffWantData = []string{
	"public.acc +3 -2 ~2",
	"public.nopk +1 -1 ~0",
	"public.toast +0 -0 ~1",
	"public.trunc +0 -10 ~0",
}

// TestDiff: velo diff on every driver, a branch against its origin and two
// branches against each other, each change of a known list found exactly:
// rows added, deleted and changed by key (a key update as a delete and an
// add, NULLs and TOASTed values compared), whole rows without a key,
// TRUNCATE, a rewriting ALTER TABLE and a VACUUM FREEZE that change no row,
// columns added and dropped, an index, a view, a function body, an enum
// value; the flags; the refusals, with nothing left running.
func TestDiff(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs", "reflink", "copy"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d)
			e.Create("df")
			e.Psql("df/main", diffSetup)
			e.OK("branch", "create", "df/dev")
			e.Psql("df/dev", diffChanges)
			e.Psql("df/dev", "VACUUM FREEZE frozen")
			before := harness.Volumes(e.Pool)
			seqScans := func() string {
				// The diff's session must have ended (its statistics are
				// flushed as it exits) before the counter is read.
				for i := 0; i < 50 && e.Rows("df/dev", "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") != "0"; i++ {
					time.Sleep(100 * time.Millisecond)
				}
				return e.Rows("df/dev", "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'acc'::regclass")
			}
			seqBefore := seqScans()

			got := e.diff("df/dev")
			// Only acc's candidate blocks were read on the branch: by TID
			// range scans, not by a scan of the whole table.
			if after := seqScans(); after != seqBefore {
				t.Errorf("velo diff scanned all of public.acc on the branch (seq_scan %s -> %s), not its changed blocks", seqBefore, after)
			}
			if !strings.HasPrefix(got.Old, "df/dev@s") || got.New != "df/dev" || got.Same {
				t.Errorf("diff df/dev: old %q new %q same %v", got.Old, got.New, got.Same)
			}
			if s := got.schemaList(); !slices.Equal(s, diffWantSchema) {
				t.Errorf("schema changes:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(diffWantSchema, "\n"))
			}
			if s := got.dataList(); !slices.Equal(s, diffWantData) {
				t.Errorf("data changes:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(diffWantData, "\n"))
			}
			if i := got.table("public.nopk"); i < 0 || !got.Tables[i].WholeRows {
				t.Errorf("public.nopk not compared as whole rows")
			}
			if i := got.table("public.frozen"); i < 0 || got.Tables[i].Candidates == 0 {
				t.Errorf("public.frozen: VACUUM FREEZE rewrote its blocks, yet none was read: %+v", got.Tables[i])
			}
			wantFinder := map[string]string{"btrfs": "fiemap", "reflink": "fiemap", "zfs": "zfs-send", "copy": "bytes"}[d]
			if i := got.table("public.acc"); i < 0 || got.Tables[i].Finder != wantFinder {
				t.Errorf("public.acc's blocks were found by %+v, want %s", got.Tables[i], wantFinder)
			}
			sketch := strings.Join(got.Sketch, "\n")
			for _, want := range []string{"ALTER TYPE public.mood ADD VALUE 'c';", "DROP VIEW public.v1;", "ALTER TABLE public.drops DROP COLUMN c;", "ALTER TABLE public.drops ADD COLUMN d integer DEFAULT 1;", "CREATE INDEX acc_n ON public.acc USING btree (n);", "ALTER TABLE public.rew ALTER COLUMN x TYPE bigint;", "SELECT 2"} {
				if !strings.Contains(sketch, want) {
					t.Errorf("sketch lacks %q:\n%s", want, sketch)
				}
			}
			if len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "large object") {
				t.Errorf("notes %q: want one about the large object", got.Notes)
			}
			if after := harness.Volumes(e.Pool); d != "zfs" && len(after) != len(before) {
				t.Errorf("velo diff left volumes: before %v after %v", before, after)
			}

			// The text, with samples and the methods.
			r := e.OK("diff", "df/dev", "--rows", "10", "--explain", "--table", "acc")
			for _, want := range []string{"public.acc | 3 added, 2 deleted, 2 changed", "('5', 'v5', '5') -> ('5', 'x', '5')", "('6', 'v6', '6') -> ('6', 'v6', NULL)", "- -> ('10002', NULL, NULL)", "('8', 'v8', '8') -> -", "rows of"} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("velo diff --rows --explain --table acc lacks %q:\n%s", want, r.Stdout)
				}
			}
			if strings.Contains(r.Stdout, "nopk") || strings.Contains(r.Stdout, "mood") {
				t.Errorf("--table acc shows other tables' changes:\n%s", r.Stdout)
			}

			// A branch made now from main is dev's origin: comparing the two
			// branches finds the same; a fresh branch has no changes.
			e.OK("branch", "create", "df/clean")
			e.OK("branch", "create", "df/clean2")
			before = harness.Volumes(e.Pool)
			c := e.diff("df/clean")
			if !c.Same || len(c.Schema)+len(c.dataList()) != 0 {
				t.Errorf("a fresh branch differs from its origin: %+v", c)
			}
			// Where snapshots are read in place and clones share extents,
			// a branch that changed nothing is told from its files alone.
			if want := map[string]string{"btrfs": "files", "reflink": "files"}[d]; want != "" && c.OriginRead != want {
				t.Errorf("diff df/clean read its origin by %q, want %q", c.OriginRead, want)
			}
			if got.OriginRead != "server" {
				t.Errorf("diff df/dev read its origin by %q, want server (its files differ)", got.OriginRead)
			}
			if after := harness.Volumes(e.Pool); d != "zfs" && len(after) != len(before) {
				t.Errorf("velo diff df/clean left volumes: before %v after %v", before, after)
			}
			// (The rows read here set hint bits on df/clean's pages, so
			// it is compared with its origin first.)
			two := e.diff("df/clean", "df/dev")
			if !slices.Equal(two.schemaList(), diffWantSchema) || !slices.Equal(two.dataList(), diffWantData) {
				t.Errorf("diff df/clean df/dev:\n%v\n%v", two.schemaList(), two.dataList())
			}
			// One row written on the clean branch: its files differ from
			// the snapshot's, and the diff finds the row.
			e.Psql("df/clean", "INSERT INTO trunc VALUES (11)")
			if c := e.diff("df/clean"); c.Same || !slices.Equal(c.dataList(), []string{"public.trunc +1 -0 ~0"}) || c.OriginRead != "server" {
				t.Errorf("diff df/clean after one insert: %v, origin read by %q", c.dataList(), c.OriginRead)
			}
			r = e.OK("diff", "df/clean2", "--explain")
			if !strings.Contains(r.Stdout, "No differences.") || !strings.Contains(r.Stdout, "public.acc: unchanged blocks") {
				t.Errorf("velo diff df/clean2 --explain:\n%s", r.Stdout)
			}
			if fromFiles := strings.Contains(r.Stdout, "no server was started"); fromFiles != (d == "btrfs" || d == "reflink") {
				t.Errorf("velo diff df/clean2 --explain on %s (read from the files: %v):\n%s", d, fromFiles, r.Stdout)
			}
			if s := e.diff("df/clean2", "--schema-only"); !s.Same || len(s.Tables) != 0 {
				t.Errorf("velo diff df/clean2 --schema-only: same %v, %d tables", s.Same, len(s.Tables))
			}
			if s := e.diff("df/dev", "--schema-only"); len(s.Tables) != 0 || !slices.Equal(s.schemaList(), diffWantSchema) {
				t.Errorf("--schema-only: %v, %d tables", s.schemaList(), len(s.Tables))
			}
			if s := e.diff("df/dev", "--data-only"); len(s.Schema) != 0 || !slices.Equal(s.dataList(), diffWantData) {
				t.Errorf("--data-only: %v, %v", s.schemaList(), s.dataList())
			}

			// Refusals: exit 2, the rule, nothing changed or left running.
			e.Create("other")
			before = harness.Volumes(e.Pool)
			e.Refused([]string{"different projects"}, "diff", "df/dev", "other/main")
			e.Refused([]string{"df/nosuch does not exist"}, "diff", "df/nosuch")
			e.Refused([]string{"no such table"}, "diff", "df/dev", "--table", "nosuch")
			e.Refused([]string{"was not made from a snapshot"}, "diff", "df/main")
			e.Refused([]string{"exclude each other"}, "diff", "df/dev", "--schema-only", "--data-only")
			if after := harness.Volumes(e.Pool); d != "zfs" && len(after) != len(before) {
				t.Errorf("after the refusals the pool holds %d volumes, want %d", len(after), len(before))
			}
			if r := e.Run("doctor"); r.Code != 0 {
				t.Errorf("velo doctor after velo diff: %s", r)
			}
		})
	}
}

// TestDiffKilled kills velo diff at each of its journalled steps (the clone
// of the origin, its configuration, its server's start, on zfs the
// snapshots that list what each side wrote) and once every
// step is done: velo doctor --repair then removes the copy and its server,
// doctor finds nothing, the pool holds what the records name, and the
// branch's rows are untouched.
func TestDiffKilled(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs", "copy"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d)
			e.Create("dk")
			e.Psql("dk/main", "CREATE TABLE t (v int PRIMARY KEY); INSERT INTO t VALUES (1)")
			e.OK("branch", "create", "dk/dev")
			e.Psql("dk/dev", "INSERT INTO t VALUES (2)")
			c := &crashRun{e: e}
			killed := 0
			for n := 1; n < 20; n++ {
				fault := fmt.Sprintf("step:%d", n)
				r, sig := c.runFault(fault, "diff", "dk/dev")
				if sig == 0 {
					if r.Code != 0 || !strings.Contains(r.Stdout, "public.t | 1 added") {
						t.Fatalf("velo diff with VELO_FAULT=%s, not killed: %s", fault, r)
					}
					break
				}
				killed++
				if rp := e.Run("doctor", "--repair"); rp.Code != 0 {
					t.Fatalf("doctor --repair after a kill at %s: %s", fault, rp)
				}
				e.AssertDoctorHealthy()
				e.AssertNoLeaks()
				c.assertNoStrayServers()
				if got := e.Rows("dk/dev", "SELECT v FROM t ORDER BY v"); got != "1,2" {
					t.Fatalf("after a kill at %s and the repair, dk/dev holds %s", fault, got)
				}
			}
			// On zfs also at the snapshots of the two volumes taken to list
			// what each wrote (the second kill leaving the first in place).
			if want := map[string]int{"zfs": 5}[d]; killed < max(want, 3) {
				t.Errorf("velo diff was killed at %d steps; want at least its clone, configure and start, and on zfs the two snapshots", killed)
			}
			if r, sig := c.runFault("finish", "diff", "dk/dev"); sig == 0 {
				t.Errorf("velo diff with VELO_FAULT=finish was not killed: %s", r)
			}
			if rp := e.Run("doctor", "--repair"); rp.Code != 0 {
				t.Fatalf("doctor --repair after a kill at finish: %s", rp)
			}
			e.AssertDoctorHealthy()
			e.AssertNoLeaks()
			c.assertNoStrayServers()
		})
	}
}
