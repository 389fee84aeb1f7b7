package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
)

var driverNames = []string{"copy", "reflink", "btrfs", "zfs"}

func TestWorkflow(t *testing.T) {
	for _, d := range driverNames {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			t.Run("Demo", func(t *testing.T) { e.t = t; testDemo(e) })
			t.Run("IsolationAndChain", func(t *testing.T) { e.t = t; testIsolation(e) })
			t.Run("Transactions", func(t *testing.T) { e.t = t; testTransactions(e) })
			t.Run("StopStartRestart", func(t *testing.T) { e.t = t; testLifecycle(e) })
			t.Run("Refusals", func(t *testing.T) { e.t = t; testRefusals(e) })
			t.Run("StatusAndDelete", func(t *testing.T) { e.t = t; testStatusAndDelete(e) })
			e.t = t
		})
	}
}

// testDemo is the README's demo, asserting rows.
func testDemo(e *env) {
	t := e.t
	r := e.ok("project", "create", "demo", "--pool", e.pool, "--storage", e.storage)
	if !strings.Contains(r.stdout, "postgresql://postgres:***@localhost:") {
		t.Errorf("project create does not show a masked URL:\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, e.conn("demo/main").Password) {
		t.Error("project create printed the password")
	}
	e.psql("demo/main", `CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT);
		INSERT INTO users (name) VALUES ('Alice'), ('Bob'), ('Charlie');`)
	e.ok("branch", "create", "demo/dev")
	e.psql("demo/dev", `INSERT INTO users (name) VALUES ('Dave'), ('Eve'); DELETE FROM users WHERE name = 'Bob';`)
	if got := e.rows("demo/main", "SELECT name FROM users ORDER BY id"); got != "Alice,Bob,Charlie" {
		t.Errorf("main after changes on dev = %s", got)
	}
	if got := e.rows("demo/dev", "SELECT name FROM users ORDER BY id"); got != "Alice,Charlie,Dave,Eve" {
		t.Errorf("dev = %s", got)
	}
	devPort := e.conn("demo/dev").Port
	e.ok("branch", "reset", "demo/dev")
	if got := e.rows("demo/dev", "SELECT name FROM users ORDER BY id"); got != "Alice,Bob,Charlie" {
		t.Errorf("dev after reset = %s", got)
	}
	if p := e.conn("demo/dev").Port; p != devPort {
		t.Errorf("reset moved dev from port %d to %d", devPort, p)
	}
	// The snapshot and volume the first clone used are gone after reset.
	e.assertNoLeaks()
}

// assertNoLeaks checks that the pool holds exactly what the records name:
// one volume per branch, the snapshots velo lists (each made for a branch
// still having a clone of it), and WAL archives of live volumes only.
func (e *env) assertNoLeaks() {
	e.t.Helper()
	var bs []struct{ Name, Volume, Parent string }
	if err := json.Unmarshal([]byte(e.ok("branch", "list", "--json").stdout), &bs); err != nil {
		e.t.Fatal(err)
	}
	var snaps []struct {
		ID     string
		User   bool
		Clones []string
		// The oldest snapshot of a branch's volume stays for its
		// point-in-time window.
		PITRBase bool `json:"pitr_base"`
	}
	if err := json.Unmarshal([]byte(e.ok("snapshot", "list", "--json").stdout), &snaps); err != nil {
		e.t.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range bs {
		want[b.Volume] = true
	}
	wantSnap := map[string]bool{}
	for _, s := range snaps {
		wantSnap[s.ID] = true
		if !s.User && len(s.Clones) == 0 && !s.PITRBase {
			e.t.Errorf("snapshot %s was made for a branch, but no branch comes from it", s.ID)
		}
	}
	d, err := drivers.Open(context.Background(), e.storage, e.pool)
	if err != nil {
		e.t.Fatal(err)
	}
	entries, err := d.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		switch en.Kind {
		case storage.KindVolume:
			if !want[en.ID] {
				e.t.Errorf("volume %s in the pool belongs to no branch", en.ID)
			}
			delete(want, en.ID)
		case storage.KindSnapshot:
			if !wantSnap[en.ID] {
				e.t.Errorf("snapshot %s in the pool has no record", en.ID)
			}
			delete(wantSnap, en.ID)
		}
	}
	for v := range want {
		e.t.Errorf("branch volume %s missing from the pool", v)
	}
	for s := range wantSnap {
		e.t.Errorf("snapshot %s listed but missing from the pool", s)
	}
	// Every WAL archive belongs to a volume still in the pool.
	inPool := map[string]bool{}
	for _, en := range entries {
		inPool[en.ID] = true
	}
	archives, _ := os.ReadDir(filepath.Join(e.home, "wal"))
	for _, a := range archives {
		if !inPool[a.Name()] {
			e.t.Errorf("WAL archive %s outlived its volume", a.Name())
		}
	}
}

func testIsolation(e *env) {
	t := e.t
	e.create("iso")
	e.psql("iso/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('main-1');`)
	e.ok("branch", "create", "iso/a")
	e.ok("branch", "create", "iso/b")
	e.psql("iso/a", `INSERT INTO t VALUES ('a-1')`)
	e.psql("iso/b", `INSERT INTO t VALUES ('b-1')`)
	e.psql("iso/main", `INSERT INTO t VALUES ('main-2')`)
	for ref, want := range map[string]string{"iso/main": "main-1,main-2", "iso/a": "a-1,main-1", "iso/b": "b-1,main-1"} {
		if got := e.rows(ref, "SELECT v FROM t ORDER BY v"); got != want {
			t.Errorf("%s = %s, want %s", ref, got, want)
		}
	}
	// A three-level chain: main -> a -> feature.
	e.ok("branch", "create", "iso/feature", "--parent", "iso/a")
	e.psql("iso/feature", `INSERT INTO t VALUES ('f-1')`)
	if got := e.rows("iso/feature", "SELECT v FROM t ORDER BY v"); got != "a-1,f-1,main-1" {
		t.Errorf("feature = %s", got)
	}
	if got := e.rows("iso/a", "SELECT v FROM t ORDER BY v"); got != "a-1,main-1" {
		t.Errorf("a after feature's write = %s", got)
	}
	var b struct{ Parent string }
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "iso/feature", "--json").stdout), &b)
	if b.Parent != "iso/a" {
		t.Errorf("feature's parent = %q", b.Parent)
	}
	// Sequences equal at branch time, then independent; unique indexes hold.
	e.psql("iso/main", `CREATE TABLE s (id serial PRIMARY KEY, email text UNIQUE); INSERT INTO s (email) VALUES ('x@example.com'), ('y@example.com');`)
	e.ok("branch", "create", "iso/seq")
	if got := e.psql("iso/seq", `INSERT INTO s (email) VALUES ('z@example.com') RETURNING id`); !strings.HasPrefix(got, "3") {
		t.Errorf("sequence on the branch gave %s, want 3", got)
	}
	if got := e.psql("iso/main", `INSERT INTO s (email) VALUES ('w@example.com') RETURNING id`); !strings.HasPrefix(got, "3") {
		t.Errorf("sequence on main gave %s after the branch used 3, want 3", got)
	}
	if out, err := e.psqlErr("iso/seq", `INSERT INTO s (email) VALUES ('x@example.com')`); err == nil || !strings.Contains(out, "duplicate key") {
		t.Errorf("unique index not enforced on the branch: %v %s", err, out)
	}
}

