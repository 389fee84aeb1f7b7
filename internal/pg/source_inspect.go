package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/velohq/velo/internal/errdefs"
)

// Error kinds of a source: ErrSourceRefused is the source saying no to
// what SOURCE asks (a wrong password, a role without REPLICATION, pg_hba),
// which the user must fix (exit 2); ErrSourceUnreachable is no answer at
// all (exit 1: the network or the server may be down for now).
var (
	ErrSourceRefused     = errors.New("source refused")
	ErrSourceUnreachable = errors.New("source unreachable")
)

// SourceInfo is what Velo reads from a source before importing it.
type SourceInfo struct {
	Version    string // server_version, e.g. "15.14 (Debian 15.14-0+deb12u1)"
	VersionNum int    // server_version_num
	Major      int
	// Size is the sum of the sizes of the databases the role may connect
	// to: about what a base backup copies (WAL aside).
	Size int64
	// Replication: the role may open replication connections (REPLICATION
	// or superuser).
	Replication bool
	// ClientAddr is Velo's address as the source sees it, for the pg_hba
	// line the source needs ("" over a Unix socket).
	ClientAddr string
	// InRecovery: the source is itself a standby.
	InRecovery bool
	// Superuser is the bootstrap superuser's name (OID 10): Velo's own
	// role on the copy.
	Superuser string
	// Tablespaces counts the tablespaces besides pg_default and pg_global.
	Tablespaces int
	// Settings are the source's values of the settings a hot standby must
	// match or exceed (max_connections, ...).
	Settings map[string]int
}

// StandbySettings must be at least the primary's on a hot standby, or it
// stops replaying.
var StandbySettings = []string{"max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions", "max_locks_per_transaction"}

// connConfig is how Velo itself connects to s.
func (s Source) connConfig(replication bool) (*pgconn.Config, error) {
	extra := map[string]string{"application_name": "velo"}
	if replication {
		extra["replication"] = "true"
	}
	cfg, err := pgconn.ParseConfig(s.Conninfo("", extra))
	if err != nil {
		return nil, fmt.Errorf("source %s: %v", s.Display(), redact(err, s.Password))
	}
	cfg.Password = s.Password
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	return cfg, nil
}

// ConnectSource opens an ordinary session on the source.
func ConnectSource(ctx context.Context, s Source) (*pgx.Conn, error) {
	cfg, err := s.connConfig(false)
	if err != nil {
		return nil, err
	}
	pcfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pcfg.Config = *cfg
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return nil, s.connectError(err, false, "")
	}
	return conn, nil
}

// InspectSource connects to s, reads what an import needs to know and,
// when physical, checks that a replication connection is let in. It only
// reads.
func InspectSource(ctx context.Context, s Source, physical bool) (SourceInfo, error) {
	var info SourceInfo
	conn, err := ConnectSource(ctx, s)
	if err != nil {
		return info, err
	}
	defer closeConn(ctx, conn)
	q := `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		r.rolreplication OR r.rolsuper, COALESCE(host(inet_client_addr()), ''), pg_is_in_recovery(),
		(SELECT COALESCE(sum(pg_database_size(d.datname)), 0)::bigint FROM pg_database d
		  WHERE d.datallowconn AND has_database_privilege(d.datname, 'CONNECT')),
		(SELECT rolname FROM pg_roles WHERE oid = 10),
		(SELECT count(*)::int FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))
		FROM pg_roles r WHERE r.rolname = current_user`
	if err := conn.QueryRow(ctx, q).Scan(&info.Version, &info.VersionNum, &info.Replication, &info.ClientAddr, &info.InRecovery, &info.Size, &info.Superuser, &info.Tablespaces); err != nil {
		return info, fmt.Errorf("source %s: reading its version and size: %w", s.Display(), err)
	}
	info.Major = info.VersionNum / 10000
	info.Settings = map[string]int{}
	rows, err := conn.Query(ctx, `SELECT name, setting FROM pg_settings WHERE name = ANY($1)`, StandbySettings)
	if err != nil {
		return info, fmt.Errorf("source %s: reading its settings: %w", s.Display(), err)
	}
	for rows.Next() {
		var name, v string
		if err := rows.Scan(&name, &v); err != nil {
			return info, err
		}
		if n, err := strconv.Atoi(v); err == nil {
			info.Settings[name] = n
		}
	}
	if err := rows.Err(); err != nil {
		return info, err
	}
	if !physical {
		return info, nil
	}
	if !info.Replication {
		return info, errdefs.Mark(ErrSourceRefused, fmt.Errorf("role %s on %s lacks REPLICATION, which a physical import needs; on the source run ALTER ROLE %s REPLICATION, or import with --logical", s.User, s.Display(), quoteIdent(s.User)))
	}
	return info, CheckReplication(ctx, s, info.ClientAddr)
}

