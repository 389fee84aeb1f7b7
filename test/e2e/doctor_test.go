package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
	"github.com/velohq/velo/internal/storage/drivers"
)

// TestDoctor makes each kind of orphan and each interrupted command on
// purpose, and checks that velo doctor finds it and names the fix, that
// --repair --dry-run changes nothing, that --repair mends it, and that
// main's data never moves.
func TestDoctor(t *testing.T) {
	for _, d := range []string{"copy", "reflink", "btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			e.create("doc")
			e.psql("doc/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)")
			e.ok("branch", "create", "doc/dev")
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
					e.t = t
					c.fn(e)
					if got := e.rows("doc/main", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
						t.Errorf("main's rows = %s, want 1,2,3", got)
					}
				})
			}
			e.t = t
		})
	}
}

func testDoctorHealthy(e *env) {
	e.assertDoctorHealthy()
	var rep doctorJSON
	r := e.ok("doctor", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		e.t.Fatalf("doctor --json: %v\n%s", err, r.stdout)
	}
	if rep.Failed != 0 || rep.Warnings != 0 || len(rep.Operations) != 0 {
		e.t.Errorf("healthy doctor --json: %d failed, %d warnings, %d operations:\n%s", rep.Failed, rep.Warnings, len(rep.Operations), r.stdout)
	}
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		seen[f.Section+"/"+f.Subject] = true
		if f.Status != "ok" {
			e.t.Errorf("healthy: %+v", f)
		}
	}
	for _, want := range []string{"host/os", "host/filesystems", "host/tools", "host/postgres", "host/run-as user", "state/state.db", "projects/doc", "branches/doc/main", "branches/doc/dev"} {
		if !seen[want] {
			e.t.Errorf("doctor --json lacks the check %s", want)
		}
	}
	if r := e.ok("doctor", "--repair", "--dry-run"); !strings.Contains(r.stdout, "Nothing to repair.") {
		e.t.Errorf("repair of a healthy home:\n%s", r)
	}
}

