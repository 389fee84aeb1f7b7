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
	conn, err := connectTo(ctx, LocalHost, port, Superuser, Superuser, password, 0)
	if err != nil {
		return nil, fmt.Errorf("connect to 127.0.0.1:%d: %w", port, err)
	}
	return conn, nil
}

// ConnectSocket is Connect through the server's Unix socket in socketDir
// (which only the server's user, and root, can enter), as the superuser
// with a password.
func ConnectSocket(ctx context.Context, socketDir string, port int, password string) (*pgx.Conn, error) {
	conn, err := connectTo(ctx, socketDir, port, Superuser, Superuser, password, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", SocketPath(socketDir, port), err)
	}
	return conn, nil
}

// ConnectDatabase opens a session on database of one of velo's own
// servers, at host (an address or a socket directory) and port, as role
// with password ("" for the local socket's peer or trust rules).
func ConnectDatabase(ctx context.Context, host string, port int, role, database, password string) (*pgx.Conn, error) {
	conn, err := connectTo(ctx, host, port, role, database, password, 10*time.Second)
	if err != nil {
		where := SocketPath(host, port)
		if host == LocalHost {
			where = net.JoinHostPort(host, strconv.Itoa(port))
		}
		return nil, fmt.Errorf("connect to database %s on %s: %w", database, where, err)
	}
	return conn, nil
}

// connectTo opens a session on one of velo's own servers: host (an address
// or a socket directory), port, role, database and password are all it
// takes. The PG* environment variables of whoever runs velo (PGSSLMODE,
// PGOPTIONS, PGTARGETSESSIONATTRS...) must not change what velo connects
// to or how; timeout 0 leaves pgx's (PGCONNECT_TIMEOUT, else none).
func connectTo(ctx context.Context, host string, port int, role, database, password string, timeout time.Duration) (*pgx.Conn, error) {
	// sslmode=disable given, so that a PGSSLMODE of the caller's (say
	// verify-full with a root certificate of another server) is not read.
	cfg, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		// Only the caller's PG* environment could make it fail.
		return nil, fmt.Errorf("connection settings (check the PG* environment variables): %w", err)
	}
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.Host = host
	cfg.Port = uint16(port)
	cfg.User = role
	cfg.Database = database
	cfg.Password = password
	if timeout > 0 {
		cfg.ConnectTimeout = timeout
	}
	cfg.RuntimeParams = map[string]string{"application_name": "velo"}
	return pgx.ConnectConfig(ctx, cfg)
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
