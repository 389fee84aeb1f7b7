package core

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/objstore/s3test"
	"github.com/velohq/velo/test/e2e/harness"
)

// A second host: host A (one VELO_HOME and pool) archives to a real S3
// server under pgbench writes and pushes a snapshot; host B (another
// VELO_HOME and its own pool) restores the project from the bucket alone:
// to the end of the WAL, to a moment before, and following it. The store
// and host B run in network namespaces of their own, each host linked to
// the store by a veth pair; host A is this process's namespace.

// pgbenchState is what pgbench's tables hold: the history's rows and the
// sums its invariant compares.
type pgbenchState struct {
	History        int
	Balance, Delta int64
}

func readPgbench(t *testing.T, netns string, port int, password string) pgbenchState {
	t.Helper()
	out, err := psqlAtErr(netns, port, password,
		"SELECT (SELECT count(*) FROM pgbench_history), (SELECT sum(abalance) FROM pgbench_accounts), (SELECT coalesce(sum(delta), 0) FROM pgbench_history)")
	if err != nil {
		t.Fatalf("psql on port %d: %v\n%s", port, err, out)
	}
	var s pgbenchState
	if _, err := fmt.Sscanf(out, "%d|%d|%d", &s.History, &s.Balance, &s.Delta); err != nil {
		t.Fatalf("pgbench state %q: %v", out, err)
	}
	return s
}

// switchArchived closes ref's current segment and waits until it is in
// ref's local archive.
func (e *env) switchArchived(t *testing.T, ref string) {
	t.Helper()
	seg := e.Psql(ref, "SELECT pg_walfile_name(pg_switch_wal())")
	eventually(t, 30*time.Second, "segment "+seg+" archived", func() bool {
		return e.Psql(ref, "SELECT coalesce(last_archived_wal, '') >= '"+seg+"' FROM pg_stat_archiver") == "t"
	})
}

// noSecret fails if secret is in a process's command line or a file of
// home's logs.
func noSecret(t *testing.T, secret, home string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), secret) {
			t.Errorf("the store's secret is in the arguments of %s: %q", p, b)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(home, "logs", "*"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), secret) {
			t.Errorf("the store's secret is in %s", l)
		}
	}
}

