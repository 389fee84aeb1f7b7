package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LocalHost is the address every velo server listens on.
const LocalHost = "127.0.0.1"

// SQLSTATE codes callers decide on.
const (
	// CodeCannotConnectNow: the server is starting up, shutting down or
	// recovering and refuses connections for now.
	CodeCannotConnectNow = "57P03"
)

// ConnString returns the libpq URL of the postgres database on host:port as
// the superuser: postgresql://postgres:PASSWORD@HOST:PORT/postgres.
func ConnString(host string, port int, password string) string {
	u := url.URL{
		Scheme: "postgresql",
		User:   url.UserPassword(Superuser, password),
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		Path:   "/" + Superuser,
	}
	return u.String()
}

// MaskedConnString is ConnString with the password shown as ***, for output
// that may be copied into logs, tickets or screenshots.
func MaskedConnString(host string, port int) string {
	return "postgresql://" + Superuser + ":***@" + net.JoinHostPort(host, strconv.Itoa(port)) + "/" + Superuser
}

// Connect opens a connection to the postgres database of the server on
// 127.0.0.1:port as the superuser. TLS is off: the server listens on loopback
// only.
func Connect(ctx context.Context, port int, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(ConnString(LocalHost, port, password) + "?sslmode=disable")
	if err != nil {
		// The string is built here; only a bad port could make it fail.
		return nil, fmt.Errorf("connection settings for port %d: %w", port, err)
	}
	// The PG* environment variables of whoever runs velo (PGSSLMODE,
	// PGOPTIONS, PGTARGETSESSIONATTRS...) must not change what velo
	// connects to or how.
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.Host = LocalHost
	cfg.Port = uint16(port)
	cfg.User = Superuser
	cfg.Database = Superuser
	cfg.Password = password
	cfg.RuntimeParams = map[string]string{"application_name": "velo"}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to 127.0.0.1:%d: %w", port, err)
	}
	return conn, nil
}

// ConnectSocket is Connect through the server's Unix socket in socketDir
// (which only the server's user, and root, can enter), as the superuser
// with a password.
func ConnectSocket(ctx context.Context, socketDir string, port int, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.Host = socketDir
	cfg.Port = uint16(port)
	cfg.User = Superuser
	cfg.Database = Superuser
	cfg.Password = password
	cfg.ConnectTimeout = 10 * time.Second
	cfg.RuntimeParams = map[string]string{"application_name": "velo"}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", SocketPath(socketDir, port), err)
	}
	return conn, nil
}

// closeConn ends a session politely, without waiting long on a server that
// stopped answering and whatever the state of ctx.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// IsCannotConnectNow reports whether err is the server saying it is starting
// up, shutting down or in recovery (SQLSTATE 57P03).
func IsCannotConnectNow(err error) bool {
	return SQLState(err) == CodeCannotConnectNow
}

// SQLState returns the SQLSTATE carried by err, or "" when err is not an
// error reported by a server.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Checkpoint runs CHECKPOINT on the server on 127.0.0.1:port, so that a
// snapshot taken next needs to replay only the WAL written after it.
func Checkpoint(ctx context.Context, port int, password string) error {
	conn, err := Connect(ctx, port, password)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint on port %d: %w", port, err)
	}
	return nil
}
