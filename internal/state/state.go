// Package state keeps Velo's records in one SQLite database,
// $VELO_HOME/state.db, and the lock every changing command holds.
//
// The storage and the processes are the truth; these records describe them
// and are checked against them. A command records what it is about to do
// in the operations journal before it acts, so a command killed at any
// point leaves either the old state or a journal entry that `velo doctor`
// can finish or undo.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is the state database.
type Store struct {
	db   *sql.DB
	path string
}

// Project is one Postgres cluster and its branches' home.
type Project struct {
	ID      string
	Name    string
	Driver  string // zfs, btrfs, reflink, copy
	Pool    string // zfs pool name or absolute path
	PGMajor int
	// ArchiveTimeout is archive_timeout in seconds: how stale the WAL
	// archive may be, so how recent a point-in-time branch can reach.
	ArchiveTimeout int
	// Listen is what --listen asked the servers to listen on besides
	// 127.0.0.1 (comma-separated, as pg.ParseListen returns it); "" is
	// 127.0.0.1 only.
	Listen    string
	CreatedAt time.Time
	// Source is where the project was imported from; nil for one made
	// empty.
	Source *Source
	// Runtime runs the project's servers: "native" (the host's binaries)
	// or "docker" (containers of Image). Every branch inherits it.
	Runtime string
	// Image is the container image of a "docker" project, as the user
	// named it; "" for a native one.
	Image string
	// Archive is where the project's WAL archive is copied, s3://BUCKET/
	// PREFIX ("" none), and ArchiveEndpoint the S3-compatible service's
	// URL ("" for AWS). No credential: those come from the AWS chain.
	Archive         string
	ArchiveEndpoint string
	// IdleSeconds is the idle timeout of the project's branches but main
	// that have none of their own (0: never suspended).
	IdleSeconds int
	// Mask is the text of the SQL script every new branch of the project
	// is masked with (velo project set --mask); "" for none. A copy, not
	// the file's path: a later edit of the file changes nothing until set
	// again.
	Mask string
}

// Runtime names.
const (
	RuntimeNative = "native"
	RuntimeDocker = "docker"
)

