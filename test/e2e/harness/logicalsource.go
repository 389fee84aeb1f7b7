package harness

import (
	"bytes"
	"context"
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
const PG15 = "/usr/lib/postgresql/15/bin"

// source is a "production" PostgreSQL 15 on loopback, with a password.
type Source struct {
	t        testing.TB
	Dir      string
	Port     int
	Password string
}

// startSource initdbs and starts a PostgreSQL 15 on 127.0.0.1 with
// scram-sha-256 authentication, stopped when the test ends.
func StartSource(t testing.TB) *Source {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, PG15+"/pg_dump")
	s := &Source{t: t, Dir: TmpDir(t, "velo-source-"), Port: FreeTCPPort(t), Password: "Pr0d-s3cret-pw"}
	pw := filepath.Join(s.Dir, "pw")
	if err := os.WriteFile(pw, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(s.Dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	AsPostgres(t, "chown", "-R", "postgres:postgres", s.Dir)
	AsPostgres(t, "runuser", "-u", "postgres", "--", PG15+"/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256",
		"--pwfile="+pw, "--locale=C.UTF-8", "-E", "UTF8")
	AsPostgres(t, "runuser", "-u", "postgres", "--", PG15+"/pg_ctl", "-D", data, "-w", "-l", filepath.Join(s.Dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.Port, s.Dir), "start")
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", PG15+"/pg_ctl", "-D", data, "-m", "immediate", "stop").Run()
	})
	return s
}

func AsPostgres(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// FreeTCPPort is a free port the kernel picks, reserved for this process
// (see testenv.ReservePort: the e2e packages run at once).
func FreeTCPPort(t testing.TB) int {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if testenv.ReservePort(p) {
			return p
		}
	}
	t.Fatal("no free port to reserve")
	return 0
}

// url is SOURCE for velo, without the password (given by PGPASSWORD).
func (s *Source) URL() string {
	return fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", s.Port)
}

// psql runs SQL on database db of the source as postgres.
func (s *Source) Psql(db, sql string) string {
	s.t.Helper()
	return PsqlAt(s.t, s.Port, s.Password, db, sql)
}

// psqlAt runs SQL with psql on 127.0.0.1:port as postgres.
func PsqlAt(t testing.TB, port int, password, db, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, PG15+"/psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "-d", db, "-c", sql)
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
func (s *Source) LoadProduction() {
	s.t.Helper()
	s.Psql("postgres", "CREATE DATABASE bench")
	cmd := exec.Command(PG15+"/pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", "postgres", "bench")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	s.Psql("postgres", "CREATE ROLE shopper LOGIN PASSWORD 'shopper-pw'")
	s.Psql("postgres", "CREATE DATABASE shop OWNER shopper")
	s.Psql("shop", `SET ROLE shopper; CREATE SCHEMA store; CREATE TABLE store.items (id int PRIMARY KEY, name text);
		INSERT INTO store.items SELECT g, 'item ' || g FROM generate_series(1, 50) g`)
}

// writes sums what the statistics say was written to the source's user
// tables (shared catalogs show in every database's statistics, so a CREATE
// DATABASE by the test would count), which a logical import must leave as
// it was.
func (s *Source) Writes() string {
	s.t.Helper()
	var out []string
	for _, db := range []string{"bench", "shop"} {
		out = append(out, s.Psql(db, "SELECT pg_stat_force_next_flush(); SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"))
	}
	// Nor may it leave a role, a slot or a setting there.
	out = append(out, s.Psql("postgres", "SELECT (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles), (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_db_role_setting)"))
	return strings.Join(out, " ")
}

// PsqlDB runs SQL on database db of a branch.
func (e *Env) PsqlDB(ref, db, sql string) string {
	e.T.Helper()
	c := e.Conn(ref)
	return PsqlAt(e.T, c.Port, c.Password, db, sql)
}