func testDoctorStorageOrphans(e *env) {
	ctx := context.Background()
	d := e.poolDriver()
	p, err := d.CreateVolume(ctx, "v0000000orphan")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "data"), []byte("not velo's records"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "v0000000orphan", "s0000000orphan"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := d.Clone(ctx, "s0000000orphan", "v00000000clone"); err != nil {
		e.t.Fatal(err)
	}
	archive := filepath.Join(e.home, "wal", "v0000000walorph")
	if err := os.MkdirAll(archive, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(archive, "000000010000000000000001"), []byte("x"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	want := []string{"volume v0000000orphan", "snapshot s0000000orphan", "volume v00000000clone", archive}
	do := []string{"destroy volume v0000000orphan", "destroy snapshot s0000000orphan", "destroy volume v00000000clone", "remove WAL archive " + archive}
	if t, ok := d.(*dirtree.Tree); ok {
		// What a crash in the middle of a build or a removal leaves.
		for _, dir := range []string{filepath.Join(t.Root, "tmp", "v000000000tmp"), filepath.Join(t.Root, "trash", "rm-v00000000rm")} {
			if err := os.MkdirAll(filepath.Join(dir, "pgdata"), 0o700); err != nil {
				e.t.Fatal(err)
			}
			want = append(want, dir)
			do = append(do, "remove leftover "+dir)
		}
		meta := filepath.Join(t.Root, "meta", "v0000000nometa")
		if err := os.WriteFile(meta, []byte(`{"kind":"volume"}`), 0o600); err != nil {
			e.t.Fatal(err)
		}
		want = append(want, meta)
		do = append(do, "remove leftover "+meta)
	}
	e.assertDoctorFinds(want...)
	r := e.repairCycle(do...)
	// Leaves first: the clone, then its snapshot, then the volume.
	clone := strings.Index(r.stdout, "destroy volume v00000000clone")
	snap := strings.Index(r.stdout, "destroy snapshot s0000000orphan")
	vol := strings.Index(r.stdout, "destroy volume v0000000orphan")
	if !(clone < snap && snap < vol) {
		e.t.Errorf("repair did not destroy leaves first:\n%s", r.stdout)
	}
	for _, en := range e.poolEntries() {
		if strings.HasPrefix(en.ID[1:], "0000000") {
			e.t.Errorf("%s %s is still in the pool", en.Kind, en.ID)
		}
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		e.t.Errorf("orphan archive %s is still there (%v)", archive, err)
	}
	e.assertDoctorHealthy()
}

// testDoctorRecordDeleted drops the record of a running branch behind
// velo's back. Its volume's identity file says it is this home's doc/lost:
// doctor reports the server and the volume with the rebuild as the fix,
// repair leaves them (and the archive, socket directory and log) alone,
// and velo doctor --rebuild-state --force brings the record back.
func testDoctorRecordDeleted(e *env) {
	e.ok("branch", "create", "doc/lost")
	info := e.doctorBranch("doc/lost")
	if info.State != "running" || info.PID == 0 {
		e.t.Fatalf("doc/lost is not running: %+v", info)
	}
	e.behindVelo("DELETE FROM branches WHERE name = 'lost'")
	r := e.run("doctor")
	for _, w := range []string{fmt.Sprintf("server pid %d", info.PID), "is doc/lost of this home", "volume " + info.Volume,
		"fix: velo doctor --rebuild-state --force"} {
		if r.code != 1 || !strings.Contains(r.stdout, w) {
			e.t.Errorf("doctor does not say %q (want exit 1):\n%s", w, r)
		}
	}
	before := e.fingerprint(false)
	dry := e.ok("doctor", "--repair", "--dry-run")
	if strings.Contains(dry.stdout, "would stop") || strings.Contains(dry.stdout, "would destroy volume "+info.Volume) ||
		strings.Contains(dry.stdout, "would remove WAL archive") || strings.Contains(dry.stdout, "would remove "+e.home) {
		e.t.Errorf("repair plans to touch doc/lost, whose record is gone:\n%s", dry.stdout)
	}
	e.ok("doctor", "--repair")
	if after := e.fingerprint(false); after != before || !processAlive(info.PID) {
		e.t.Errorf("repair touched doc/lost (server alive: %v):\nbefore %s\nafter  %s", processAlive(info.PID), before, after)
	}
	e.ok("doctor", "--rebuild-state", "--force")
	if got := e.doctorBranch("doc/lost"); got.State != "running" || got.PID != info.PID || got.Volume != info.Volume {
		e.t.Errorf("doc/lost after the rebuild = %+v, want it as it was: %+v", got, info)
	}
	if got := e.rows("doc/lost", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.t.Errorf("doc/lost after the rebuild has rows %s", got)
	}
	e.ok("branch", "delete", "doc/lost")
	e.assertDoctorHealthy()
}

// testDoctorVolumeGone destroys a stopped branch's volume behind velo's
// back: its record names nothing.
func testDoctorVolumeGone(e *env) {
	e.ok("branch", "create", "doc/gone")
	e.ok("branch", "stop", "doc/gone")
	vol := e.doctorBranch("doc/gone").Volume
	if err := e.poolDriver().DestroyVolume(context.Background(), vol); err != nil {
		e.t.Fatal(err)
	}
	e.assertDoctorFinds("branch doc/gone", vol+", which is gone", "drops the record")
	e.repairCycle("drop the record of branch doc/gone")
	if r := e.run("branch", "get", "doc/gone"); r.code != 2 {
		e.t.Errorf("doc/gone still exists after the repair: %s", r)
	}
	e.assertDoctorHealthy()
}

// testDoctorInterruptedCreate kills branch create once it has cloned and
// configured the volume, before it starts the server.
func testDoctorInterruptedCreate(e *env) {
	e.runKilled("after:start-server", "branch", "create", "doc/int")
	rep := e.assertDoctorFinds(`"velo branch create doc/int"`, "interrupted", "clone ", "finishes or undoes it")
	if len(rep.Operations) != 1 {
		e.t.Fatalf("want 1 unfinished operation, got %+v", rep.Operations)
	}
	op := rep.Operations[0]
	var actions []string
	for _, s := range op.Steps {
		actions = append(actions, s.Action)
	}
	if op.Command != "velo branch create doc/int" || op.PID == 0 || op.StartedAt.IsZero() || op.InProgress ||
		strings.Join(actions, ",") != "snapshot,clone,configure,start-server" {
		e.t.Errorf("unfinished operation = %+v", op)
	}
	e.repairCycle(`close operation #`)
	e.ok("branch", "create", "doc/int")
	if got := e.rows("doc/int", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.t.Errorf("doc/int made after the repair has rows %s", got)
	}
	e.assertDoctorHealthy()
}

// testDoctorInterruptedReset kills branch reset after it stopped the old
// server and started the new one, before it swapped the records: the undo
// stops the new server, destroys its clone and starts the old one again.
func testDoctorInterruptedReset(e *env) {
	e.psql("doc/dev", "INSERT INTO t VALUES (100)")
	e.runKilled("after:swap-volume", "branch", "reset", "doc/dev")
	e.assertDoctorFinds(`"velo branch reset doc/dev"`, "which no branch owns", "it stopped doc/dev")
	e.repairCycle("stop orphan server", "start doc/dev again")
	if got := e.rows("doc/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3,100" {
		e.t.Errorf("doc/dev after undoing its reset has rows %s, want its own 1,2,3,100", got)
	}
	e.assertDoctorHealthy()
	e.ok("branch", "reset", "doc/dev")
	if got := e.rows("doc/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
		e.t.Errorf("doc/dev reset after the repair has rows %s", got)
	}
	e.assertDoctorHealthy()
}

// testDoctorInterruptedDelete kills branch delete twice: after it stopped
// the server (the undo starts it again), then after it dropped the record
// (the repair finishes: gc destroys the volume and its origin snapshot).
func testDoctorInterruptedDelete(e *env) {
	e.runKilled("after:delete-branch", "branch", "delete", "doc/int")
	e.assertDoctorFinds(`"velo branch delete doc/int"`, "it stopped doc/int")
	e.repairCycle("start doc/int again")
	if st := e.doctorBranch("doc/int").State; st != "running" {
		e.t.Errorf("doc/int is %s after undoing its delete", st)
	}
	e.assertDoctorHealthy()

	vol := e.doctorBranch("doc/int").Volume
	e.runKilled("after:destroy-volume", "branch", "delete", "doc/int")
	e.assertDoctorFinds(`"velo branch delete doc/int"`, "volume "+vol, "no longer needed")
	e.repairCycle("destroy volume " + vol)
	if r := e.run("branch", "get", "doc/int"); r.code != 2 {
		e.t.Errorf("doc/int exists after its delete was finished: %s", r)
	}
	e.assertDoctorHealthy()
	e.ok("branch", "create", "doc/int")
	e.assertDoctorHealthy()
}

// testDoctorOtherHome puts a second Velo home's project in the same pool:
// its volumes and server are named by no record here, yet they are not
// orphans, and repair leaves them alone.
func testDoctorOtherHome(e *env) {
	other := &env{t: e.t, home: tmpDir(e.t, "velo-home-"), pool: e.pool, storage: e.storage}
	e.t.Cleanup(other.teardown)
	other.create("other")
	other.psql("other/main", "CREATE TABLE o (v int); INSERT INTO o VALUES (7)")
	vol := other.doctorBranch("other/main").Volume
	r := e.run("doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "volume "+vol) || !strings.Contains(r.stdout, "belongs to another Velo home") {
		e.t.Errorf("doctor with another home's project in the pool: want exit 0 and a warning naming %s, got %s", vol, r)
	}
	before := e.fingerprint(false)
	if r := e.ok("doctor", "--repair"); !strings.Contains(r.stdout, "Nothing to repair.") {
		e.t.Errorf("repair acted on another home's project:\n%s", r)
	}
	if after := e.fingerprint(false); after != before {
		e.t.Errorf("repair changed things:\nbefore %s\nafter  %s", before, after)
	}
	if got := other.rows("other/main", "SELECT v FROM o"); got != "7" {
		e.t.Errorf("the other home's rows = %s", got)
	}
	other.ok("project", "delete", "other")
	e.assertDoctorHealthy()
}

// ---- helpers ----

type doctorJSON struct {
	Findings []struct {
		Section, Subject, Status, Message, Fix string
	} `json:"findings"`
	Operations []struct {
		ID         int64
		Command    string
		PID        int
		StartedAt  time.Time `json:"started_at"`
		InProgress bool      `json:"in_progress"`
		Steps      []struct{ Action, Subject string }
	} `json:"unfinished_operations"`
	Failed   int `json:"failed"`
	Warnings int `json:"warnings"`
}

// assertDoctorHealthy runs velo doctor and expects exit 0 and nothing alarming.
func (e *env) assertDoctorHealthy() {
	e.t.Helper()
	r := e.run("doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "\nNo problems found.\n") {
		e.t.Fatalf("doctor on a healthy home: %s", r)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "  ✗") || strings.HasPrefix(line, "  !") {
			e.t.Errorf("doctor on a healthy home says: %s\n%s", line, r.stdout)
		}
	}
}

// assertDoctorFinds runs velo doctor, text and JSON, and expects exit 1, each
// of want in the text, and the repair named as the fix.
func (e *env) assertDoctorFinds(want ...string) doctorJSON {
	e.t.Helper()
	r := e.run("doctor")
	if r.code != 1 {
		e.t.Errorf("doctor: want exit 1, got %s", r)
	}
	for _, w := range append(want, "fix: velo doctor --repair") {
		if !strings.Contains(r.stdout, w) {
			e.t.Errorf("doctor does not say %q:\n%s", w, r.stdout)
		}
	}
	var rep doctorJSON
	j := e.run("doctor", "--json")
	if err := json.Unmarshal([]byte(j.stdout), &rep); err != nil || j.code != 1 || rep.Failed == 0 {
		e.t.Errorf("doctor --json: want exit 1 and failures, got %v: %s", err, j)
	}
	return rep
}

// repairCycle checks that --repair --dry-run lists want and changes
// nothing, then that --repair does each of want.
func (e *env) repairCycle(want ...string) result {
	e.t.Helper()
	before := e.fingerprint(true)
	dry := e.ok("doctor", "--repair", "--dry-run")
	for _, w := range want {
		if !strings.Contains(dry.stdout, "would "+w) {
			e.t.Errorf("repair --dry-run does not list %q:\n%s", w, dry.stdout)
		}
	}
	if after := e.fingerprint(true); after != before {
		e.t.Errorf("repair --dry-run changed things:\nbefore %s\nafter  %s", before, after)
	}
	r := e.ok("doctor", "--repair")
	for _, w := range want {
		if !strings.Contains(r.stdout, "✓ "+w) {
			e.t.Errorf("repair did not %q:\n%s", w, r.stdout)
		}
	}
	return r
}

// runKilled runs velo with a fault injected: it kills itself right after
// journalling the named step.
func (e *env) runKilled(fault string, args ...string) {
	e.t.Helper()
	saved := e.extra
	e.extra = append(append([]string(nil), saved...), "VELO_FAULT="+fault)
	defer func() { e.extra = saved }()
	if r := e.run(args...); r.code != -1 {
		e.t.Fatalf("velo %s with VELO_FAULT=%s: want it killed, got %s", strings.Join(args, " "), fault, r)
	}
}

type doctorBranchJSON struct {
	Name, State, Volume string
	PID                 int
}

func (e *env) doctorBranch(ref string) doctorBranchJSON {
	e.t.Helper()
	var b doctorBranchJSON
	r := e.ok("branch", "get", ref, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		e.t.Fatalf("branch get --json: %v\n%s", err, r.stdout)
	}
	return b
}

func (e *env) poolDriver() storage.Driver {
	e.t.Helper()
	d, err := drivers.Open(context.Background(), e.storage, e.pool)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) poolEntries() []storage.Entry {
	e.t.Helper()
	en, err := e.poolDriver().List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Slice(en, func(i, j int) bool { return en[i].ID < en[j].ID })
	return en
}

func (e *env) stateDB() *sql.DB {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.home, "state.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

// behindVelo changes the state database behind velo's back.
func (e *env) behindVelo(stmt string) {
	e.t.Helper()
	db := e.stateDB()
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		e.t.Fatalf("%s: %v", stmt, err)
	}
}

// fingerprint is everything a dry run must leave alone: the pool's
// entries and leftovers, the archives, every record (with the journal, or
// not: a real repair journals itself), and the servers running on the
// pool's volumes.
func (e *env) fingerprint(journal bool) string {
	e.t.Helper()
	var b strings.Builder
	entries := e.poolEntries()
	fmt.Fprintln(&b, "entries", entries)
	d := e.poolDriver()
	if t, ok := d.(*dirtree.Tree); ok {
		left, _ := t.Leftovers()
		fmt.Fprintln(&b, "leftovers", left)
	}
	wal, _ := os.ReadDir(filepath.Join(e.home, "wal"))
	for _, w := range wal {
		fmt.Fprint(&b, "wal ", w.Name(), " ")
	}
	db := e.stateDB()
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
			e.t.Fatal(err)
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

// processAlive reports whether a process runs (and is not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
