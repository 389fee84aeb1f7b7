package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
)

// pg15 is Debian's PostgreSQL 15, the "production" server a logical import
// reads; the projects are made with the PostgreSQL 17 of VELO_PG_BIN.
const pg15 = "/usr/lib/postgresql/15/bin"

// source is a "production" PostgreSQL 15 on loopback, with a password.
type source struct {
	t        testing.TB
	dir      string
	port     int
	password string
}

// startSource initdbs and starts a PostgreSQL 15 on 127.0.0.1 with
// scram-sha-256 authentication, stopped when the test ends.
func startSource(t testing.TB) *source {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, pg15+"/pg_dump")
	s := &source{t: t, dir: tmpDir(t, "velo-source-"), port: freeTCPPort(t), password: "Pr0d-s3cret-pw"}
	pw := filepath.Join(s.dir, "pw")
	if err := os.WriteFile(pw, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(s.dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	asPostgres(t, "chown", "-R", "postgres:postgres", s.dir)
	asPostgres(t, "runuser", "-u", "postgres", "--", pg15+"/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256",
		"--pwfile="+pw, "--locale=C.UTF-8", "-E", "UTF8")
	asPostgres(t, "runuser", "-u", "postgres", "--", pg15+"/pg_ctl", "-D", data, "-w", "-l", filepath.Join(s.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, s.dir), "start")
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", pg15+"/pg_ctl", "-D", data, "-m", "immediate", "stop").Run()
	})
	return s
}

