package importing

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestLogicalImport imports a PostgreSQL 15 "production" server into a
// PostgreSQL 17 project on btrfs, then refreshes it after the source has
// changed, with a branch that keeps its own data.
func TestLogicalImport(t *testing.T) {
	t.Parallel()
	src := harness.StartSource(t)
	src.LoadProduction()
	e := newEnv(t, "btrfs")
	e.Extra = append(e.Extra, "PGPASSWORD="+src.Password)
	written := src.Writes()

	e.OK("project", "create", "prod", "--pool", e.Pool, "--from", src.URL(), "--logical", "--pg-version", "17")
	if got := e.Psql("prod/main", "SHOW server_version_num"); !strings.HasPrefix(got, "17") {
		t.Fatalf("prod/main runs %s, want PostgreSQL 17", got)
	}
	if got := e.PsqlDB("prod/main", "bench", "SELECT count(*) FROM pgbench_accounts"); got != "100000" {
		t.Fatalf("prod/main's bench has %s accounts, want 100000", got)
	}
	if got := e.PsqlDB("prod/main", "shop", "SELECT count(*), (SELECT tableowner FROM pg_tables WHERE tablename = 'items'), (SELECT datdba::regrole FROM pg_database WHERE datname = 'shop') FROM store.items"); got != "50|shopper|shopper" {
		t.Fatalf("prod/main's shop: %s, want 50 items owned by shopper in a database owned by shopper", got)
	}
	if got := e.Psql("prod/main", "SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'shopper'"); got != "t|t" {
		t.Fatalf("role shopper on prod/main: %q, want it with its login and password", got)
	}
	// The source's password is nowhere in the pool, and the journal
	// recorded no secret.
	if out, _ := exec.Command("grep", "-rlF", src.Password, e.Pool, filepath.Join(e.Home, "state.db")).Output(); len(out) > 0 {
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
	if err := json.Unmarshal([]byte(e.OK("project", "get", "prod", "--json").Stdout), &info); err != nil {
		t.Fatal(err)
	}
	if s := info.Source; s.Mode != "logical" || s.Port != src.Port || strings.Join(s.Databases, ",") != "bench,postgres,shop" || !s.All {
		t.Fatalf("project get shows source %+v", s)
	}

	if w := src.Writes(); w != written {
		t.Errorf("the import wrote to the source's tables: statistics %s, then %s", written, w)
	}

	// The source changes; a branch writes its own data; refresh.
	src.Psql("shop", "INSERT INTO store.items VALUES (51, 'new on the source')")
	written = src.Writes()
	e.OK("branch", "create", "prod/dev")
	e.PsqlDB("prod/dev", "shop", "INSERT INTO store.items VALUES (1000, 'only on dev')")
	before := e.Conn("prod/main")
	r := e.OK("project", "refresh", "prod")
	if !strings.Contains(r.Stderr, "Restore shop") {
		t.Errorf("refresh shows no step per database:\n%s", r.Stderr)
	}
	after := e.Conn("prod/main")
	if after.Port != before.Port || after.Password != before.Password {
		t.Fatalf("refresh moved main from port %d to %d or changed its password", before.Port, after.Port)
	}
	if got := e.PsqlDB("prod/main", "shop", "SELECT string_agg(id::text, ',' ORDER BY id) FROM store.items WHERE id > 49"); got != "50,51" {
		t.Fatalf("prod/main after refresh has items %s, want 50,51 (the source's new row)", got)
	}
	if got := e.PsqlDB("prod/dev", "shop", "SELECT string_agg(id::text, ',' ORDER BY id) FROM store.items WHERE id > 49"); got != "50,1000" {
		t.Fatalf("prod/dev after refresh has items %s, want its own 50,1000", got)
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", "prod", "--json").Stdout), &info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.OK("project", "get", "prod").Stdout, "refreshed") {
		t.Errorf("project get does not say when prod was refreshed")
	}
	if w := src.Writes(); w != written {
		t.Errorf("the refresh wrote to the source's tables: statistics %s, then %s", written, w)
	}
	e.AssertDoctorHealthy()
	// main's old volume stays while prod/dev, cloned from a snapshot of
	// it, lives, and goes with it.
	e.OK("branch", "delete", "prod/dev")
	e.AssertNoLeaks()
}

// TestLogicalImportFaults: each bad SOURCE, flag or fault gives a clear
// error and the exit code of its kind, and leaves nothing behind (no
// project, volume, server or archive), the source unwritten.
func TestLogicalImportFaults(t *testing.T) {
	t.Parallel()
	src := harness.StartSource(t)
	src.LoadProduction()
	// broken restores only where search_path is public: pg_restore's is
	// empty, so its index fails after its rows are in.
	src.Psql("postgres", "CREATE DATABASE broken")
	src.Psql("broken", `CREATE FUNCTION helper(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
		CREATE FUNCTION plus1(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT helper($1)';
		CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000); CREATE INDEX ON t (plus1(v))`)
	e := newEnv(t, "copy")
	e.Extra = append(e.Extra, "PGPASSWORD="+src.Password)
	written := src.Writes()
	create := func(from string, extra ...string) []string {
		return append([]string{"project", "create", "f", "--pool", e.Pool, "--storage", "copy", "--from", from, "--logical"}, extra...)
	}
	nothingLeft := func(what string) {
		t.Helper()
		if r := e.Run("project", "get", "f"); r.Code != 2 {
			t.Fatalf("after %s, project f exists: %s", what, r)
		}
		e.AssertNoLeaks()
		if s := harness.ServersUnder(e.Pool); len(s) > 0 {
			t.Fatalf("after %s, servers %v run on the pool", what, s)
		}
		e.AssertDoctorHealthy()
	}

	e.Refused([]string{`--database "nope"`, "has no such database", "bench, broken, postgres, shop"}, create(src.URL(), "--database", "nope")...)
	nothingLeft("--database nope")
	e.Refused([]string{"--pg-version 14 is older than the source's PostgreSQL 15", "--pg-version 15 or later"}, create(src.URL(), "--pg-version", "14")...)
	nothingLeft("--pg-version 14")

	wrong := fmt.Sprintf("postgresql://postgres:Wr0ng-pw@127.0.0.1:%d/postgres", src.Port)
	e.Refused([]string{"refused the password of role postgres", "PGPASSWORD"}, create(wrong)...)
	if r := e.Run(create(wrong)...); strings.Contains(r.Stderr+r.Stdout, "Wr0ng-pw") {
		t.Errorf("the password given shows in the output:\n%s", r)
	}
	nothingLeft("a wrong password")

	gone := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", harness.FreeTCPPort(t))
	if r := e.Run(create(gone)...); r.Code != 1 || !strings.Contains(r.Stderr, "cannot reach source") || !strings.Contains(r.Stderr, "listen_addresses") {
		t.Errorf("an unreachable source: want exit 1 naming what to check, got %s", r)
	}
	nothingLeft("an unreachable source")

	r := e.Run(create(src.URL(), "--database", "shop", "--database", "broken")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "restore database broken") || !strings.Contains(r.Stderr, "function helper(integer) does not exist") {
		t.Errorf("pg_restore failing midway: want exit 1 with its error, got %s", r)
	}
	if !strings.Contains(r.Stderr, "Restore shop") {
		t.Errorf("the failing import did not restore shop first:\n%s", r.Stderr)
	}
	nothingLeft("pg_restore failing")

	// A pool without room for the source's size, refused before anything
	// is made: a 200 MB btrfs pool, a 150 MB database.
	src.Psql("postgres", "CREATE DATABASE big")
	src.Psql("big", "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 500000) g")
	small := newEnvSized(t, "btrfs", 200<<20)
	small.Extra = e.Extra
	sr := small.Run("project", "create", "f", "--pool", small.Pool, "--from", src.URL(), "--logical", "--database", "big")
	if sr.Code != 1 || !strings.Contains(sr.Stderr, "no space left on pool") || !strings.Contains(sr.Stderr, "pick a roomier --pool") {
		t.Errorf("a pool without room: want exit 1 saying so before anything, got %s", sr)
	}
	if strings.Contains(sr.Stderr, "Create volume") {
		t.Errorf("a pool without room: a volume was made before the refusal:\n%s", sr.Stderr)
	}
	small.AssertNoLeaks()

	if w := src.Writes(); w != written {
		t.Errorf("the faults wrote to the source's tables: statistics %s, then %s", written, w)
	}
	// A source role that is not a superuser reads the roles without their
	// passwords, and says so; the objects keep their owners.
	src.Psql("postgres", "CREATE ROLE reader LOGIN PASSWORD 'Reader-pw-1' IN ROLE pg_read_all_data")
	reader := fmt.Sprintf("postgresql://reader:Reader-pw-1@127.0.0.1:%d/postgres", src.Port)
	rr := e.OK("project", "create", "r", "--pool", e.Pool, "--storage", "copy", "--from", reader, "--logical", "--database", "shop")
	if !strings.Contains(rr.Stderr, "passwords not copied (reader is not a superuser") {
		t.Errorf("an import by a role that is not a superuser does not say the passwords were skipped:\n%s", rr.Stderr)
	}
	if got := e.PsqlDB("r/main", "shop", "SELECT (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'shopper'), tableowner, count(*) FROM pg_tables, store.items WHERE tablename = 'items' GROUP BY 1, 2"); got != "t|shopper|50" {
		t.Errorf("r/main's shop: %q, want shopper without a password owning 50 items", got)
	}
	e.OK("project", "delete", "r")

	// An empty project has no source to refresh from.
	e.Create("empty")
	e.Refused([]string{"project empty was made empty, not imported"}, "project", "refresh", "empty")
}
