package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/velohq/velo/test/e2e/harness"
)

func TestWorkflow(t *testing.T) {
	for _, d := range harness.DriverNames {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			t.Run("Demo", func(t *testing.T) { e.T = t; testDemo(e) })
			t.Run("IsolationAndChain", func(t *testing.T) { e.T = t; testIsolation(e) })
			t.Run("Transactions", func(t *testing.T) { e.T = t; testTransactions(e) })
			t.Run("StopStartRestart", func(t *testing.T) { e.T = t; testLifecycle(e) })
			t.Run("Refusals", func(t *testing.T) { e.T = t; testRefusals(e) })
			t.Run("StatusAndDelete", func(t *testing.T) { e.T = t; testStatusAndDelete(e) })
			e.T = t
		})
	}
}

// testDemo is the README's demo, asserting rows.
func testDemo(e *env) {
	t := e.T
	r := e.OK("project", "create", "demo", "--pool", e.Pool, "--storage", e.Storage)
	if !strings.Contains(r.Stdout, "postgresql://postgres:***@localhost:") {
		t.Errorf("project create does not show a masked URL:\n%s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr, e.Conn("demo/main").Password) {
		t.Error("project create printed the password")
	}
	e.Psql("demo/main", `CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT);
		INSERT INTO users (name) VALUES ('Alice'), ('Bob'), ('Charlie');`)
	e.OK("branch", "create", "demo/dev")
	e.Psql("demo/dev", `INSERT INTO users (name) VALUES ('Dave'), ('Eve'); DELETE FROM users WHERE name = 'Bob';`)
	if got := e.Rows("demo/main", "SELECT name FROM users ORDER BY id"); got != "Alice,Bob,Charlie" {
		t.Errorf("main after changes on dev = %s", got)
	}
	if got := e.Rows("demo/dev", "SELECT name FROM users ORDER BY id"); got != "Alice,Charlie,Dave,Eve" {
		t.Errorf("dev = %s", got)
	}
	devPort := e.Conn("demo/dev").Port
	e.OK("branch", "reset", "demo/dev")
	if got := e.Rows("demo/dev", "SELECT name FROM users ORDER BY id"); got != "Alice,Bob,Charlie" {
		t.Errorf("dev after reset = %s", got)
	}
	if p := e.Conn("demo/dev").Port; p != devPort {
		t.Errorf("reset moved dev from port %d to %d", devPort, p)
	}
	// The snapshot and volume the first clone used are gone after reset.
	e.AssertNoLeaks()
}

func testIsolation(e *env) {
	t := e.T
	e.Create("iso")
	e.Psql("iso/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('main-1');`)
	e.OK("branch", "create", "iso/a")
	e.OK("branch", "create", "iso/b")
	e.Psql("iso/a", `INSERT INTO t VALUES ('a-1')`)
	e.Psql("iso/b", `INSERT INTO t VALUES ('b-1')`)
	e.Psql("iso/main", `INSERT INTO t VALUES ('main-2')`)
	for ref, want := range map[string]string{"iso/main": "main-1,main-2", "iso/a": "a-1,main-1", "iso/b": "b-1,main-1"} {
		if got := e.Rows(ref, "SELECT v FROM t ORDER BY v"); got != want {
			t.Errorf("%s = %s, want %s", ref, got, want)
		}
	}
	// A three-level chain: main -> a -> feature.
	e.OK("branch", "create", "iso/feature", "--parent", "iso/a")
	e.Psql("iso/feature", `INSERT INTO t VALUES ('f-1')`)
	if got := e.Rows("iso/feature", "SELECT v FROM t ORDER BY v"); got != "a-1,f-1,main-1" {
		t.Errorf("feature = %s", got)
	}
	if got := e.Rows("iso/a", "SELECT v FROM t ORDER BY v"); got != "a-1,main-1" {
		t.Errorf("a after feature's write = %s", got)
	}
	var b struct{ Parent string }
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "iso/feature", "--json").Stdout), &b)
	if b.Parent != "iso/a" {
		t.Errorf("feature's parent = %q", b.Parent)
	}
	// Sequences equal at branch time, then independent; unique indexes hold.
	e.Psql("iso/main", `CREATE TABLE s (id serial PRIMARY KEY, email text UNIQUE); INSERT INTO s (email) VALUES ('x@example.com'), ('y@example.com');`)
	e.OK("branch", "create", "iso/seq")
	if got := e.Psql("iso/seq", `INSERT INTO s (email) VALUES ('z@example.com') RETURNING id`); !strings.HasPrefix(got, "3") {
		t.Errorf("sequence on the branch gave %s, want 3", got)
	}
	if got := e.Psql("iso/main", `INSERT INTO s (email) VALUES ('w@example.com') RETURNING id`); !strings.HasPrefix(got, "3") {
		t.Errorf("sequence on main gave %s after the branch used 3, want 3", got)
	}
	if out, err := e.PsqlErr("iso/seq", `INSERT INTO s (email) VALUES ('x@example.com')`); err == nil || !strings.Contains(out, "duplicate key") {
		t.Errorf("unique index not enforced on the branch: %v %s", err, out)
	}
}

