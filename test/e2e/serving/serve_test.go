package serving

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/velohq/velo/test/e2e/harness"
)

// startServe starts `velo serve` on a free loopback port, waits until it
// accepts, and stops it when the test ends; it returns the port.
func (e *env) startServe() int {
	e.T.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.T.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(harness.VeloBin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "routing on") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		e.T.Fatal("velo serve did not say it was routing within 30s")
	}
	return port
}

// psqlVia runs SQL with the real psql against a connection string.
func psqlVia(conninfo, password, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", conninfo, "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestServeRoutes: with velo serve running, one port reaches every
// branch, named by the database name, with psql and pgx; each client logs
// in with its branch's own password (SCRAM through the relay); the branch's
// server gets the database the client meant; a branch made after the
// daemon started is routed at once; refusals reach the client as errors
// and the daemon goes on serving.
func TestServeRoutes(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.Create("demo")
			e.Psql("demo/main", "CREATE TABLE t(v text); INSERT INTO t VALUES ('main')")
			e.OK("branch", "create", "demo/dev")
			e.Psql("demo/dev", "UPDATE t SET v = 'dev'")
			e.Psql("demo/dev", "CREATE DATABASE app")
			port := e.startServe()
			main, dev := e.Conn("demo/main"), e.Conn("demo/dev")

			// psql, a libpq URL with the route unescaped, and key=value.
			url := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/demo/dev", port)
			if out, err := psqlVia(url, dev.Password, "SELECT v, current_database() FROM t"); err != nil || out != "dev|postgres" {
				t.Errorf("psql %s: %q, %v", url, out, err)
			}
			kv := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=demo/main", port)
			if out, err := psqlVia(kv, main.Password, "SELECT v FROM t"); err != nil || out != "main" {
				t.Errorf("psql %s: %q, %v", kv, out, err)
			}
			// PROJECT/BRANCH/DATABASE reaches that database; %2F works too.
			appURL := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/demo%%2Fdev%%2Fapp", port)
			if out, err := psqlVia(appURL, dev.Password, "SELECT current_database()"); err != nil || out != "app" {
				t.Errorf("psql %s: %q, %v", appURL, out, err)
			}

			// pgx (sslmode prefer: TLS with velo serve's own certificate, unverified).
			ctx := context.Background()
			pc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/demo/dev", dev.Password, port))
			if err != nil {
				t.Fatalf("pgx through the router: %v", err)
			}
			var v string
			if err := pc.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "dev" {
				t.Errorf("pgx: %q, %v", v, err)
			}
			pc.Close(ctx)

			// The branch's own server checks the password: main's does not
			// open dev.
			_, err = pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/demo/dev", main.Password+"x", port))
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "28P01" {
				t.Errorf("wrong password: want SQLSTATE 28P01 from the branch's server, got %v", err)
			}

			// Refusals, each a clear error.
			for db, want := range map[string]string{
				"postgres":  "dbname=PROJECT/BRANCH",
				"demo/nope": "demo/nope",
				"nope/main": "nope",
				"Demo/dev":  "not allowed",
			} {
				out, err := psqlVia(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s", port, db), dev.Password, "SELECT 1")
				if err == nil || !strings.Contains(out, want) {
					t.Errorf("dbname=%s: want an error naming %q, got %v: %s", db, want, err, out)
				}
			}

			// A branch made now is routed at once; a stopped one says how
			// to start it.
			e.OK("branch", "create", "demo/late")
			late := e.Conn("demo/late")
			if out, err := psqlVia(fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/demo/late", port), late.Password, "SELECT v FROM t"); err != nil || out != "main" {
				t.Errorf("branch created after serve started: %q, %v", out, err)
			}
			e.OK("branch", "stop", "demo/late")
			if out, err := psqlVia(fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/demo/late", port), late.Password, "SELECT 1"); err == nil || !strings.Contains(out, "velo branch start demo/late") {
				t.Errorf("stopped branch: want the command that starts it, got %v: %s", err, out)
			}

			// Garbage is answered with an error and dropped; the daemon
			// serves the next client.
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			c.Close()
			if n == 0 || buf[0] != 'E' || !strings.Contains(string(buf[:n]), "invalid startup packet") {
				t.Errorf("garbage: want an ErrorResponse, got %q", buf[:n])
			}
			if out, err := psqlVia(url, dev.Password, "SELECT v FROM t"); err != nil || out != "dev" {
				t.Errorf("after garbage: %q, %v", out, err)
			}
		})
	}
}