func testTransactions(e *env) {
	t := e.t
	e.create("tx")
	e.psql("tx/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('committed-before');`)
	c := e.conn("tx/main")
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", c.Password, c.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	tx, err := pc.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES ('open')`); err != nil {
		t.Fatal(err)
	}
	e.ok("branch", "create", "tx/b")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.rows("tx/b", "SELECT v FROM t ORDER BY v"); got != "committed-before" {
		t.Errorf("branch = %s, want only the committed row", got)
	}
	if got := e.rows("tx/main", "SELECT v FROM t ORDER BY v"); got != "committed-before,open" {
		t.Errorf("main = %s", got)
	}
}

func testLifecycle(e *env) {
	t := e.t
	e.create("life")
	e.psql("life/main", `CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2);`)
	e.ok("branch", "create", "life/dev")
	// On zfs a fresh clone's first start syncs its volume with syncfs
	// rather than every file; any later start goes back to Postgres's
	// default, fsync of every file (see withFreshCloneSync).
	syncMethod := func(want string) {
		t.Helper()
		if got := e.rows("life/dev", "SHOW recovery_init_sync_method"); got != want {
			t.Errorf("recovery_init_sync_method = %s, want %s", got, want)
		}
	}
	if e.storage == "zfs" {
		syncMethod("syncfs")
	} else {
		syncMethod("fsync")
	}
	e.psql("life/dev", `INSERT INTO t VALUES (3)`)
	port := e.conn("life/dev").Port
	e.ok("branch", "stop", "life/dev")
	if _, err := e.psqlErr("life/dev", "SELECT 1"); err == nil {
		t.Error("stopped branch still answers")
	}
	var b struct{ State string }
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "life/dev", "--json").stdout), &b)
	if b.State != "stopped" {
		t.Errorf("state after stop = %s", b.State)
	}
	if r := e.ok("branch", "stop", "life/dev"); !strings.Contains(r.stdout, "already stopped") {
		t.Errorf("second stop: %s", r)
	}
	// A branch of a stopped parent is a copy of it as it is.
	e.ok("branch", "create", "life/fromstopped", "--parent", "life/dev")
	if got := e.rows("life/fromstopped", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("branch of a stopped parent = %s", got)
	}
	e.ok("branch", "start", "life/dev")
	if got := e.rows("life/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("after start = %s", got)
	}
	syncMethod("fsync")
	if p := e.conn("life/dev").Port; p != port {
		t.Errorf("port changed across stop/start: %d -> %d", port, p)
	}
	var before, after struct{ PID int }
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "life/dev", "--json").stdout), &before)
	if r := e.ok("branch", "start", "life/dev"); !strings.Contains(r.stdout, "already running") {
		t.Errorf("second start: %s", r)
	}
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "life/dev", "--json").stdout), &after)
	if before.PID == 0 || before.PID != after.PID {
		t.Errorf("start of a running branch changed its server: pid %d -> %d", before.PID, after.PID)
	}
	e.ok("branch", "restart", "life/dev")
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "life/dev", "--json").stdout), &after)
	if after.PID == before.PID {
		t.Error("restart kept the same server process")
	}
	if got := e.rows("life/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("after restart = %s", got)
	}
	// Reset of a stopped branch leaves it stopped, with the parent's data.
	e.ok("branch", "stop", "life/fromstopped")
	e.ok("branch", "reset", "life/fromstopped")
	_ = json.Unmarshal([]byte(e.ok("branch", "get", "life/fromstopped", "--json").stdout), &b)
	if b.State != "stopped" {
		t.Errorf("reset started a stopped branch: %s", b.State)
	}
}

