package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestDoctor makes each kind of orphan and each interrupted command on
// purpose, and checks that velo doctor finds it and names the fix, that
// --repair --dry-run changes nothing, that --repair mends it, and that
// main's data never moves.
func TestDoctor(t *testing.T) {
	for _, d := range []string{"copy", "reflink", "btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			e.Create("doc")
			e.Psql("doc/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)")
			e.OK("branch", "create", "doc/dev")
			for _, c := range []struct {
				name string
				fn   func(*env)
			}{
				{"Healthy", testDoctorHealthy},
				{"StorageOrphans", testDoctorStorageOrphans},
				{"BranchRecordDeleted", testDoctorRecordDeleted},
				{"VolumeGone", testDoctorVolumeGone},
				{"InterruptedCreate", testDoctorInterruptedCreate},
				{"InterruptedReset", testDoctorInterruptedReset},
				{"InterruptedDelete", testDoctorInterruptedDelete},
				{"PoolSharedWithAnotherHome", testDoctorOtherHome},
			} {
				t.Run(c.name, func(t *testing.T) {
					e.T = t
					c.fn(e)
					if got := e.Rows("doc/main", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
						t.Errorf("main's rows = %s, want 1,2,3", got)
					}
				})
			}
			e.T = t
		})
	}
}

func testDoctorHealthy(e *env) {
	e.AssertDoctorHealthy()
	var rep harness.DoctorJSON
	r := e.OK("doctor", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		e.T.Fatalf("doctor --json: %v\n%s", err, r.Stdout)
	}
	if rep.Failed != 0 || rep.Warnings != 0 || len(rep.Operations) != 0 {
		e.T.Errorf("healthy doctor --json: %d failed, %d warnings, %d operations:\n%s", rep.Failed, rep.Warnings, len(rep.Operations), r.Stdout)
	}
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		seen[f.Section+"/"+f.Subject] = true
		if f.Status != "ok" {
			e.T.Errorf("healthy: %+v", f)
		}
	}
	for _, want := range []string{"host/os", "host/filesystems", "host/tools", "host/postgres", "host/run-as user", "state/state.db", "projects/doc", "branches/doc/main", "branches/doc/dev"} {
		if !seen[want] {
			e.T.Errorf("doctor --json lacks the check %s", want)
		}
	}
	if r := e.OK("doctor", "--repair", "--dry-run"); !strings.Contains(r.Stdout, "Nothing to repair.") {
		e.T.Errorf("repair of a healthy home:\n%s", r)
	}
}

func testDoctorStorageOrphans(e *env) {
	ctx := context.Background()
	d := e.PoolDriver()
	p, err := d.CreateVolume(ctx, "v0000000orphan")
	if err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "data"), []byte("not velo's records"), 0o600); err != nil {
		e.T.Fatal(err)
	}
	if err := d.Snapshot(ctx, "v0000000orphan", "s0000000orphan"); err != nil {
		e.T.Fatal(err)
	}
	if _, err := d.Clone(ctx, "s0000000orphan", "v00000000clone"); err != nil {
		e.T.Fatal(err)
	}
	archive := filepath.Join(e.Home, "wal", "v0000000walorph")
	if err := os.MkdirAll(archive, 0o700); err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(archive, "000000010000000000000001"), []byte("x"), 0o600); err != nil {
		e.T.Fatal(err)
	}
	want := []string{"volume v0000000orphan", "snapshot s0000000orphan", "volume v00000000clone", archive}
	do := []string{"destroy volume v0000000orphan", "destroy snapshot s0000000orphan", "destroy volume v00000000clone", "remove WAL archive " + archive}
	if t, ok := d.(*dirtree.Tree); ok {
		// What a crash in the middle of a build or a removal leaves.
		for _, dir := range []string{filepath.Join(t.Root, "tmp", "v000000000tmp"), filepath.Join(t.Root, "trash", "rm-v00000000rm")} {
			if err := os.MkdirAll(filepath.Join(dir, "pgdata"), 0o700); err != nil {
				e.T.Fatal(err)
			}
			want = append(want, dir)
			do = append(do, "remove leftover "+dir)
		}
		meta := filepath.Join(t.Root, "meta", "v0000000nometa")
		if err := os.WriteFile(meta, []byte(`{"kind":"volume"}`), 0o600); err != nil {
			e.T.Fatal(err)
		}
		want = append(want, meta)
		do = append(do, "remove leftover "+meta)
	}
	e.assertDoctorFinds(want...)
	r := e.repairCycle(do...)
	// Leaves first: the clone, then its snapshot, then the volume.
	clone := strings.Index(r.Stdout, "destroy volume v00000000clone")
	snap := strings.Index(r.Stdout, "destroy snapshot s0000000orphan")
	vol := strings.Index(r.Stdout, "destroy volume v0000000orphan")
	if !(clone < snap && snap < vol) {
		e.T.Errorf("repair did not destroy leaves first:\n%s", r.Stdout)
	}
	for _, en := range e.PoolEntries() {
		if strings.HasPrefix(en.ID[1:], "0000000") {
			e.T.Errorf("%s %s is still in the pool", en.Kind, en.ID)
		}
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		e.T.Errorf("orphan archive %s is still there (%v)", archive, err)
	}
	e.AssertDoctorHealthy()
}