// Source is where an imported project's data came from. It holds no
// secret: the password, when kept, is in a 0600 file of the project.
type Source struct {
	// Mode is "physical" (a base backup; main a standby while Following)
	// or "logical" (a dump restored).
	Mode     string `json:"mode"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Database string `json:"database"`
	// Databases are the databases a logical import was asked for (none:
	// all but templates, at each refresh too); Imported those it took last.
	Databases []string `json:"databases,omitempty"`
	Imported  []string `json:"imported,omitempty"`
	// SSL holds the TLS settings SOURCE gave (sslmode, sslrootcert...).
	SSL map[string]string `json:"ssl,omitempty"`
	// Service is the pg_service.conf section SOURCE named, if any.
	Service string `json:"service,omitempty"`
	// Following: main is a hot standby streaming from the source.
	Following bool `json:"following"`
	// Slot is the replication slot made on the source ("" none).
	Slot string `json:"slot,omitempty"`
	// Superuser is the copy's bootstrap superuser, Velo's own role on a
	// physical copy (over the local socket, peer authentication).
	Superuser string `json:"superuser,omitempty"`
	// StandbyMin are the source's values of the settings a hot standby
	// must match (max_connections, ...), when imported.
	StandbyMin map[string]int `json:"standby_min,omitempty"`
	// Version is the source's server_version when imported.
	Version    string    `json:"version"`
	ImportedAt time.Time `json:"imported_at"`
	// RefreshedAt is when velo project refresh last took the data again;
	// zero when never.
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
	// Archive is set for a project restored from another host's archive
	// in object storage (project create --from-archive; Mode physical):
	// the bucket (s3://BUCKET/PREFIX), its endpoint and the chain's
	// region when restored, the pushed snapshot restored and the volume
	// whose WAL main replays (and, Following, keeps replaying).
	Archive         string `json:"archive,omitempty"`
	ArchiveEndpoint string `json:"archive_endpoint,omitempty"`
	ArchiveRegion   string `json:"archive_region,omitempty"`
	ArchiveSnapshot string `json:"archive_snapshot,omitempty"`
	ArchiveVolume   string `json:"archive_volume,omitempty"`
}

// Branch is one running copy of a project's data.
type Branch struct {
	ID        string
	ProjectID string
	Name      string
	ParentID  string // "" for main
	VolumeID  string
	// OriginSnapshotID is the snapshot the volume was cloned from ("" for main).
	OriginSnapshotID string
	Port             int
	Password         string
	// WantRunning: the user last started it (or made it) rather than stopped it.
	WantRunning bool
	CreatedAt   time.Time
	// PITRTarget is the moment a point-in-time branch recovered to (its
	// source snapshot is OriginSnapshotID); zero for any other branch, and
	// after a reset.
	PITRTarget time.Time
	// PITRLSN is the LSN a point-in-time branch recovered to, when it was
	// given one (PITRTarget is then zero).
	PITRLSN string
	// Masked: the branch's data was masked (masked.go) before it took any
	// connection from outside; every branch made from it is masked too.
	Masked bool
	// Protected: delete, reset and expiry refuse it, --force or not.
	Protected bool
	// ExpiresAt is when velo prune deletes the branch; zero for never.
	ExpiresAt time.Time
	// SuspendedAt is when velo serve stopped the branch for want of
	// clients; zero when it did not. Any start, or a stop by the user,
	// clears it (SetWantRunning).
	SuspendedAt time.Time
	// IdleSeconds is how long velo serve lets the branch run without a
	// client before it suspends it: 0 for its project's default, IdleNever
	// for never.
	IdleSeconds int
}

// IdleNever is a branch's IdleSeconds when it is never suspended, whatever
// its project's default.
const IdleNever = -1

// Snapshot is a storage snapshot of one branch's volume.
type Snapshot struct {
	ID       string
	BranchID string // branch whose volume it was taken from ("" once that branch is gone)
	VolumeID string
	// Label is the user's label; "" for snapshots made to originate a branch.
	Label string
	// User marks snapshots the user asked for; the others are removed once
	// no branch is cloned from them.
	User bool
	// BackupLabel is the backup_label a clone needs when the snapshot was a
	// non-atomic copy of a running server.
	BackupLabel string
	// WALStart is the first WAL segment a recovery from this snapshot reads.
	WALStart string
	// EndLSN is the WAL position its data reaches: a recovery from it
	// reaches every LSN from there on. "" for snapshots made before Velo
	// recorded it.
	EndLSN    string
	CreatedAt time.Time
	// Masked: its data is a masked branch's (it says so once that branch
	// is gone, for a branch made from it).
	Masked bool
}

// Open opens (creating if needed) the database under home, which it makes
// 0711: others may pass through to a subdirectory of their own, never list.
// A database that SQLite finds damaged is refused with ErrCorrupt, and a
// missing one with ErrMissing when backups of it exist: starting over
// empty would make every volume and server of the home look orphaned.
func Open(ctx context.Context, home string) (*Store, error) {
	if err := os.MkdirAll(home, 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", home, err)
	}
	if err := os.Chmod(home, 0o711); err != nil {
		return nil, err
	}
	path := filepath.Join(home, "state.db")
	if lost(path) && len(Backups(home)) > 0 {
		return nil, fmt.Errorf("%w: %s is gone or empty, but %s holds backups of it; rebuild it with velo doctor --rebuild-state (it starts from the newest good backup and checks it against the storage and the running servers)",
			ErrMissing, path, BackupDir(home))
	}
	s, err := OpenFile(ctx, path)
	if errors.Is(err, ErrCorrupt) {
		return nil, fmt.Errorf("%w; rebuild it with velo doctor --rebuild-state, which starts from the newest good backup in %s and checks it against the storage and the running servers",
			err, BackupDir(home))
	}
	return s, err
}

// lost tells a database file that is gone, or empty with no WAL beside it
// (a new database in WAL mode may be empty while its WAL holds it all).
func lost(path string) bool {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil || info.Size() > 0 {
		return false
	}
	wal, err := os.Stat(path + "-wal")
	return errors.Is(err, fs.ErrNotExist) || (err == nil && wal.Size() == 0)
}

// ErrCorrupt is returned when SQLite finds the database damaged.
var ErrCorrupt = errors.New("the state database is corrupt")

// ErrMissing is returned when the database is gone but its backups are not.
var ErrMissing = errors.New("the state database is missing")

// OpenFile opens (creating if needed) the database file at path, 0600, and
// brings its schema up to date.
func OpenFile(ctx context.Context, path string) (*Store, error) {
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	// busy_timeout comes first: switching a new database to WAL takes a lock
	// that another velo opening it at the same moment may hold.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	err = s.migrate(ctx)
	if err == nil {
		// A page damaged where the schema check does not read shows here,
		// before a command acts on half its records (a few ms: the
		// database is small).
		err = s.quickCheck(ctx)
	}
	if err != nil {
		db.Close()
		if isCorrupt(err) {
			return nil, fmt.Errorf("%w: %s (%v)", ErrCorrupt, path, err)
		}
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Chmod(path+suffix, 0o600)
	}
	return s, nil
}

// isCorrupt tells SQLite's "database disk image is malformed" and "file is
// not a database" (SQLITE_CORRUPT, SQLITE_NOTADB, with their extended codes).
func isCorrupt(err error) bool {
	if errors.Is(err, errQuickCheck) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

var errQuickCheck = errors.New("quick check")

func (s *Store) quickCheck(ctx context.Context) error {
	var res string
	if err := s.db.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("%w: %s", errQuickCheck, res)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

var migrations = []string{
	`CREATE TABLE projects (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		driver TEXT NOT NULL,
		pool TEXT NOT NULL,
		pg_major INTEGER NOT NULL,
		created_at TEXT NOT NULL
	);
	CREATE TABLE branches (
		id TEXT PRIMARY KEY,
		project_id TEXT NOT NULL REFERENCES projects(id),
		name TEXT NOT NULL,
		parent_id TEXT REFERENCES branches(id),
		volume_id TEXT NOT NULL UNIQUE,
		origin_snapshot_id TEXT,
		port INTEGER NOT NULL UNIQUE,
		password TEXT NOT NULL,
		created_at TEXT NOT NULL,
		UNIQUE (project_id, name)
	);
	CREATE TABLE snapshots (
		id TEXT PRIMARY KEY,
		project_id TEXT NOT NULL REFERENCES projects(id),
		branch_id TEXT,
		volume_id TEXT NOT NULL,
		label TEXT NOT NULL DEFAULT '',
		user INTEGER NOT NULL DEFAULT 0,
		backup_label TEXT NOT NULL DEFAULT '',
		created_at TEXT NOT NULL
	);
	-- Volumes a reset replaced but could not destroy yet, because snapshots
	-- (and the branches cloned from them) still depend on them.
	CREATE TABLE retired_volumes (
		id TEXT PRIMARY KEY,
		project_id TEXT NOT NULL REFERENCES projects(id),
		retired_at TEXT NOT NULL
	);
	CREATE TABLE operations (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		command TEXT NOT NULL,
		pid INTEGER NOT NULL,
		started_at TEXT NOT NULL,
		finished_at TEXT
	);
	CREATE TABLE operation_steps (
		operation_id INTEGER NOT NULL REFERENCES operations(id),
		seq INTEGER NOT NULL,
		action TEXT NOT NULL,
		subject TEXT NOT NULL,
		at TEXT NOT NULL,
		PRIMARY KEY (operation_id, seq)
	);`,
	// 2: the WAL archive: where each snapshot's WAL starts, and each
	// project's archive_timeout.
	`ALTER TABLE snapshots ADD COLUMN wal_start TEXT NOT NULL DEFAULT '';
	ALTER TABLE projects ADD COLUMN archive_timeout INTEGER NOT NULL DEFAULT 60;`,
	// 3: whether the user wants a branch's server running, so that
	// `velo branch start --all` brings back what ran before a reboot.
	`ALTER TABLE branches ADD COLUMN want_running INTEGER NOT NULL DEFAULT 1;`,
	// 4: the addresses a project's servers listen on besides 127.0.0.1.
	`ALTER TABLE projects ADD COLUMN listen TEXT NOT NULL DEFAULT '';`,
	// 5: where an imported project came from (JSON of Source; '' for none).
	`ALTER TABLE projects ADD COLUMN source TEXT NOT NULL DEFAULT '';`,
	// 6: the moment a point-in-time branch recovered to ('' for others),
	// which branch get shows. Branches made before it show none.
	`ALTER TABLE branches ADD COLUMN pitr_target TEXT NOT NULL DEFAULT '';`,
	// 7: branch lifecycle: a protected branch is never deleted, reset or
	// expired; expires_at is when velo prune deletes it ('' never).
	`ALTER TABLE branches ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE branches ADD COLUMN expires_at TEXT NOT NULL DEFAULT '';`,
	// The runtime of each project (--image): every project before it is
	// native.
	`ALTER TABLE projects ADD COLUMN runtime TEXT NOT NULL DEFAULT 'native';
	ALTER TABLE projects ADD COLUMN image TEXT NOT NULL DEFAULT '';`,
	// The WAL archive in object storage (velo project set --archive): the
	// project's s3:// location and endpoint ('' none); each file uploaded
	// and verified (archive_objects), and how the last upload went.
	`ALTER TABLE projects ADD COLUMN archive_url TEXT NOT NULL DEFAULT '';
	ALTER TABLE projects ADD COLUMN archive_endpoint TEXT NOT NULL DEFAULT '';
	CREATE TABLE archive_objects (
		project_id TEXT NOT NULL,
		volume_id TEXT NOT NULL,
		name TEXT NOT NULL,
		size INTEGER NOT NULL,
		sha256 TEXT NOT NULL,
		archived_at TEXT NOT NULL,
		uploaded_at TEXT NOT NULL,
		PRIMARY KEY (project_id, volume_id, name)
	);
	CREATE TABLE archive_status (
		project_id TEXT PRIMARY KEY,
		last_upload_at TEXT NOT NULL DEFAULT '',
		last_error TEXT NOT NULL DEFAULT '',
		last_error_at TEXT NOT NULL DEFAULT ''
	);`,
	// velo serve's idle suspend: when the daemon stopped a branch for
	// want of clients ('' when it did not: running, or stopped by the
	// user), each branch's idle timeout in seconds (0: its project's
	// default; -1: never) and each project's default (0: never).
	`ALTER TABLE branches ADD COLUMN suspended_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE branches ADD COLUMN idle_seconds INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE projects ADD COLUMN idle_seconds INTEGER NOT NULL DEFAULT 0;`,
	// The WAL position a snapshot's data reaches (a branch --pitr LSN
	// starts from a snapshot at or before it; '' for snapshots made
	// before, which an LSN target does not use), and the LSN a
	// point-in-time branch recovered to ('' for a time or none).
	`ALTER TABLE snapshots ADD COLUMN end_lsn TEXT NOT NULL DEFAULT '';
	ALTER TABLE branches ADD COLUMN pitr_lsn TEXT NOT NULL DEFAULT '';`,
	// Masked branches: a project's default mask script (its text, '' for
	// none) and whether a branch's data was masked (by its own script or
	// its parent's).
	`ALTER TABLE projects ADD COLUMN mask TEXT NOT NULL DEFAULT '';
	ALTER TABLE branches ADD COLUMN masked INTEGER NOT NULL DEFAULT 0;`,
	// A snapshot of a masked branch is masked, and says so after the
	// branch is deleted.
	`ALTER TABLE snapshots ADD COLUMN masked INTEGER NOT NULL DEFAULT 0;
	UPDATE snapshots SET masked = 1 WHERE branch_id IN (SELECT id FROM branches WHERE masked = 1);`,
}

// migrate brings the schema up to date. Velo processes may open a new
// home at the same moment: the version is read and every migration applied
// inside one write transaction, taken before the read, so each migration
// runs once and the others wait for it (busy_timeout), then find it done.
func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err == nil && v == len(migrations) {
		return nil
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = c.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	err = c.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		v = 0
		if _, err := c.ExecContext(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("state schema version %d is newer than this velo knows (%d); upgrade velo", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := c.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := c.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
		return err
	}
	committed = true
	return nil
}

// Integrity runs SQLite's integrity check.
func (s *Store) Integrity(ctx context.Context) error {
	var res string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	return nil
}

const timeFormat = time.RFC3339Nano

func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// fmtOptionalTime is fmtTime with an empty string for the zero time.
func fmtOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Tx runs fn in one transaction: the records it changes change together.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Tx{q: sqlTx}); err != nil {
		sqlTx.Rollback()
		return err
	}
	return sqlTx.Commit()
}

// Tx is a transaction; Store's own methods run outside one.
type Tx struct{ q querier }

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Q returns the reads and writes of the store outside a transaction.
func (s *Store) Q() *Tx { return &Tx{q: s.db} }
