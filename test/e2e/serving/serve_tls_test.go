package serving

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pool is a certificate pool of the CA certificate in file.
func pool(t *testing.T, file string) *x509.CertPool {
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

// TestServeTLS: velo serve routes by the TLS server name
// BRANCH.PROJECT.localhost with a certificate from the project's CA, so
// that psql and pgx with sslmode=verify-full reach the branch with the
// database they named; the URL branch password prints works as it is;
// a client that sends no server name gets velo serve's own CA's
// certificate and is routed by the database name; another project's CA
// does not verify; PostgreSQL 17's direct TLS handshake is accepted. On
// an address other than loopback, clients without TLS are refused with
// the rule, and TLS clients are served.
func TestServeTLS(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.Create("demo")
			e.Create("other")
			e.Psql("demo/main", "CREATE TABLE t(v text); INSERT INTO t VALUES ('main')")
			e.OK("branch", "create", "demo/dev")
			e.Psql("demo/dev", "UPDATE t SET v = 'dev'")
			e.Psql("demo/dev", "CREATE DATABASE app")
			s := e.runServe(0)
			port := s.port
			// Read after velo serve started: the URLs name its address.
			dev, other := e.Conn("demo/dev"), e.Conn("other/main")

			// libpq sends the host name as SNI; hostaddr spares the resolver.
			sni := func(host, dbname, ca string) string {
				return fmt.Sprintf("host=%s hostaddr=127.0.0.1 port=%d user=postgres dbname=%s sslmode=verify-full sslrootcert=%s", host, port, dbname, ca)
			}
			if out, err := psqlVia(sni("dev.demo.localhost", "postgres", dev.CACert), dev.Password, "SELECT v, current_database() FROM t"); err != nil || out != "dev|postgres" {
				t.Errorf("psql by server name: %q, %v", out, err)
			}
			if out, err := psqlVia(sni("dev.demo.localhost", "app", dev.CACert), dev.Password, "SELECT current_database()"); err != nil || out != "app" {
				t.Errorf("psql by server name, database app: %q, %v", out, err)
			}
			if out, err := psqlVia(sni("main.demo.localhost", "postgres", dev.CACert), e.Conn("demo/main").Password, "SELECT v FROM t"); err != nil || out != "main" {
				t.Errorf("psql to main by server name: %q, %v", out, err)
			}
			// Another project's CA does not verify demo's router certificate.
			if out, err := psqlVia(sni("dev.demo.localhost", "postgres", other.CACert), dev.Password, "SELECT 1"); err == nil || !strings.Contains(out, "certificate verify failed") {
				t.Errorf("psql with other's CA: want certificate verify failed, got %v: %s", err, out)
			}
			// The URL branch password prints, as it is.
			if !strings.Contains(dev.RouterTLSURL, "dev.demo.localhost") || !strings.Contains(dev.RouterTLSURL, "sslmode=verify-full") {
				t.Errorf("router_tls_url %q", dev.RouterTLSURL)
			}
			if out, err := psqlVia(dev.RouterTLSURL, "", "SELECT v FROM t"); err != nil || out != "dev" {
				t.Errorf("psql %s: %q, %v", dev.RouterTLSURL, out, err)
			}
			masked := e.OK("branch", "get", "demo/dev").Stdout
			if strings.Contains(masked, dev.Password) || !strings.Contains(masked, "dev.demo.localhost") {
				t.Errorf("branch get shows the password or no TLS route:\n%s", masked)
			}

			// No server name (an IP host): velo serve's own CA, routed by
			// the database name.
			serveCA := filepath.Join(e.Home, "api", "ca", "ca.crt")
			noSNI := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=demo/dev/app sslmode=verify-full sslrootcert=%s", port, serveCA)
			if out, err := psqlVia(noSNI, dev.Password, "SELECT current_database()"); err != nil || out != "app" {
				t.Errorf("psql without a server name: %q, %v", out, err)
			}
			// The server name and the database name disagree: refused.
			if out, err := psqlVia(sni("dev.demo.localhost", "demo/main", dev.CACert), dev.Password, "SELECT 1"); err == nil || !strings.Contains(out, "give one of them") {
				t.Errorf("server name and database name disagreeing: want the rule, got %v: %s", err, out)
			}
			// A server name of no branch: TLS works, the route is refused by name.
			if out, err := psqlVia(sni("nope.demo.localhost", "postgres", dev.CACert), dev.Password, "SELECT 1"); err == nil || !strings.Contains(out, "demo/nope") {
				t.Errorf("server name of no branch: want it named, got %v: %s", err, out)
			}

			// pgx, with the negotiation PostgreSQL 17 clients may use.
			ctx := context.Background()
			for _, negotiation := range []string{"postgres", "direct"} {
				cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslnegotiation=%s&sslmode=require", dev.Password, port, negotiation))
				if err != nil {
					t.Fatal(err)
				}
				// pgx's own TLS configuration offers ALPN postgresql for a
				// direct handshake; this one must too.
				cfg.TLSConfig = &tls.Config{ServerName: "dev.demo.localhost", RootCAs: pool(t, dev.CACert), NextProtos: []string{"postgresql"}}
				pc, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Errorf("pgx sslnegotiation=%s: %v", negotiation, err)
					continue
				}
				var v string
				if err := pc.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "dev" {
					t.Errorf("pgx sslnegotiation=%s: %q, %v", negotiation, v, err)
				}
				if !pc.PgConn().Conn().(*tls.Conn).ConnectionState().HandshakeComplete {
					t.Errorf("pgx sslnegotiation=%s: not TLS", negotiation)
				}
				pc.Close(ctx)
			}
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()

			// On an address other than loopback: TLS only.
			addr := nonLoopback(t)
			r := e.runServeOn(addr, 0)
			plain := fmt.Sprintf("host=%s port=%d user=postgres dbname=demo/dev sslmode=disable", addr, r.port)
			if out, err := psqlVia(plain, dev.Password, "SELECT 1"); err == nil || !strings.Contains(out, "over TLS only") {
				t.Errorf("plain client on %s: want the TLS rule, got %v: %s", addr, err, out)
			}
			required := fmt.Sprintf("host=%s port=%d user=postgres dbname=demo/dev sslmode=require", addr, r.port)
			if out, err := psqlVia(required, dev.Password, "SELECT v FROM t"); err != nil || out != "dev" {
				t.Errorf("sslmode=require on %s: %q, %v", addr, out, err)
			}
			verified := fmt.Sprintf("host=dev.demo.localhost hostaddr=%s port=%d user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s", addr, r.port, dev.CACert)
			if out, err := psqlVia(verified, dev.Password, "SELECT v FROM t"); err != nil || out != "dev" {
				t.Errorf("verify-full on %s: %q, %v", addr, out, err)
			}
			// The wrong password still goes to the branch's server.
			cfg, _ := pgx.ParseConfig(fmt.Sprintf("postgres://postgres:wrong@%s:%d/demo/dev?sslmode=require", addr, r.port))
			_, err := pgx.ConnectConfig(ctx, cfg)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "28P01" {
				t.Errorf("wrong password over TLS: want 28P01 from the branch's server, got %v", err)
			}
		})
	}
}