func testRefusals(e *env) {
	t := e.t
	e.create("ref")
	e.ok("branch", "create", "ref/dev")
	e.ok("branch", "create", "ref/feat", "--parent", "ref/dev")
	e.psql("ref/main", `CREATE TABLE keep (v int); INSERT INTO keep VALUES (42);`)
	cases := []struct {
		want []string
		args []string
	}{
		{[]string{"main branch", "velo project delete ref"}, []string{"branch", "delete", "ref/main"}},
		{[]string{"ref/feat", "--force"}, []string{"branch", "delete", "ref/dev"}},
		{[]string{"ref/feat", "--force"}, []string{"branch", "reset", "ref/dev"}},
		{[]string{"no parent"}, []string{"branch", "reset", "ref/main"}},
		{[]string{"already exists"}, []string{"branch", "create", "ref/dev"}},
		{[]string{"already exists"}, []string{"project", "create", "ref"}},
		{[]string{"ref/dev", "ref/feat", "--force"}, []string{"project", "delete", "ref"}},
		{[]string{"does not exist", "velo branch list"}, []string{"branch", "create", "ref/x", "--parent", "ref/nope"}},
		{[]string{"does not exist"}, []string{"branch", "delete", "ref/nope"}},
		{[]string{"does not exist"}, []string{"branch", "start", "nope/main"}},
		{[]string{"project other"}, []string{"branch", "create", "ref/x", "--parent", "other/main"}},
		{[]string{"a-z, 0-9"}, []string{"branch", "create", "ref/Bad Name"}},
		{[]string{"a-z, 0-9"}, []string{"project", "create", "../etc"}},
		{[]string{"PROJECT/BRANCH"}, []string{"branch", "create", "nobranch"}},
		{[]string{"a-z, 0-9"}, []string{"branch", "create", "ref/" + strings.Repeat("x", 100)}},
		{[]string{"Docker"}, []string{"project", "create", "img", "--image", "postgres:17"}},
		{[]string{"not installed", "found"}, []string{"project", "create", "old", "--pg-version", "9"}},
		{[]string{"--storage"}, []string{"project", "create", "bad", "--storage", "ntfs"}},
		{[]string{"unknown flag"}, []string{"branch", "create", "ref/y", "--bogus"}},
		{[]string{"takes 1 argument"}, []string{"branch", "create"}},
		{[]string{"name the branch whose snapshots", "--all for every branch"}, []string{"snapshot", "cleanup", "--days", "0", "--dry-run"}},
		{[]string{"name the branch to start", "--all"}, []string{"branch", "start"}},
	}
	cases = append(cases, struct {
		want []string
		args []string
	}{[]string{"nosuchpool"}, []string{"project", "create", "nopool", "--pool", "nosuchpool"}})
	if e.storage != "btrfs" && e.storage != "zfs" {
		cases = append(cases, struct {
			want []string
			args []string
		}{[]string{"not btrfs"}, []string{"project", "create", "wrongfs", "--pool", e.pool, "--storage", "btrfs"}})
	}
	for _, c := range cases {
		e.refused(c.want, c.args...)
	}
	if got := e.rows("ref/main", "SELECT v FROM keep"); got != "42" {
		t.Errorf("main's rows after refusals = %s", got)
	}
	// The message for a branch with descendants shows them as a tree.
	r := e.run("branch", "delete", "ref/dev")
	if !strings.Contains(r.stderr, "└─ ref/feat") {
		t.Errorf("descendants not shown as a tree:\n%s", r.stderr)
	}
	// With --force, children go first.
	e.ok("branch", "delete", "ref/dev", "--force")
	r = e.ok("branch", "list", "ref")
	if strings.Contains(r.stdout, "ref/dev") || strings.Contains(r.stdout, "ref/feat") {
		t.Errorf("delete --force left branches:\n%s", r.stdout)
	}
}

