package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestLockedDown checks what a server velo runs lets in: TLS with a
// certificate from the project's CA (psql's sslmode=require, verify-ca and
// verify-full, on main and on branches made by create, reset and PITR),
// non-loopback clients over TLS only, private files, and a password that
// shows up nowhere but in `velo branch password`.
func TestLockedDown(t *testing.T) {
	// btrfs: clones are atomic snapshots, the quickest to make under load.
	e := newEnv(t, "btrfs")
	began := time.Now()
	phase := func(name string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), name) }
	runAs, err := pg.LookupRunAs()
	if err != nil || runAs == nil {
		t.Fatalf("the postgres user: %v", err)
	}

	// Bad --listen values are refused with the rule, and nothing is made.
	for _, c := range []struct{ listen, want string }{
		{"10.0.0.300", "not an IP address"},
		{"eth0", "not an IP address"},
		{"127.0.0.2,", "empty item"},
		{"*,127.0.0.2", "must stand alone"},
		{"203.0.113.77", "no network interface of this host has that address"},
	} {
		e.Refused([]string{"--listen", c.want}, "project", "create", "bad", "--pool", e.Pool, "--listen", c.listen)
	}
	if _, err := os.Stat(filepath.Join(e.Home, "projects", "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused project create left %s (%v)", filepath.Join(e.Home, "projects", "bad"), err)
	}

	// Every process's command line, watched while velo works: the password
	// must never be in one, nor in a server's environment.
	procs := watchProcesses(t)
	var outputs []string
	ok := func(args ...string) harness.Result {
		t.Helper()
		r := e.OK(args...)
		phase("velo " + strings.Join(args, " "))
		outputs = append(outputs, "velo "+strings.Join(args, " ")+"\n"+r.Stdout+r.Stderr)
		return r
	}

	phase("refusals checked")
	ca := filepath.Join(e.Home, "projects", "tls", "ca.crt")
	r := ok("project", "create", "tls", "--pool", e.Pool, "--listen", "127.0.0.2")
	if !strings.Contains(r.Stdout, ca) {
		t.Errorf("project create does not show the CA certificate %s:\n%s", ca, r)
	}
	password := e.Conn("tls/main").Password
	if got := e.Psql("tls/main", "SHOW listen_addresses"); got != "127.0.0.1,127.0.0.2" {
		t.Errorf("listen_addresses = %q, want 127.0.0.1,127.0.0.2", got)
	}
	// Every statement goes to the server log, which is then searched for
	// the password; branches inherit the setting with the data.
	e.Psql("tls/main", "ALTER SYSTEM SET log_statement = 'all'")
	e.Psql("tls/main", "ALTER SYSTEM SET log_connections = on")
	e.Psql("tls/main", "SELECT pg_reload_conf()")
	e.Psql("tls/main", "CREATE TABLE t (v text); INSERT INTO t VALUES ('main')")

	ok("branch", "create", "tls/dev")
	e.Psql("tls/dev", "INSERT INTO t VALUES ('dev')")
	e.Psql("tls/main", "INSERT INTO t VALUES ('main2')")
	at, err := time.Parse("2006-01-02 15:04:05.999999-07", e.Psql("tls/main", "SELECT clock_timestamp()"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	e.Psql("tls/main", "INSERT INTO t VALUES ('after')")
	ok("branch", "create", "tls/pitr", "--pitr", at.Add(100*time.Millisecond).UTC().Format(time.RFC3339Nano))
	ok("branch", "create", "tls/reset")
	e.Psql("tls/reset", "INSERT INTO t VALUES ('gone after reset')")
	ok("branch", "reset", "tls/reset")

	phase("branches made")
	want := map[string]string{"tls/main": "after,main,main2", "tls/dev": "dev,main", "tls/pitr": "main,main2", "tls/reset": "after,main,main2"}
	other := otherCA(t)
	for ref, rows := range want {
		port := e.Conn(ref).Port
		for _, conninfo := range []string{
			"host=localhost sslmode=require",
			"host=127.0.0.1 sslmode=verify-ca sslrootcert=" + ca,
			"host=localhost sslmode=verify-full sslrootcert=" + ca,
			"host=127.0.0.2 sslmode=verify-full sslrootcert=" + ca,
		} {
			out, err := psqlTLS(conninfo, port, password, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid(); SELECT string_agg(v, ',' ORDER BY v) FROM t")
			if err != nil {
				t.Errorf("%s with %s: %v\n%s", ref, conninfo, err, out)
			} else if out != "t\n"+rows {
				t.Errorf("%s with %s: %q, want TLS and rows %s", ref, conninfo, out, rows)
			}
		}
		// A client trusting another CA refuses the server.
		if out, err := psqlTLS("host=localhost sslmode=verify-full sslrootcert="+other, port, password, "SELECT 1"); err == nil || !strings.Contains(out, "certificate verify failed") {
			t.Errorf("%s verified with another CA: %v\n%s", ref, err, out)
		}
		// Loopback needs no TLS (velo's own connections use it).
		if out, err := psqlTLS("host=127.0.0.1 sslmode=disable", port, password, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); err != nil || out != "f" {
			t.Errorf("%s over loopback without TLS: %v\n%s", ref, err, out)
		}
		// From another address than loopback: TLS or nothing. Linux
		// routes 127.0.0.0/8 to lo, so a client bound to 127.0.0.2 is seen
		// by the server as a host other than 127.0.0.1.
		if err := connectFrom127002(port, password, ""); err == nil {
			t.Errorf("%s: a connection without TLS from 127.0.0.2 was let in", ref)
		} else if pg.SQLState(err) != "28000" || !strings.Contains(err.Error(), `no pg_hba.conf entry for host "127.0.0.2"`) {
			t.Errorf("%s: a connection without TLS from 127.0.0.2 was refused with %v, want pg_hba.conf's refusal (28000)", ref, err)
		}
		if err := connectFrom127002(port, password, ca); err != nil {
			t.Errorf("%s: a TLS connection from 127.0.0.2: %v", ref, err)
		}
		if n := e.Psql(ref, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method <> 'scram-sha-256' OR (type = 'host' AND address NOT IN ('127.0.0.1', '::1'))"); n != "0" {
			t.Errorf("%s: %s pg_hba.conf rules are not scram-sha-256, or admit other addresses than loopback without TLS", ref, n)
		}
	}

	phase("connections checked")
	// The CA is in the JSON of branch get, status and project get.
	var bi struct {
		CACert string `json:"ca_cert"`
		Volume string `json:"volume"`
	}
	if err := json.Unmarshal([]byte(ok("branch", "get", "tls/dev", "--json").Stdout), &bi); err != nil || bi.CACert != ca {
		t.Errorf("branch get --json ca_cert = %q (%v), want %s", bi.CACert, err, ca)
	}
	var st struct {
		Projects []struct {
			CACert     string `json:"ca_cert"`
			Listen     string `json:"listen_addresses"`
			BranchList []struct {
				CACert string `json:"ca_cert"`
			} `json:"branch_list"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(ok("status", "--json").Stdout), &st); err != nil || len(st.Projects) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	if p := st.Projects[0]; p.CACert != ca || p.Listen != "127.0.0.1,127.0.0.2" || len(p.BranchList) != 4 || p.BranchList[0].CACert != ca {
		t.Errorf("status --json: project ca_cert %q, listen_addresses %q, branches %+v", p.CACert, p.Listen, p.BranchList)
	}

	// Files: private to their owner.
	d, err := drivers.Open(context.Background(), e.Storage, e.Pool)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := func(ref string) string {
		t.Helper()
		var b struct{ Volume string }
		json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b)
		vol, err := d.Path(context.Background(), b.Volume)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(vol, "pgdata")
	}
	if fi, err := os.Stat(e.Home); err != nil || fi.Mode().Perm()&0o066 != 0 {
		t.Errorf("VELO_HOME %s: mode %v (%v), others may read or write it", e.Home, fi.Mode().Perm(), err)
	}
	checkMode(t, filepath.Join(e.Home, "state.db"), 0o600, 0)
	checkMode(t, filepath.Join(e.Home, "projects"), 0o700, 0)
	checkMode(t, filepath.Join(e.Home, "projects", "tls"), 0o700, 0)
	checkMode(t, filepath.Join(e.Home, "projects", "tls", "ca.key"), 0o600, 0)
	for _, ref := range []string{"tls/main", "tls/dev", "tls/pitr", "tls/reset"} {
		dir := dataDir(ref)
		checkMode(t, filepath.Join(dir, "server.key"), 0o600, runAs.UID)
		checkMode(t, filepath.Join(dir, "server.crt"), 0o600, runAs.UID)
		checkMode(t, filepath.Join(dir, "pg_hba.conf"), 0o600, runAs.UID)
		if _, err := os.Stat(filepath.Join(dir, "ca.key")); err == nil {
			t.Errorf("the CA key is in %s's data directory", ref)
		}
	}
	var wis []struct{ Directory string }
	if err := json.Unmarshal([]byte(ok("wal", "info", "tls/main", "--json").Stdout), &wis); err != nil || len(wis) != 1 || wis[0].Directory == "" {
		t.Fatalf("wal info --json: %v %+v", err, wis)
	}
	wi := wis[0]
	checkMode(t, wi.Directory, 0o700, runAs.UID)
	segs, _ := os.ReadDir(wi.Directory)
	if len(segs) == 0 {
		t.Errorf("no archived WAL in %s to check", wi.Directory)
	}
	for _, s := range segs {
		checkMode(t, filepath.Join(wi.Directory, s.Name()), 0o600, runAs.UID)
	}
	if fi, err := os.Stat(filepath.Join(e.Home, "logs")); err != nil || fi.Mode().Perm()&0o066 != 0 {
		t.Errorf("logs directory: mode %v (%v), others may list or write it", fi.Mode().Perm(), err)
	}
	logs, _ := filepath.Glob(filepath.Join(e.Home, "logs", "*.log"))
	if len(logs) < 4 {
		t.Errorf("server logs: %v, want one per branch", logs)
	}
	for _, l := range logs {
		checkMode(t, l, 0o600, runAs.UID)
	}

	phase("files checked")
	// The password: in `velo branch password` only.
	if !strings.Contains(e.OK("branch", "password", "tls/main").Stdout, password) {
		t.Fatal("velo branch password does not show the password")
	}
	psOut, err := exec.Command("ps", "axww", "-o", "args").CombinedOutput()
	if err != nil {
		t.Fatalf("ps: %v\n%s", err, psOut)
	}
	if strings.Contains(string(psOut), password) {
		t.Error("the password is in ps output")
	}
	seen := procs.stop()
	for _, line := range seen {
		if strings.Contains(line, password) {
			what, _, _ := strings.Cut(line, ": ")
			t.Errorf("the password is in a process's arguments or a server's environment: %.200s", what)
		}
	}
	if !slices.ContainsFunc(seen, func(l string) bool { return strings.HasPrefix(l, "the environment of ") }) {
		t.Error("the process watch never saw a server, so it proved nothing")
	}
	for _, o := range outputs {
		if strings.Contains(o, password) {
			t.Errorf("the password is in the output of %s", o)
		}
	}
	filepath.WalkDir(e.Home, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		// The state database keeps the password, and so do its backups
		// and the secrets kept for a rebuild: each 0600.
		rel, _ := filepath.Rel(e.Home, path)
		if strings.HasPrefix(de.Name(), "state.db") || strings.HasPrefix(rel, "backups/") || strings.HasPrefix(rel, "secrets/") {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s holds the password and is %v, not 0600", path, fi.Mode().Perm())
			}
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), password) {
			t.Errorf("the password is in %s", path)
		}
		return nil
	})
	if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "statement:") {
		t.Errorf("server log %s holds no statements, so searching it proved nothing", logs[0])
	}

	phase("password searched")
	// A project from before TLS: no CA, no certificates, the old
	// pg_hba.conf. Its branches start, and get what they lack.
	ok("branch", "stop", "tls/dev")
	ok("branch", "stop", "tls/main")
	if err := os.RemoveAll(filepath.Join(e.Home, "projects")); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"tls/main", "tls/dev"} {
		dir := dataDir(ref)
		os.Remove(filepath.Join(dir, "server.key"))
		os.Remove(filepath.Join(dir, "server.crt"))
		os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0o600)
		conf := filepath.Join(dir, "velo.conf")
		b, _ := os.ReadFile(conf)
		os.WriteFile(conf, []byte(strings.NewReplacer("ssl = on", "", "ssl_", "#ssl_").Replace(string(b))), 0o600)
	}
	if _, err := os.Stat(ca); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CA still there: %v", err)
	}
	if r := e.OK("branch", "get", "tls/main", "--json"); strings.Contains(r.Stdout, "ca_cert") {
		t.Errorf("branch get shows a CA certificate that does not exist:\n%s", r.Stdout)
	}
	ok("branch", "start", "tls/main")
	ok("branch", "start", "tls/dev")
	phase("restarted without TLS files")
	for ref, rows := range map[string]string{"tls/main": want["tls/main"], "tls/dev": want["tls/dev"]} {
		port := e.Conn(ref).Port
		out, err := psqlTLS("host=localhost sslmode=verify-full sslrootcert="+ca, port, password, "SELECT string_agg(v, ',' ORDER BY v) FROM t")
		if err != nil || out != rows {
			t.Errorf("%s after its start with a new CA: %v\n%s", ref, err, out)
		}
		if err := connectFrom127002(port, password, ""); err == nil {
			t.Errorf("%s: pg_hba.conf was not brought back: a connection without TLS from 127.0.0.2 was let in", ref)
		}
	}
}

// psqlTLS runs sql with the real psql on 127.0.0.1's port with conninfo
// (host, sslmode...), the password in the environment, not the arguments.
func psqlTLS(conninfo string, port int, password, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At",
		fmt.Sprintf("%s port=%d user=postgres dbname=postgres connect_timeout=5", conninfo, port), "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// connectFrom127002 connects with pgx from the source address 127.0.0.2 to
// 127.0.0.2:port, over TLS verified with the CA file ca, or without TLS
// when ca is "".
func connectFrom127002(port int, password, ca string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.2 port=%d user=postgres dbname=postgres sslmode=disable", port))
	if err != nil {
		return err
	}
	cfg.Password = password
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	cfg.DialFunc = dialer.DialContext
	if ca != "" {
		pemData, err := os.ReadFile(ca)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemData) {
			return fmt.Errorf("%s holds no certificate", ca)
		}
		cfg.TLSConfig = &tls.Config{RootCAs: roots, ServerName: "127.0.0.2"}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var ssl bool
	var client string
	if err := conn.QueryRow(ctx, "SELECT ssl, host(inet_client_addr()) FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &client); err != nil {
		return err
	}
	if ssl != (ca != "") || client != "127.0.0.2" {
		return fmt.Errorf("connected with ssl=%v from %s", ssl, client)
	}
	return nil
}

// otherCA writes a CA that no velo server knows, for clients that must
// refuse velo's servers.
func otherCA(t *testing.T) string {
	t.Helper()
	ca, err := pg.NewCA("stranger")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "other")
	if err := pg.WriteCA(dir, ca); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, pg.CACertFile)
}

func checkMode(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	if owner := int(fi.Sys().(*syscall.Stat_t).Uid); owner != uid {
		t.Errorf("%s: owned by uid %d, want %d", path, owner, uid)
	}
}

// processWatch reads every process's command line (and a server's
// environment) every few milliseconds, as ps would, until stopped.
type processWatch struct {
	mu   sync.Mutex
	seen map[string]bool
	done chan struct{}
	wg   sync.WaitGroup
}

func watchProcesses(t *testing.T) *processWatch {
	w := &processWatch{seen: map[string]bool{}, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			dirs, _ := filepath.Glob("/proc/[0-9]*")
			for _, d := range dirs {
				b, err := os.ReadFile(filepath.Join(d, "cmdline"))
				if err != nil || len(b) == 0 {
					continue
				}
				w.add(strings.ReplaceAll(string(b), "\x00", " "))
				// A server's (or initdb's) environment too; not psql's,
				// which holds PGPASSWORD, put there by this test.
				if exe, _ := os.Readlink(filepath.Join(d, "exe")); filepath.Base(exe) == "postgres" || filepath.Base(exe) == "initdb" {
					if env, err := os.ReadFile(filepath.Join(d, "environ")); err == nil {
						w.add("the environment of " + exe + ": " + strings.ReplaceAll(string(env), "\x00", " "))
					}
				}
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *processWatch) add(line string) {
	w.mu.Lock()
	w.seen[line] = true
	w.mu.Unlock()
}

// stop ends the watch and returns every line seen.
func (w *processWatch) stop() []string {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.seen))
	for l := range w.seen {
		out = append(out, l)
	}
	return out
}