// testDoctorRecordDeleted drops the record of a running branch behind
// velo's back. Its volume's identity file says it is this home's doc/lost:
// doctor reports the server and the volume with the rebuild as the fix,
// repair leaves them (and the archive, socket directory and log) alone,
// and velo doctor --rebuild-state --force brings the record back.
func testDoctorRecordDeleted(e *env) {
	e.OK("branch", "create", "doc/lost")
	info := e.DoctorBranch("doc/lost")
	if info.State != "running" || info.PID == 0 {
		e.T.Fatalf("doc/lost is not running: %+v", info)
	}
	e.behindVelo("DELETE FROM branches WHERE name = 'lost'")
	r := e.Run("doctor")
	for _, w := range []string{fmt.Sprintf("server pid %d", info.PID), "is doc/lost of this home", "volume " + info.Volume,
		"fix: velo doctor --rebuild-state --force"} {
		if r.Code != 1 || !strings.Contains(r.Stdout, w) {
			e.T.Errorf("doctor does not say %q (want exit 1):\n%s", w, r)
		}
	}
	before := e.fingerprint(false)
	dry := e.OK("doctor", "--repair", "--dry-run")
	if strings.Contains(dry.Stdout, "would stop") || strings.Contains(dry.Stdout, "would destroy volume "+info.Volume) ||
		strings.Contains(dry.Stdout, "would remove WAL archive") || strings.Contains(dry.Stdout, "would remove "+e.Home) {
		e.T.Errorf("repair plans to touch doc/lost, whose record is gone:\n%s", dry.Stdout)
	}
	e.OK("doctor", "--repair")
	if after := e.fingerprint(false); after != before || !harness.ProcessAlive(info.PID) {
		e.T.Errorf("repair touched doc/lost (server alive: %v):\nbefore %s\nafter  %s", harness.ProcessAlive(info.PID), before, after)
	}
	e.OK("doctor", "--rebuild-state", "--force")
	if got := e.DoctorBranch("doc/lost"); got.State != "running" || got.PID != info.PID || got.Volume != info.Volume {
		e.T.Errorf("doc/lost after the rebuild = %+v, want it as it was: %+v", got, info)
	}
	if got := e.Rows("doc/lost", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.T.Errorf("doc/lost after the rebuild has rows %s", got)
	}
	e.OK("branch", "delete", "doc/lost")
	e.AssertDoctorHealthy()
}

// testDoctorVolumeGone destroys a stopped branch's volume behind velo's
// back: its record names nothing.
func testDoctorVolumeGone(e *env) {
	e.OK("branch", "create", "doc/gone")
	e.OK("branch", "stop", "doc/gone")
	vol := e.DoctorBranch("doc/gone").Volume
	if err := e.PoolDriver().DestroyVolume(context.Background(), vol); err != nil {
		e.T.Fatal(err)
	}
	e.assertDoctorFinds("branch doc/gone", vol+", which is gone", "drops the record")
	e.repairCycle("drop the record of branch doc/gone")
	if r := e.Run("branch", "get", "doc/gone"); r.Code != 2 {
		e.T.Errorf("doc/gone still exists after the repair: %s", r)
	}
	e.AssertDoctorHealthy()
}