func testStatusAndDelete(e *env) {
	t := e.t
	e.create("st")
	e.ok("branch", "create", "st/dev")
	r := e.ok("status")
	for _, want := range []string{"Velo Status", "st/main", "st/dev", "running", e.storage} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	var rep struct {
		Pools []struct {
			Size   int64 `json:"size_bytes"`
			Free   int64 `json:"free_bytes"`
			Health string
		}
		Projects []struct {
			Name       string
			BranchList []struct {
				Name, State string
				Port        int
				Exclusive   int64 `json:"exclusive_bytes"`
				Referenced  int64 `json:"referenced_bytes"`
			} `json:"branch_list"`
		}
	}
	// Sizes walk the data except on ZFS, so status shows them when asked.
	if err := json.Unmarshal([]byte(e.ok("status", "--json", "--size").stdout), &rep); err != nil {
		t.Fatal(err)
	}
	// Without --size, only ZFS, which keeps its own accounting, shows them.
	var plain struct {
		Projects []struct {
			Name       string
			BranchList []map[string]any `json:"branch_list"`
		}
	}
	if err := json.Unmarshal([]byte(e.ok("status", "--json").stdout), &plain); err != nil {
		t.Fatal(err)
	}
	for _, p := range plain.Projects {
		for _, b := range p.BranchList {
			if _, has := b["referenced_bytes"]; p.Name == "st" && has != (e.storage == "zfs") {
				t.Errorf("%s: status --json without --size has referenced_bytes: %v", e.storage, has)
			}
		}
	}
	if len(rep.Pools) == 0 || rep.Pools[0].Size <= 0 || rep.Pools[0].Health == "" {
		t.Errorf("status pools = %+v", rep.Pools)
	}
	found := false
	for _, p := range rep.Projects {
		if p.Name != "st" {
			continue
		}
		found = true
		if len(p.BranchList) != 2 {
			t.Errorf("st has %d branches", len(p.BranchList))
		}
		for _, b := range p.BranchList {
			if b.State != "running" || b.Port == 0 || b.Referenced == 0 {
				t.Errorf("branch %+v", b)
			}
		}
	}
	if !found {
		t.Error("status --json lacks project st")
	}
	e.assertNoLeaks()
	e.ok("project", "delete", "st", "--force")
	e.assertNoLeaks()
	if r := e.run("project", "get", "st"); r.code != 2 {
		t.Errorf("project get after delete: %s", r)
	}
}