func testTransactions(e *env) {
	t := e.T
	e.Create("tx")
	e.Psql("tx/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('committed-before');`)
	c := e.Conn("tx/main")
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
	e.OK("branch", "create", "tx/b")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.Rows("tx/b", "SELECT v FROM t ORDER BY v"); got != "committed-before" {
		t.Errorf("branch = %s, want only the committed row", got)
	}
	if got := e.Rows("tx/main", "SELECT v FROM t ORDER BY v"); got != "committed-before,open" {
		t.Errorf("main = %s", got)
	}
}

func testLifecycle(e *env) {
	t := e.T
	e.Create("life")
	e.Psql("life/main", `CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2);`)
	e.OK("branch", "create", "life/dev")
	// On zfs a fresh clone's first start syncs its volume with syncfs
	// rather than every file; any later start goes back to Postgres's
	// default, fsync of every file (see withFreshCloneSync).
	syncMethod := func(want string) {
		t.Helper()
		if got := e.Rows("life/dev", "SHOW recovery_init_sync_method"); got != want {
			t.Errorf("recovery_init_sync_method = %s, want %s", got, want)
		}
	}
	if e.Storage == "zfs" {
		syncMethod("syncfs")
	} else {
		syncMethod("fsync")
	}
	e.Psql("life/dev", `INSERT INTO t VALUES (3)`)
	port := e.Conn("life/dev").Port
	e.OK("branch", "stop", "life/dev")
	if _, err := e.PsqlErr("life/dev", "SELECT 1"); err == nil {
		t.Error("stopped branch still answers")
	}
	var b struct{ State string }
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "life/dev", "--json").Stdout), &b)
	if b.State != "stopped" {
		t.Errorf("state after stop = %s", b.State)
	}
	if r := e.OK("branch", "stop", "life/dev"); !strings.Contains(r.Stdout, "already stopped") {
		t.Errorf("second stop: %s", r)
	}
	// A branch of a stopped parent is a copy of it as it is.
	e.OK("branch", "create", "life/fromstopped", "--parent", "life/dev")
	if got := e.Rows("life/fromstopped", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("branch of a stopped parent = %s", got)
	}
	e.OK("branch", "start", "life/dev")
	if got := e.Rows("life/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("after start = %s", got)
	}
	syncMethod("fsync")
	if p := e.Conn("life/dev").Port; p != port {
		t.Errorf("port changed across stop/start: %d -> %d", port, p)
	}
	var before, after struct{ PID int }
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "life/dev", "--json").Stdout), &before)
	if r := e.OK("branch", "start", "life/dev"); !strings.Contains(r.Stdout, "already running") {
		t.Errorf("second start: %s", r)
	}
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "life/dev", "--json").Stdout), &after)
	if before.PID == 0 || before.PID != after.PID {
		t.Errorf("start of a running branch changed its server: pid %d -> %d", before.PID, after.PID)
	}
	e.OK("branch", "restart", "life/dev")
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "life/dev", "--json").Stdout), &after)
	if after.PID == before.PID {
		t.Error("restart kept the same server process")
	}
	if got := e.Rows("life/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		t.Errorf("after restart = %s", got)
	}
	// Reset of a stopped branch leaves it stopped, with the parent's data.
	e.OK("branch", "stop", "life/fromstopped")
	e.OK("branch", "reset", "life/fromstopped")
	_ = json.Unmarshal([]byte(e.OK("branch", "get", "life/fromstopped", "--json").Stdout), &b)
	if b.State != "stopped" {
		t.Errorf("reset started a stopped branch: %s", b.State)
	}
}

func testRefusals(e *env) {
	t := e.T
	e.Create("ref")
	e.OK("branch", "create", "ref/dev")
	e.OK("branch", "create", "ref/feat", "--parent", "ref/dev")
	e.Psql("ref/main", `CREATE TABLE keep (v int); INSERT INTO keep VALUES (42);`)
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
	if e.Storage != "btrfs" && e.Storage != "zfs" {
		cases = append(cases, struct {
			want []string
			args []string
		}{[]string{"not btrfs"}, []string{"project", "create", "wrongfs", "--pool", e.Pool, "--storage", "btrfs"}})
	}
	for _, c := range cases {
		e.Refused(c.want, c.args...)
	}
	if got := e.Rows("ref/main", "SELECT v FROM keep"); got != "42" {
		t.Errorf("main's rows after refusals = %s", got)
	}
	// The message for a branch with descendants shows them as a tree.
	r := e.Run("branch", "delete", "ref/dev")
	if !strings.Contains(r.Stderr, "└─ ref/feat") {
		t.Errorf("descendants not shown as a tree:\n%s", r.Stderr)
	}
	// With --force, children go first.
	e.OK("branch", "delete", "ref/dev", "--force")
	r = e.OK("branch", "list", "ref")
	if strings.Contains(r.Stdout, "ref/dev") || strings.Contains(r.Stdout, "ref/feat") {
		t.Errorf("delete --force left branches:\n%s", r.Stdout)
	}
}

func testStatusAndDelete(e *env) {
	t := e.T
	e.Create("st")
	e.OK("branch", "create", "st/dev")
	r := e.OK("status")
	for _, want := range []string{"Velo Status", "st/main", "st/dev", "running", e.Storage} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.Stdout)
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
	if err := json.Unmarshal([]byte(e.OK("status", "--json", "--size").Stdout), &rep); err != nil {
		t.Fatal(err)
	}
	// Without --size, only ZFS, which keeps its own accounting, shows them.
	var plain struct {
		Projects []struct {
			Name       string
			BranchList []map[string]any `json:"branch_list"`
		}
	}
	if err := json.Unmarshal([]byte(e.OK("status", "--json").Stdout), &plain); err != nil {
		t.Fatal(err)
	}
	for _, p := range plain.Projects {
		for _, b := range p.BranchList {
			if _, has := b["referenced_bytes"]; p.Name == "st" && has != (e.Storage == "zfs") {
				t.Errorf("%s: status --json without --size has referenced_bytes: %v", e.Storage, has)
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
	e.AssertNoLeaks()
	e.OK("project", "delete", "st", "--force")
	e.AssertNoLeaks()
	if r := e.Run("project", "get", "st"); r.Code != 2 {
		t.Errorf("project get after delete: %s", r)
	}
}