// testDoctorInterruptedCreate kills branch create once it has cloned and
// configured the volume, before it starts the server.
func testDoctorInterruptedCreate(e *env) {
	e.runKilled("after:start-server", "branch", "create", "doc/int")
	rep := e.assertDoctorFinds(`"velo branch create doc/int"`, "interrupted", "clone ", "finishes or undoes it")
	if len(rep.Operations) != 1 {
		e.T.Fatalf("want 1 unfinished operation, got %+v", rep.Operations)
	}
	op := rep.Operations[0]
	var actions []string
	for _, s := range op.Steps {
		actions = append(actions, s.Action)
	}
	if op.Command != "velo branch create doc/int" || op.PID == 0 || op.StartedAt.IsZero() || op.InProgress ||
		strings.Join(actions, ",") != "snapshot,clone,configure,start-server" {
		e.T.Errorf("unfinished operation = %+v", op)
	}
	e.repairCycle(`close operation #`)
	e.OK("branch", "create", "doc/int")
	if got := e.Rows("doc/int", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.T.Errorf("doc/int made after the repair has rows %s", got)
	}
	e.AssertDoctorHealthy()
}

// testDoctorInterruptedReset kills branch reset after it stopped the old
// server and started the new one, before it swapped the records: the undo
// stops the new server, destroys its clone and starts the old one again.
func testDoctorInterruptedReset(e *env) {
	e.Psql("doc/dev", "INSERT INTO t VALUES (100)")
	e.runKilled("after:swap-volume", "branch", "reset", "doc/dev")
	e.assertDoctorFinds(`"velo branch reset doc/dev"`, "which no branch owns", "it stopped doc/dev")
	e.repairCycle("stop orphan server", "start doc/dev again")
	if got := e.Rows("doc/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3,100" {
		e.T.Errorf("doc/dev after undoing its reset has rows %s, want its own 1,2,3,100", got)
	}
	e.AssertDoctorHealthy()
	e.OK("branch", "reset", "doc/dev")
	if got := e.Rows("doc/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.T.Errorf("doc/dev reset after the repair has rows %s", got)
	}
	e.AssertDoctorHealthy()
}

// testDoctorInterruptedDelete kills branch delete twice: after it stopped
// the server (the undo starts it again), then after it dropped the record
// (the repair finishes: gc destroys the volume and its origin snapshot).
func testDoctorInterruptedDelete(e *env) {
	e.runKilled("after:delete-branch", "branch", "delete", "doc/int")
	e.assertDoctorFinds(`"velo branch delete doc/int"`, "it stopped doc/int")
	e.repairCycle("start doc/int again")
	if st := e.DoctorBranch("doc/int").State; st != "running" {
		e.T.Errorf("doc/int is %s after undoing its delete", st)
	}
	e.AssertDoctorHealthy()

	vol := e.DoctorBranch("doc/int").Volume
	e.runKilled("after:destroy-volume", "branch", "delete", "doc/int")
	e.assertDoctorFinds(`"velo branch delete doc/int"`, "volume "+vol, "no longer needed")
	e.repairCycle("destroy volume " + vol)
	if r := e.Run("branch", "get", "doc/int"); r.Code != 2 {
		e.T.Errorf("doc/int exists after its delete was finished: %s", r)
	}
	e.AssertDoctorHealthy()
	e.OK("branch", "create", "doc/int")
	e.AssertDoctorHealthy()
}

// testDoctorOtherHome puts a second Velo home's project in the same pool:
// its volumes and server are named by no record here, yet they are not
// orphans, and repair leaves them alone.
func testDoctorOtherHome(e *env) {
	other := &env{&harness.Env{T: e.T, Home: harness.TmpDir(e.T, "velo-home-"), Pool: e.Pool, Storage: e.Storage}}
	e.T.Cleanup(other.Teardown)
	other.Create("other")
	other.Psql("other/main", "CREATE TABLE o (v int); INSERT INTO o VALUES (7)")
	vol := other.DoctorBranch("other/main").Volume
	r := e.Run("doctor")
	if r.Code != 0 || !strings.Contains(r.Stdout, "volume "+vol) || !strings.Contains(r.Stdout, "belongs to another Velo home") {
		e.T.Errorf("doctor with another home's project in the pool: want exit 0 and a warning naming %s, got %s", vol, r)
	}
	before := e.fingerprint(false)
	if r := e.OK("doctor", "--repair"); !strings.Contains(r.Stdout, "Nothing to repair.") {
		e.T.Errorf("repair acted on another home's project:\n%s", r)
	}
	if after := e.fingerprint(false); after != before {
		e.T.Errorf("repair changed things:\nbefore %s\nafter  %s", before, after)
	}
	if got := other.Rows("other/main", "SELECT v FROM o"); got != "7" {
		e.T.Errorf("the other home's rows = %s", got)
	}
	other.OK("project", "delete", "other")
	e.AssertDoctorHealthy()
}

// ---- helpers ----

// assertDoctorFinds runs velo doctor, text and JSON, and expects exit 1, each
// of want in the text, and the repair named as the fix.
func (e *env) assertDoctorFinds(want ...string) harness.DoctorJSON {
	e.T.Helper()
	r := e.Run("doctor")
	if r.Code != 1 {
		e.T.Errorf("doctor: want exit 1, got %s", r)
	}
	for _, w := range append(want, "fix: velo doctor --repair") {
		if !strings.Contains(r.Stdout, w) {
			e.T.Errorf("doctor does not say %q:\n%s", w, r.Stdout)
		}
	}
	var rep harness.DoctorJSON
	j := e.Run("doctor", "--json")
	if err := json.Unmarshal([]byte(j.Stdout), &rep); err != nil || j.Code != 1 || rep.Failed == 0 {
		e.T.Errorf("doctor --json: want exit 1 and failures, got %v: %s", err, j)
	}
	return rep
}

// repairCycle checks that --repair --dry-run lists want and changes
// nothing, then that --repair does each of want.
func (e *env) repairCycle(want ...string) harness.Result {
	e.T.Helper()
	before := e.fingerprint(true)
	dry := e.OK("doctor", "--repair", "--dry-run")
	for _, w := range want {
		if !strings.Contains(dry.Stdout, "would "+w) {
			e.T.Errorf("repair --dry-run does not list %q:\n%s", w, dry.Stdout)
		}
	}
	if after := e.fingerprint(true); after != before {
		e.T.Errorf("repair --dry-run changed things:\nbefore %s\nafter  %s", before, after)
	}
	r := e.OK("doctor", "--repair")
	for _, w := range want {
		if !strings.Contains(r.Stdout, "✓ "+w) {
			e.T.Errorf("repair did not %q:\n%s", w, r.Stdout)
		}
	}
	return r
}

// runKilled runs velo with a fault injected: it kills itself right after
// journalling the named step.
func (e *env) runKilled(fault string, args ...string) {
	e.T.Helper()
	saved := e.Extra
	e.Extra = append(append([]string(nil), saved...), "VELO_FAULT="+fault)
	defer func() { e.Extra = saved }()
	if r := e.Run(args...); r.Code != -1 {
		e.T.Fatalf("velo %s with VELO_FAULT=%s: want it killed, got %s", strings.Join(args, " "), fault, r)
	}
}

// behindVelo changes the state database behind velo's back.
func (e *env) behindVelo(stmt string) {
	e.T.Helper()
	db := e.StateDB()
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		e.T.Fatalf("%s: %v", stmt, err)
	}
}