func asPostgres(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func freeTCPPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// url is SOURCE for velo, without the password (given by PGPASSWORD).
func (s *source) url() string {
	return fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", s.port)
}

// psql runs SQL on database db of the source as postgres.
func (s *source) psql(db, sql string) string {
	s.t.Helper()
	return psqlAt(s.t, s.port, s.password, db, sql)
}

// psqlAt runs SQL with psql on 127.0.0.1:port as postgres.
func psqlAt(t testing.TB, port int, password, db, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pg15+"/psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "-d", db, "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql on port %d, database %s: %v\n%s", port, db, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// loadProduction gives the source a pgbench database and a database shop
// whose objects the role shopper owns.
func (s *source) loadProduction() {
	s.t.Helper()
	s.psql("postgres", "CREATE DATABASE bench")
	cmd := exec.Command(pg15+"/pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", fmt.Sprint(s.port), "-U", "postgres", "bench")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.password)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	s.psql("postgres", "CREATE ROLE shopper LOGIN PASSWORD 'shopper-pw'")
	s.psql("postgres", "CREATE DATABASE shop OWNER shopper")
	s.psql("shop", `SET ROLE shopper; CREATE SCHEMA store; CREATE TABLE store.items (id int PRIMARY KEY, name text);
		INSERT INTO store.items SELECT g, 'item ' || g FROM generate_series(1, 50) g`)
}

// writes sums what the statistics say was written to the source's user
// tables (shared catalogs show in every database's statistics, so a CREATE
// DATABASE by the test would count), which a logical import must leave as
// it was.
func (s *source) writes() string {
	s.t.Helper()
	var out []string
	for _, db := range []string{"bench", "shop"} {
		out = append(out, s.psql(db, "SELECT pg_stat_force_next_flush(); SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"))
	}
	// Nor may it leave a role, a slot or a setting there.
	out = append(out, s.psql("postgres", "SELECT (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles), (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_db_role_setting)"))
	return strings.Join(out, " ")
}

// psqlDB runs SQL on database db of a branch.
func (e *env) psqlDB(ref, db, sql string) string {
	e.t.Helper()
	c := e.conn(ref)
	return psqlAt(e.t, c.Port, c.Password, db, sql)
}

// TestLogicalImport imports a PostgreSQL 15 "production" server into a
// PostgreSQL 17 project on btrfs, then refreshes it after the source has
// changed, with a branch that keeps its own data.
func TestLogicalImport(t *testing.T) {
	t.Parallel()
	src := startSource(t)
	src.loadProduction()
	e := newEnv(t, "btrfs")
	e.extra = append(e.extra, "PGPASSWORD="+src.password)
	written := src.writes()

	e.ok("project", "create", "prod", "--pool", e.pool, "--from", src.url(), "--logical", "--pg-version", "17")
	if got := e.psql("prod/main", "SHOW server_version_num"); !strings.HasPrefix(got, "17") {
		t.Fatalf("prod/main runs %s, want PostgreSQL 17", got)
	}
	if got := e.psqlDB("prod/main", "bench", "SELECT count(*) FROM pgbench_accounts"); got != "100000" {
		t.Fatalf("prod/main's bench has %s accounts, want 100000", got)
	}
	if got := e.psqlDB("prod/main", "shop", "SELECT count(*), (SELECT tableowner FROM pg_tables WHERE tablename = 'items'), (SELECT datdba::regrole FROM pg_database WHERE datname = 'shop') FROM store.items"); got != "50|shopper|shopper" {
		t.Fatalf("prod/main's shop: %s, want 50 items owned by shopper in a database owned by shopper", got)
	}
	if got := e.psql("prod/main", "SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'shopper'"); got != "t|t" {
		t.Fatalf("role shopper on prod/main: %q, want it with its login and password", got)
	}
	// The source's password is nowhere in the pool, and the journal
	// recorded no secret.
	if out, _ := exec.Command("grep", "-rlF", src.password, e.pool, filepath.Join(e.home, "state.db")).Output(); len(out) > 0 {
		t.Fatalf("the source's password is in %s", out)
	}
	var info struct {
		Source struct {
			Mode      string
			Host      string
			Port      int
			Databases []string
			All       bool `json:"all_databases"`
		}
	}
	if err := json.Unmarshal([]byte(e.ok("project", "get", "prod", "--json").stdout), &info); err != nil {
		t.Fatal(err)
	}
	if s := info.Source; s.Mode != "logical" || s.Port != src.port || strings.Join(s.Databases, ",") != "bench,postgres,shop" || !s.All {
		t.Fatalf("project get shows source %+v", s)
	}

	if w := src.writes(); w != written {
		t.Errorf("the import wrote to the source's tables: statistics %s, then %s", written, w)
	}

	// The source changes; a branch writes its own data; refresh.
	src.psql("shop", "INSERT INTO store.items VALUES (51, 'new on the source')")
	written = src.writes()
	e.ok("branch", "create", "prod/dev")
	e.psqlDB("prod/dev", "shop", "INSERT INTO store.items VALUES (1000, 'only on dev')")
	before := e.conn("prod/main")
	r := e.ok("project", "refresh", "prod")
	if !strings.Contains(r.stderr, "Restore shop") {
		t.Errorf("refresh shows no step per database:\n%s", r.stderr)
	}
	after := e.conn("prod/main")
	if after.Port != before.Port || after.Password != before.Password {
		t.Fatalf("refresh moved main from port %d to %d or changed its password", before.Port, after.Port)
	}
	if got := e.psqlDB("prod/main", "shop", "SELECT string_agg(id::text, ',' ORDER BY id) FROM store.items WHERE id > 49"); got != "50,51" {
		t.Fatalf("prod/main after refresh has items %s, want 50,51 (the source's new row)", got)
	}
	if got := e.psqlDB("prod/dev", "shop", "SELECT string_agg(id::text, ',' ORDER BY id) FROM store.items WHERE id > 49"); got != "50,1000" {
		t.Fatalf("prod/dev after refresh has items %s, want its own 50,1000", got)
	}
	if err := json.Unmarshal([]byte(e.ok("project", "get", "prod", "--json").stdout), &info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.ok("project", "get", "prod").stdout, "refreshed") {
		t.Errorf("project get does not say when prod was refreshed")
	}
	if w := src.writes(); w != written {
		t.Errorf("the refresh wrote to the source's tables: statistics %s, then %s", written, w)
	}
	e.assertDoctorHealthy()
	// main's old volume stays while prod/dev, cloned from a snapshot of
	// it, lives, and goes with it.
	e.ok("branch", "delete", "prod/dev")
	e.assertNoLeaks()
}

// TestLogicalImportFaults: each bad SOURCE, flag or fault gives a clear
// error and the exit code of its kind, and leaves nothing behind (no
// project, volume, server or archive), the source unwritten.
func TestLogicalImportFaults(t *testing.T) {
	t.Parallel()
	src := startSource(t)
	src.loadProduction()
	// broken restores only where search_path is public: pg_restore's is
	// empty, so its index fails after its rows are in.
	src.psql("postgres", "CREATE DATABASE broken")
	src.psql("broken", `CREATE FUNCTION helper(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
		CREATE FUNCTION plus1(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT helper($1)';
		CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000); CREATE INDEX ON t (plus1(v))`)
	e := newEnv(t, "copy")
	e.extra = append(e.extra, "PGPASSWORD="+src.password)
	written := src.writes()
	create := func(from string, extra ...string) []string {
		return append([]string{"project", "create", "f", "--pool", e.pool, "--storage", "copy", "--from", from, "--logical"}, extra...)
	}
	nothingLeft := func(what string) {
		t.Helper()
		if r := e.run("project", "get", "f"); r.code != 2 {
			t.Fatalf("after %s, project f exists: %s", what, r)
		}
		e.assertNoLeaks()
		if s := serversUnder(e.pool); len(s) > 0 {
			t.Fatalf("after %s, servers %v run on the pool", what, s)
		}
		e.assertDoctorHealthy()
	}

	e.refused([]string{`--database "nope"`, "has no such database", "bench, broken, postgres, shop"}, create(src.url(), "--database", "nope")...)
	nothingLeft("--database nope")
	e.refused([]string{"--pg-version 14 is older than the source's PostgreSQL 15", "--pg-version 15 or later"}, create(src.url(), "--pg-version", "14")...)
	nothingLeft("--pg-version 14")

	wrong := fmt.Sprintf("postgresql://postgres:Wr0ng-pw@127.0.0.1:%d/postgres", src.port)
	e.refused([]string{"refused the password of role postgres", "PGPASSWORD"}, create(wrong)...)
	if r := e.run(create(wrong)...); strings.Contains(r.stderr+r.stdout, "Wr0ng-pw") {
		t.Errorf("the password given shows in the output:\n%s", r)
	}
	nothingLeft("a wrong password")

	gone := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", freeTCPPort(t))
	if r := e.run(create(gone)...); r.code != 1 || !strings.Contains(r.stderr, "cannot reach source") || !strings.Contains(r.stderr, "listen_addresses") {
		t.Errorf("an unreachable source: want exit 1 naming what to check, got %s", r)
	}
	nothingLeft("an unreachable source")

	r := e.run(create(src.url(), "--database", "shop", "--database", "broken")...)
	if r.code != 1 || !strings.Contains(r.stderr, "restore database broken") || !strings.Contains(r.stderr, "function helper(integer) does not exist") {
		t.Errorf("pg_restore failing midway: want exit 1 with its error, got %s", r)
	}
	if !strings.Contains(r.stderr, "Restore shop") {
		t.Errorf("the failing import did not restore shop first:\n%s", r.stderr)
	}
	nothingLeft("pg_restore failing")

	// A pool without room for the source's size, refused before anything
	// is made: a 200 MB btrfs pool, a 150 MB database.
	src.psql("postgres", "CREATE DATABASE big")
	src.psql("big", "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 500000) g")
	small := newEnvSized(t, "btrfs", 200<<20)
	small.extra = e.extra
	sr := small.run("project", "create", "f", "--pool", small.pool, "--from", src.url(), "--logical", "--database", "big")
	if sr.code != 1 || !strings.Contains(sr.stderr, "no space left on pool") || !strings.Contains(sr.stderr, "pick a roomier --pool") {
		t.Errorf("a pool without room: want exit 1 saying so before anything, got %s", sr)
	}
	if strings.Contains(sr.stderr, "Create volume") {
		t.Errorf("a pool without room: a volume was made before the refusal:\n%s", sr.stderr)
	}
	small.assertNoLeaks()

	if w := src.writes(); w != written {
		t.Errorf("the faults wrote to the source's tables: statistics %s, then %s", written, w)
	}
	// A source role that is not a superuser reads the roles without their
	// passwords, and says so; the objects keep their owners.
	src.psql("postgres", "CREATE ROLE reader LOGIN PASSWORD 'Reader-pw-1' IN ROLE pg_read_all_data")
	reader := fmt.Sprintf("postgresql://reader:Reader-pw-1@127.0.0.1:%d/postgres", src.port)
	rr := e.ok("project", "create", "r", "--pool", e.pool, "--storage", "copy", "--from", reader, "--logical", "--database", "shop")
	if !strings.Contains(rr.stderr, "passwords not copied (reader is not a superuser") {
		t.Errorf("an import by a role that is not a superuser does not say the passwords were skipped:\n%s", rr.stderr)
	}
	if got := e.psqlDB("r/main", "shop", "SELECT (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'shopper'), tableowner, count(*) FROM pg_tables, store.items WHERE tablename = 'items' GROUP BY 1, 2"); got != "t|shopper|50" {
		t.Errorf("r/main's shop: %q, want shopper without a password owning 50 items", got)
	}
	e.ok("project", "delete", "r")

	// Refresh is for logical imports only.
	e.create("empty")
	e.refused([]string{"project empty was made empty, not imported"}, "project", "refresh", "empty")
}