// psqlAtErr runs SQL with psql on 127.0.0.1:port of network namespace
// netns ("" this one) as postgres, never failing the test (for polling).
func psqlAtErr(netns string, port int, password, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := harness.NetnsCommand(ctx, netns, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSecondHost: snapshot push on host A; project create --from-archive
// on host B holds every transaction A committed up to the WAL it
// replayed, with pgbench's invariant; --pitr stops at a moment before;
// --follow sees a new commit of A and branches of it are writable; a
// bucket with no snapshot, a --pitr before the first snapshot and a wrong
// endpoint are refused, leaving nothing.
func TestSecondHost(t *testing.T) {
	// An atomic snapshot restored onto plain copies, and a non-atomic one
	// (its backup_label in the manifest) onto btrfs.
	for _, c := range []struct{ a, b string }{{"btrfs", "copy"}, {"copy", "btrfs"}} {
		t.Run(c.a+"-to-"+c.b, func(t *testing.T) { testSecondHost(t, c.a, c.b) })
	}
}

func testSecondHost(t *testing.T, driverA, driverB string) {
	pgbench := harness.PgbenchPath(t)
	// Host A is this namespace; the store and host B have one each, with
	// a veth link from each host to the store (none between the hosts).
	store, hostB := harness.NewNetns(t), harness.NewNetns(t)
	net := fmt.Sprintf("10.%d", 200+rand.IntN(50))
	harness.Veth(t, "", net+".1.1/24", store, net+".1.2/24")
	linkB, _ := harness.Veth(t, hostB, net+".2.2/24", store, net+".2.1/24")
	srv := s3test.StartIn(t, "velo-remote-e2e", store, net+".1.2")
	endpointB := "http://" + net + ".2.1:9000"
	a := newEnv(t, driverA)
	a.Extra = srv.Env(harness.TmpDir(t, "velo-aws-a-"))
	a.Create("demo", "--archive", srv.URL("demo"), "--archive-endpoint", srv.Endpoint)
	ca := a.Conn("demo/main")
	if out, err := a.Pgbench(pgbench, ca, "-i", "-q", "-s", "2"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	if out, err := a.Pgbench(pgbench, ca, "-n", "-T", "3", "-c", "2"); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	var snap struct {
		ID     string `json:"id"`
		Pushed *struct {
			Parts int   `json:"parts"`
			Size  int64 `json:"size_bytes"`
		} `json:"pushed"`
	}
	if err := json.Unmarshal([]byte(a.OK("snapshot", "create", "demo/main", "--push", "--json").Stdout), &snap); err != nil || snap.Pushed == nil || snap.Pushed.Parts == 0 {
		t.Fatalf("snapshot create --push --json: %+v, %v", snap, err)
	}
	if r := a.OK("snapshot", "push", snap.ID); !strings.Contains(r.Stdout, "already") {
		t.Errorf("snapshot push of a pushed snapshot: %s", r)
	}
	// Its --json keeps the JSON contract (TestJSONOutput has no bucket).
	dec := json.NewDecoder(strings.NewReader(a.OK("snapshot", "push", snap.ID, "--json").Stdout))
	dec.UseNumber()
	var pushDoc any
	if err := dec.Decode(&pushDoc); err != nil {
		t.Fatalf("snapshot push --json: %v", err)
	}
	checkKeys(t, "snapshot push --json", "", pushDoc)
	if m, _ := pushDoc.(map[string]any); m["already"] != true || m["id"] != snap.ID {
		t.Errorf("snapshot push --json of a pushed snapshot: %v", pushDoc)
	}
	// More writes after the snapshot (-n: no vacuum, which would empty
	// pgbench_history and break the invariant); the moment between two runs is the
	// --pitr target below.
	if out, err := a.Pgbench(pgbench, ca, "-n", "-T", "3", "-c", "2"); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	time.Sleep(1100 * time.Millisecond)
	then := time.Now().UTC()
	atThen := readPgbench(t, "", ca.Port, ca.Password)
	time.Sleep(1100 * time.Millisecond)
	if out, err := a.Pgbench(pgbench, ca, "-n", "-T", "3", "-c", "2"); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	final := readPgbench(t, "", ca.Port, ca.Password)
	if final.Balance != final.Delta || final.History == atThen.History {
		t.Fatalf("pgbench on host A: %+v (at the --pitr moment %+v)", final, atThen)
	}
	a.switchArchived(t, "demo/main")
	a.OK("wal", "push", "demo")

	// Host B restores from the bucket alone.
	b := newEnv(t, driverB)
	b.Netns = hostB
	b.Extra = srv.Env(harness.TmpDir(t, "velo-aws-b-"))
	from := []string{"--from-archive", srv.URL("demo"), "--archive-endpoint", endpointB}
	b.Create("copy", from...)
	cb := b.Conn("copy/main")
	got := readPgbench(t, b.Netns, cb.Port, cb.Password)
	if got != final {
		t.Errorf("host B's main: %+v, host A committed %+v", got, final)
	}
	if got.Balance != got.Delta {
		t.Errorf("pgbench's invariant on host B: sum(abalance) %d, sum(delta) %d", got.Balance, got.Delta)
	}
	b.Psql("copy/main", "CREATE TABLE written_on_b AS SELECT 1 AS x")
	b.OK("branch", "create", "copy/dev")
	if got := readPgbench(t, b.Netns, b.Conn("copy/dev").Port, b.Conn("copy/dev").Password); got != final {
		t.Errorf("a branch on host B: %+v, host A committed %+v", got, final)
	}

	// To a moment before.
	b.Create("then", append(from, "--pitr", then.Format(time.RFC3339Nano))...)
	ct := b.Conn("then/main")
	if got := readPgbench(t, b.Netns, ct.Port, ct.Password); got != atThen || got.Balance != got.Delta {
		t.Errorf("--pitr %s on host B: %+v, host A had %+v", then.Format(time.RFC3339Nano), got, atThen)
	}

	// Following: a commit on A reaches B through the bucket.
	b.Create("live", append(from, "--follow")...)
	port := b.BranchPort("live/main")
	// Ready once consistent; it then replays the rest of the bucket's WAL.
	eventually(t, 60*time.Second, "host B's following main replaying what host A committed", func() bool {
		return readPgbench(t, b.Netns, port, ca.Password) == final
	})
	a.Psql("demo/main", "CREATE TABLE marker AS SELECT 42 AS v")
	a.switchArchived(t, "demo/main")
	a.OK("wal", "push", "demo")
	eventually(t, 60*time.Second, "host B's following main replaying the marker", func() bool {
		out, _ := psqlAtErr(b.Netns, port, ca.Password, "SELECT v FROM marker")
		return out == "42"
	})
	b.OK("branch", "create", "live/dev")
	b.Psql("live/dev", "INSERT INTO marker VALUES (43)")
	if got := b.Psql("live/dev", "SELECT sum(v) FROM marker"); got != "85" {
		t.Errorf("branch of the following main: sum %s, want 85", got)
	}
	if st := b.OK("project", "get", "live").Stdout; !strings.Contains(st, "restored from "+srv.URL("demo")) {
		t.Errorf("project get live does not say where it was restored from:\n%s", st)
	}

	// The link between host B and the store down while B follows: B
	// waits, and catches up once the link is back.
	harness.SetLink(t, hostB, linkB, false)
	a.Psql("demo/main", "INSERT INTO marker VALUES (50)")
	a.switchArchived(t, "demo/main")
	a.OK("wal", "push", "demo")
	time.Sleep(7 * time.Second) // a poll of the bucket or two fail
	if out, _ := psqlAtErr(b.Netns, port, ca.Password, "SELECT sum(v) FROM marker"); out != "42" {
		t.Errorf("host B replayed a commit with its link to the store down: sum %s", out)
	}
	harness.SetLink(t, hostB, linkB, true)
	eventually(t, 60*time.Second, "host B's following main catching up once its link is back", func() bool {
		out, _ := psqlAtErr(b.Netns, port, ca.Password, "SELECT sum(v) FROM marker")
		return out == "92"
	})

	// The store down while host B follows: B waits, and catches up once
	// the store is back and host A's uploads have gone on.
	srv.Stop()
	a.Psql("demo/main", "INSERT INTO marker VALUES (44)")
	a.switchArchived(t, "demo/main")
	time.Sleep(6 * time.Second) // a poll of the bucket or two fail
	srv.Restart()
	a.OK("wal", "push", "demo")
	eventually(t, 60*time.Second, "host B's following main catching up after the store came back", func() bool {
		out, _ := psqlAtErr(b.Netns, port, ca.Password, "SELECT sum(v) FROM marker")
		return out == "136"
	})

	// The store's secret is in no process's arguments and no log; only
	// the following project keeps a credentials file.
	noSecret(t, srv.SecretKey, b.Home)
	if creds, _ := filepath.Glob(filepath.Join(b.Home, "sources", "*.aws")); len(creds) != 1 {
		t.Errorf("credentials files on host B: %v, want the following project's alone", creds)
	}

	// Bad input: nothing is made.
	before := harness.Volumes(b.Pool)
	refuse := func(code int, want string, args ...string) {
		t.Helper()
		r := b.Run(append([]string{"project", "create", "bad", "--pool", b.Pool, "--storage", "copy"}, args...)...)
		if r.Code != code || !strings.Contains(r.Stderr, want) {
			t.Errorf("project create bad %v: want exit %d and %q, got %s", args, code, want, r)
		}
		if r := b.Run("project", "get", "bad"); r.Code != 2 {
			t.Errorf("a refused --from-archive left project bad: %s", r)
		}
		if now := harness.Volumes(b.Pool); len(now) != len(before) {
			t.Errorf("a refused --from-archive left volumes: %v, before %v", now, before)
		}
	}
	refuse(2, "holds no pushed snapshot", "--from-archive", srv.URL("empty"), "--archive-endpoint", endpointB)
	refuse(2, "before the oldest snapshot pushed", append(from, "--pitr", "2020-01-01T00:00:00Z")...)
	refuse(1, "object store", "--from-archive", srv.URL("demo"), "--archive-endpoint", "http://127.0.0.1:1")
	refuse(1, "object store", "--from-archive", srv.URL("demo"), "--archive-endpoint", srv.Endpoint) // host A's side: no route from B
	refuse(2, "not a valid name", "--from-archive", "s3://No_Bucket/x", "--archive-endpoint", endpointB)
	refuse(2, "--follow keeps replaying", append(from, "--follow", "--pitr", "1m ago")...)

	// A corrupt object is refused by its checksum, with its name, and
	// nothing is left: a part of the snapshot, then a WAL segment.
	part := srv.Dir("demo/snapshots/" + snap.ID + "/data.tar.00000")
	restorePart := corrupt(t, part)
	refuse(2, "data.tar.00000 is corrupt", from...)
	restorePart()
	segs, _ := filepath.Glob(srv.Dir("demo/wal/" + filepath.Base(a.walInfo("demo/main").Directory) + "/0000000*"))
	var last string
	for _, s := range segs {
		if len(filepath.Base(s)) == 24 {
			last = s
		}
	}
	corrupt(t, last)
	refuse(1, filepath.Base(last)+" is corrupt", from...)
	b.AssertDoctorHealthy()
	a.AssertDoctorHealthy()
}

// corrupt flips bytes in the middle of an object's file in the store's
// directory (its recorded checksum stays); the returned func puts them back.
func corrupt(t *testing.T, path string) func() {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 {
		t.Fatalf("corrupt %s: %v", path, err)
	}
	orig := slices.Clone(b)
	for i := len(b) / 2; i < len(b)/2+8 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
