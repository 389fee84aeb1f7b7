package pg_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/pg"
)

// tlsConnect connects to the cluster on host with TLS, verifying the
// server's certificate against ca and host as libpq's verify-full does.
func tlsConnect(ctx context.Context, c *cluster, host, password string, ca *pg.CA) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", host, c.spec.Port))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cfg.TLSConfig = &tls.Config{RootCAs: roots, ServerName: host}
	cfg.Password = password
	return pgx.ConnectConfig(ctx, cfg)
}

// TestServerTLS starts real servers with a certificate from a project CA
// and connects over TLS; the server must refuse a client that trusts
// another CA, and accept a password set through its SCRAM verifier.
func TestServerTLS(t *testing.T) {
	forEachInstall(t, func(t *testing.T, in pg.Install) {
		ctx := context.Background()
		c := newCluster(t, in)
		ca, err := pg.NewCA("demo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pg.EnsureServerCert(c.data, ca, pg.ServerHosts(nil), c.runAs); err != nil {
			t.Fatal(err)
		}
		if err := pg.WriteConfig(c.data, pg.Config{Port: c.spec.Port, SocketDir: c.spec.SocketDir, TLS: true}, c.runAs); err != nil {
			t.Fatal(err)
		}
		c.start(t)

		conn, err := tlsConnect(ctx, c, "localhost", c.password, ca)
		if err != nil {
			t.Fatalf("TLS connection verified against the CA: %v", err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Errorf("pg_stat_ssl.ssl = %v (%v), want true", ssl, err)
		}
		// The password set from its verifier: the server never sees it.
		newPassword, _ := pg.GeneratePassword()
		v, err := pg.ScramVerifier(newPassword)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+v+"'"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if conn, err := tlsConnect(ctx, c, "127.0.0.1", newPassword, ca); err != nil {
			t.Errorf("login with the password set by its verifier: %v", err)
		} else {
			conn.Close(ctx)
		}
		if conn, err := tlsConnect(ctx, c, "127.0.0.1", c.password, ca); err == nil {
			conn.Close(ctx)
			t.Error("the old password still logs in")
		}

		other, _ := pg.NewCA("other")
		if conn, err := tlsConnect(ctx, c, "localhost", newPassword, other); err == nil {
			conn.Close(ctx)
			t.Error("a client trusting another CA accepted the server's certificate")
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("another CA: %v, want a certificate error", err)
		}
	})
}