// fingerprint is everything a dry run must leave alone: the pool's
// entries and leftovers, the archives, every record (with the journal, or
// not: a real repair journals itself), and the servers running on the
// pool's volumes.
func (e *env) fingerprint(journal bool) string {
	e.T.Helper()
	var b strings.Builder
	entries := e.PoolEntries()
	fmt.Fprintln(&b, "entries", entries)
	d := e.PoolDriver()
	if t, ok := d.(*dirtree.Tree); ok {
		left, _ := t.Leftovers()
		fmt.Fprintln(&b, "leftovers", left)
	}
	wal, _ := os.ReadDir(filepath.Join(e.Home, "wal"))
	for _, w := range wal {
		fmt.Fprint(&b, "wal ", w.Name(), " ")
	}
	db := e.StateDB()
	defer db.Close()
	queries := []string{
		"SELECT id || name || volume_id FROM branches ORDER BY id",
		"SELECT id FROM snapshots ORDER BY id",
		"SELECT id FROM retired_volumes ORDER BY id",
	}
	if journal {
		queries = append(queries, "SELECT id || ':' || (finished_at IS NULL) FROM operations ORDER BY id")
	}
	for _, q := range queries {
		rows, err := db.Query(q)
		if err != nil {
			e.T.Fatal(err)
		}
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			fmt.Fprint(&b, s, " ")
		}
		rows.Close()
		fmt.Fprintln(&b)
	}
	var paths []string
	for _, en := range entries {
		if en.Kind == storage.KindVolume {
			if p, err := d.Path(context.Background(), en.ID); err == nil {
				paths = append(paths, p)
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var servers []string
	for _, p := range procs {
		c, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, vp := range paths {
			if strings.Contains(string(c), "\x00-D\x00"+vp+"/") {
				servers = append(servers, filepath.Base(filepath.Dir(p))+"@"+vp)
			}
		}
	}
	sort.Strings(servers)
	fmt.Fprintln(&b, "servers", servers)
	return b.String()
}