// CheckReplication opens a replication connection to s and identifies
// the system, as a base backup and streaming will.
func CheckReplication(ctx context.Context, s Source, clientAddr string) error {
	cfg, err := s.connConfig(true)
	if err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return s.connectError(err, true, clientAddr)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		return fmt.Errorf("source %s: IDENTIFY_SYSTEM: %w", s.Display(), err)
	}
	return nil
}

var hbaHost = regexp.MustCompile(`from host "([^"]+)"`)

// connectError says why a connection to s failed and what fixes it.
func (s Source) connectError(err error, replication bool, clientAddr string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		msg := redact(err, s.Password)
		if errors.Is(err, context.Canceled) {
			return err
		}
		return errdefs.Mark(ErrSourceUnreachable, fmt.Errorf("cannot reach source %s: %s; check the host and port, that the server runs and listens there (listen_addresses) and that no firewall is in the way", s.Display(), msg))
	}
	switch pgErr.Code {
	case "28P01":
		return errdefs.Mark(ErrSourceRefused, fmt.Errorf("source %s refused the password of role %s; give the right one in PGPASSWORD, ~/.pgpass or the service file", s.Display(), s.User))
	case "28000":
		if strings.Contains(pgErr.Message, "pg_hba.conf") {
			addr := clientAddr
			if m := hbaHost.FindStringSubmatch(pgErr.Message); m != nil {
				addr = m[1]
			}
			db := s.Database
			if replication {
				db = "replication"
			}
			return errdefs.Mark(ErrSourceRefused, fmt.Errorf("source %s's pg_hba.conf lets no %sconnection in for role %s; add this line to it and reload (SELECT pg_reload_conf()):\n  %s", s.Display(), map[bool]string{true: "replication ", false: ""}[replication], s.User, HBALine(db, s.User, addr)))
		}
	case "42501":
		if replication {
			return errdefs.Mark(ErrSourceRefused, fmt.Errorf("role %s on %s may not replicate; on the source run ALTER ROLE %s REPLICATION, or import with --logical", s.User, s.Display(), quoteIdent(s.User)))
		}
	case "3D000":
		return errdefs.Mark(ErrSourceRefused, fmt.Errorf("source %s has no database %s; name one that exists in SOURCE (e.g. /postgres)", s.Display(), s.Database))
	case "53300":
		return errdefs.Mark(ErrSourceRefused, fmt.Errorf("source %s has no connection slot free for role %s (%s); raise max_connections or max_wal_senders there, or retry later", s.Display(), s.User, pgErr.Message))
	}
	return errdefs.Mark(ErrSourceRefused, fmt.Errorf("source %s: %s", s.Display(), redact(err, s.Password)))
}

// HBALine is the pg_hba.conf line that lets user connect to database from
// addr with a password.
func HBALine(database, user, addr string) string {
	cidr := "ADDRESS/32"
	switch {
	case addr == "":
	case strings.Contains(addr, ":"):
		cidr = addr + "/128"
	default:
		cidr = addr + "/32"
	}
	return fmt.Sprintf("host    %s    %s    %s    scram-sha-256", database, user, cidr)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// DropSlot drops the replication slot name on s if it is there (a
// project's delete, or an import undone). A walsender still using it (a
// base backup just killed) is waited for briefly.
func DropSlot(ctx context.Context, s Source, name string) error {
	conn, err := ConnectSource(ctx, s)
	if err != nil {
		return fmt.Errorf("drop replication slot %s: %w", name, err)
	}
	defer closeConn(ctx, conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var active *bool
		err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop replication slot %s on %s: %w", name, s.Display(), err)
		}
		if active == nil || !*active || time.Now().After(deadline) {
			if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err != nil {
				return fmt.Errorf("drop replication slot %s on %s: %w", name, s.Display(), err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
