package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
)

// Passwords of the source's roles. Velo never puts any on a command line.
const (
	SourceSuperPassword = "prod-super-s3cret-9b1f"
	SourceReplPassword  = "prod-repl-s3cret-4c7e"
)

// source is a "production" Postgres 15 on loopback: a superuser, a
// replication role repl (password, pg_hba line), a role norepl without
// REPLICATION, a role repl2 with REPLICATION but no pg_hba line for
// replication, a pgbench database and a sentinel table nobody writes.
type ProdSource struct {
	t       testing.TB
	Dir     string
	Bin     string // the source's initdb and pg_ctl
	Port    int
	Stopped bool
	bench   *exec.Cmd
	benchMu sync.Mutex
}

// newProdSource initdbs, starts and loads a PostgreSQL 15 source of
// pgbench scale.
func NewProdSource(t testing.TB, scale int) *ProdSource {
	t.Helper()
	return NewProdSourceOf(t, PG15, scale)
}

// newProdSourceOf is newProdSource with the server of the install in bin.
func NewProdSourceOf(t testing.TB, bin string, scale int) *ProdSource {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat(filepath.Join(PG15, "pg_basebackup")); err != nil {
		testenv.Skip(t, "postgresql-15", "Debian's postgresql-15 is not installed (scripts/install-deps.sh installs it)")
	}
	s := &ProdSource{t: t, Bin: bin, Dir: TmpDir(t, "velo-source-")}
	s.Port = FreeSourcePort(t)
	pw := filepath.Join(s.Dir, "pw")
	os.WriteFile(pw, []byte(SourceSuperPassword+"\n"), 0o600)
	data := filepath.Join(s.Dir, "data")
	os.Chown(s.Dir, PgUID(t), PgUID(t))
	os.Chown(pw, PgUID(t), PgUID(t))
	s.AsPostgres(bin+"/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw, "-E", "UTF8", "--locale=C")
	os.Remove(pw)
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 10\n", s.Port, s.Dir)
	AppendFile(t, filepath.Join(data, "postgresql.conf"), conf)
	hba := "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication repl 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(data, "pg_hba.conf"), PgUID(t), PgUID(t))
	s.Start()
	t.Cleanup(func() {
		s.StopBench()
		s.AsPostgresErr(bin+"/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
	})
	s.SQL(fmt.Sprintf(`CREATE ROLE repl LOGIN REPLICATION PASSWORD '%s';
		CREATE ROLE norepl LOGIN PASSWORD '%s';
		CREATE ROLE repl2 LOGIN REPLICATION PASSWORD '%s';
		CREATE TABLE sentinel (id int PRIMARY KEY, v text);
		INSERT INTO sentinel SELECT g, md5(g::text) FROM generate_series(1, 100) g;
		CREATE TABLE marks (name text PRIMARY KEY, at timestamptz DEFAULT now());`, SourceReplPassword, SourceReplPassword, SourceReplPassword))
	s.Tool(PG15+"/pgbench", "-i", "-q", "-s", fmt.Sprint(scale), "postgres")
	return s
}

// FreeSourcePort is a free port below Velo's range (20000-32000), so that
// a branch never takes the source's, reserved for this process (see
// testenv.ReservePort: the e2e packages run at once).
func FreeSourcePort(t testing.TB) int {
	for p := 15000 + os.Getpid()%3000; p < 19999; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			if testenv.ReservePort(p) {
				return p
			}
		}
	}
	t.Fatal("no free port for the source")
	return 0
}

func PgUID(t testing.TB) int {
	out, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		t.Fatal("no postgres user")
	}
	var uid int
	fmt.Sscan(string(out), &uid)
	return uid
}

func AppendFile(t testing.TB, path, text string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(text)
}

func (s *ProdSource) AsPostgres(args ...string) string {
	s.t.Helper()
	out, err := s.AsPostgresErr(args...)
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *ProdSource) AsPostgresErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *ProdSource) Data() string { return filepath.Join(s.Dir, "data") }

func (s *ProdSource) Start() {
	s.AsPostgres(s.Bin+"/pg_ctl", "-D", s.Data(), "-l", filepath.Join(s.Dir, "log"), "-w", "start")
	s.Stopped = false
}

// restart stops the source (fast) and starts it again.
func (s *ProdSource) Restart() {
	s.AsPostgres(s.Bin+"/pg_ctl", "-D", s.Data(), "-m", "fast", "-w", "stop")
	time.Sleep(500 * time.Millisecond)
	s.Start()
}

// tool runs a client tool against the source as its superuser; the
// password goes in the environment, as a user would do.
func (s *ProdSource) Tool(name string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", "postgres"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+SourceSuperPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sql runs SQL on the source's postgres database; unaligned output.
func (s *ProdSource) SQL(q string) string {
	s.t.Helper()
	return strings.TrimSpace(s.Tool("psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", "postgres", "-c", q))
}

// psqlAt runs SQL as the source's superuser on another server holding a
// copy of it (main, which keeps the source's roles and passwords).
func PsqlProd(port int, q string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "-d", "postgres", "-c", q)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+SourceSuperPassword, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// benchWrites keeps pgbench writing to the source until the test ends.
func (s *ProdSource) BenchWrites() {
	cmd := exec.Command(PG15+"/pgbench", "-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", "postgres", "-n", "-c", "2", "-R", "40", "-T", "1800", "postgres")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+SourceSuperPassword)
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.benchMu.Lock()
	s.bench = cmd
	s.benchMu.Unlock()
	go cmd.Wait() // a restart of the source ends it; benchWrites starts another
}

func (s *ProdSource) StopBench() {
	s.benchMu.Lock()
	defer s.benchMu.Unlock()
	if s.bench != nil && s.bench.Process != nil {
		s.bench.Process.Kill()
	}
	s.bench = nil
}

// fingerprint is what Velo must never change on the source: roles,
// databases, relations, replication slots, settings changed from their
// defaults, and the statistics of a table nobody writes.
func (s *ProdSource) Fingerprint() string {
	s.t.Helper()
	return s.SQL(`SELECT
		(SELECT string_agg(rolname || ':' || rolreplication || rolsuper, ',' ORDER BY rolname) FROM pg_roles),
		(SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database),
		(SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
		(SELECT count(*) FROM pg_replication_slots),
		(SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings WHERE source NOT IN ('default', 'override', 'client', 'session')),
		(SELECT n_tup_ins || '/' || n_tup_upd || '/' || n_tup_del || '/' || seq_scan FROM pg_stat_user_tables WHERE relname = 'sentinel')`)
}

// pgbenchInvariant checks pgbench's invariant on the server answering q:
// the sums of the accounts', branches' and tellers' balances and of the
// history's deltas agree.
func PgbenchInvariant(t testing.TB, where string, q func(string) string) {
	t.Helper()
	got := q(`SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches),
		(SELECT sum(tbalance) FROM pgbench_tellers), (SELECT COALESCE(sum(delta), 0) FROM pgbench_history)`)
	f := strings.Split(got, "|")
	if len(f) != 4 || f[0] != f[1] || f[1] != f[2] || f[2] != f[3] {
		t.Fatalf("%s: pgbench's sums disagree (accounts|branches|tellers|history): %s", where, got)
	}
	t.Logf("%s: pgbench sums agree: %s", where, got)
}
