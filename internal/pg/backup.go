package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Backup is a backup in progress on a running server, started with
// BackupStart: the copy of the data directory is made while it is open, then
// Stop ends it. The backup lives in one session; Close ends the session, and
// with it a backup that was not stopped (the server aborts it).
//
// The sequence for a non-atomic copy (reflink, copy):
//
//	b, err := pg.BackupStart(ctx, port, password, "velo clone demo/dev")
//	defer b.Close(ctx)
//	// copy the data directory to dst
//	res, err := b.Stop(ctx)
//	pg.WriteBackupLabel(dst, res.LabelFile, owner)
//	pg.CopyWAL(src, dst, res.StartWAL, res.StopWAL, owner)
//	pg.PrepareClone(dst) // then WriteConfig with the clone's port
type Backup struct {
	conn     *pgx.Conn
	port     int
	version  int // server_version_num
	startLSN string
	startWAL string
	stopped  bool
}

// BackupResult is what a stopped backup hands over to the copy.
type BackupResult struct {
	// LabelFile is the text to write as backup_label in the copy; it tells
	// the copy where recovery must start.
	LabelFile string
	// StartWAL and StopWAL name the first and last WAL segment files the copy
	// needs to reach a consistent state.
	StartWAL, StopWAL string
	StartLSN, StopLSN string
}

// BackupStart connects to the server on 127.0.0.1:port and starts a
// non-exclusive backup with the given label, asking for an immediate
// checkpoint: pg_backup_start(label, fast => true) on 15 and later,
// pg_start_backup(label, true, false) before.
func BackupStart(ctx context.Context, port int, password, label string) (*Backup, error) {
	conn, err := Connect(ctx, port, password)
	if err != nil {
		return nil, fmt.Errorf("backup start: %w", err)
	}
	return BackupStartOn(ctx, conn, port, label)
}

// BackupStartOn is BackupStart in a session already open on the server
// on port (which the Backup then owns and closes). A hot standby may be
// copied so too: Postgres allows the backup protocol there, starting from
// its last restartpoint.
func BackupStartOn(ctx context.Context, conn *pgx.Conn, port int, label string) (*Backup, error) {
	var err error
	b := &Backup{conn: conn, port: port}
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&v); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("backup start on port %d: server version: %w", port, err)
	}
	if b.version, err = strconv.Atoi(v); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("backup start on port %d: server_version_num %q", port, v)
	}
	q := "SELECT lsn::text FROM pg_backup_start($1, fast => true) AS lsn"
	if b.version < 150000 {
		q = "SELECT lsn::text FROM pg_start_backup($1, true, false) AS lsn"
	}
	if err := conn.QueryRow(ctx, q, label).Scan(&b.startLSN); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("backup start on port %d: %w", port, err)
	}
	if b.startWAL, err = WALFileName(ctx, conn, b.startLSN); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("backup start on port %d: %w", port, err)
	}
	return b, nil
}

// StartLSN returns the WAL position the backup started at.
func (b *Backup) StartLSN() string { return b.startLSN }

// Stop ends the backup without waiting for WAL archiving (velo copies the WAL
// itself) and returns the label file and the WAL range the copy needs. The
// session stays open until Close.
func (b *Backup) Stop(ctx context.Context) (BackupResult, error) {
	if b.stopped {
		return BackupResult{}, errors.New("backup stop: already stopped")
	}
	q := "SELECT lsn::text, labelfile FROM pg_backup_stop(wait_for_archive => false)"
	if b.version < 150000 {
		q = "SELECT lsn::text, labelfile FROM pg_stop_backup(false, false)"
	}
	res := BackupResult{StartLSN: b.startLSN, StartWAL: b.startWAL}
	if err := b.conn.QueryRow(ctx, q).Scan(&res.StopLSN, &res.LabelFile); err != nil {
		return BackupResult{}, fmt.Errorf("backup stop on port %d: %w", b.port, err)
	}
	var err error
	if res.StopWAL, err = walFileNameEnd(ctx, b.conn, res.StopLSN); err != nil {
		return BackupResult{}, fmt.Errorf("backup stop on port %d: %w", b.port, err)
	}
	b.stopped = true
	return res, nil
}

// Close ends the backup's session; a backup not yet stopped is aborted by the
// server. It is safe to call more than once.
func (b *Backup) Close(ctx context.Context) error {
	if b == nil || b.conn == nil {
		return nil
	}
	closeConn(ctx, b.conn)
	b.conn = nil
	return nil
}

// WriteBackupLabel writes label as dataDir/backup_label (0600, owned by
// owner), so that the copy starts recovery where the backup began.
func WriteBackupLabel(dataDir, label string, owner *OSUser) error {
	if err := writeFileAtomic(filepath.Join(dataDir, "backup_label"), []byte(label), 0o600, owner); err != nil {
		return fmt.Errorf("write backup_label: %w", err)
	}
	return nil
}

// CopyWAL copies the WAL segment files fromWAL..toWAL (inclusive, by name, on
// one timeline) from srcDataDir/pg_wal into dstDataDir/pg_wal, replacing
// what the copy holds (a non-atomic copy may hold them torn), each fsync'd
// and owned by owner. The timeline's history file comes along when there is
// one. Both ends must exist in the source. Segments after toWAL in the copy
// are removed: they were copied while being written or recycled, and the
// copy is meant to be the server as of the end of the backup.
func CopyWAL(srcDataDir, dstDataDir, fromWAL, toWAL string, owner *OSUser) error {
	if !isWALName(fromWAL) || !isWALName(toWAL) {
		return fmt.Errorf("copy wal: %q..%q are not WAL segment file names", fromWAL, toWAL)
	}
	if fromWAL[:8] != toWAL[:8] {
		return fmt.Errorf("copy wal: %s and %s are on different timelines", fromWAL, toWAL)
	}
	if fromWAL > toWAL {
		return fmt.Errorf("copy wal: %s comes after %s", fromWAL, toWAL)
	}
	srcWAL := filepath.Join(srcDataDir, "pg_wal")
	dstWAL := filepath.Join(dstDataDir, "pg_wal")
	entries, err := os.ReadDir(srcWAL)
	if err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	if err := os.MkdirAll(dstWAL, 0o700); err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	if err := chownOne(dstWAL, owner); err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && isWALName(n) && n[:8] == fromWAL[:8] && n >= fromWAL && n <= toWAL {
			names = append(names, n) // ReadDir sorts by name
		}
	}
	if len(names) == 0 || names[0] != fromWAL || names[len(names)-1] != toWAL {
		return fmt.Errorf("copy wal: %s lacks segments of %s..%s (recycled? raise wal_keep_size)", srcWAL, fromWAL, toWAL)
	}
	if tli := fromWAL[:8]; tli != "00000001" {
		history := tli + ".history"
		if _, err := os.Stat(filepath.Join(srcWAL, history)); err == nil {
			names = append(names, history)
		}
	}
	for _, n := range names {
		if err := copyFileSynced(filepath.Join(srcWAL, n), filepath.Join(dstWAL, n), 0o600, owner); err != nil {
			return fmt.Errorf("copy wal: %w", err)
		}
	}
	dstEntries, err := os.ReadDir(dstWAL)
	if err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	for _, e := range dstEntries {
		if n := e.Name(); isWALName(n) && n > toWAL {
			if err := removeIfExists(filepath.Join(dstWAL, n)); err != nil {
				return fmt.Errorf("copy wal: %w", err)
			}
		}
	}
	if err := syncDir(dstWAL); err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	return nil
}

// isWALName reports whether name is a WAL segment file name: 24 upper-case
// hexadecimal digits (timeline, log, segment).
func isWALName(name string) bool {
	if len(name) != 24 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// WALFileName names the WAL segment file holding lsn on the server's
// current timeline. pg_walfile_name does so but refuses to run on a hot
// standby; this works on both, from the timeline of the last checkpoint
// (or restartpoint) and wal_segment_size.
func WALFileName(ctx context.Context, conn *pgx.Conn, lsn string) (string, error) {
	return walFileNameOn(ctx, conn, lsn, false)
}

// walFileNameEnd names the last WAL segment file a copy ending at lsn
// needs: where lsn is a segment's first byte (a hot standby's backup
// stopping right after a segment switch on its source), the segment
// before, which pg_walfile_name gives on a primary too; the one lsn
// starts, which the standby may not have received yet, holds nothing the
// copy needs.
func walFileNameEnd(ctx context.Context, conn *pgx.Conn, lsn string) (string, error) {
	return walFileNameOn(ctx, conn, lsn, true)
}

func walFileNameOn(ctx context.Context, conn *pgx.Conn, lsn string, end bool) (string, error) {
	var tli uint32
	var segSize int64
	var recovery bool
	err := conn.QueryRow(ctx, `SELECT timeline_id, pg_is_in_recovery(),
		(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') FROM pg_control_checkpoint()`).Scan(&tli, &recovery, &segSize)
	if err != nil {
		return "", fmt.Errorf("wal file name: %w", err)
	}
	if !recovery {
		var name string
		err := conn.QueryRow(ctx, "SELECT pg_walfile_name($1::pg_lsn)", lsn).Scan(&name)
		return name, err
	}
	if end {
		if prev, ok := lsnBefore(lsn, segSize); ok {
			lsn = prev
		}
	}
	return walFileName(tli, lsn, segSize)
}

// lsnBefore is the LSN one byte before lsn when lsn starts a segment of
// segSize bytes.
func lsnBefore(lsn string, segSize int64) (string, bool) {
	hi, lo, ok := strings.Cut(lsn, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	pos := h<<32 | l
	if !ok || err1 != nil || err2 != nil || segSize <= 0 || pos == 0 || pos%uint64(segSize) != 0 {
		return lsn, false
	}
	pos--
	return fmt.Sprintf("%X/%X", pos>>32, pos&0xFFFFFFFF), true
}

// walFileName is the segment file name of lsn ("16/B374D848") on
// timeline tli with segments of segSize bytes, as Postgres's XLogFileName.
func walFileName(tli uint32, lsn string, segSize int64) (string, error) {
	hi, lo, ok := strings.Cut(lsn, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil || segSize <= 0 {
		return "", fmt.Errorf("wal file name: %q is not an LSN", lsn)
	}
	pos := h<<32 | l
	seg := pos / uint64(segSize)
	perID := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, seg/perID, seg%perID), nil
}

// CopyWALAfter copies every WAL segment file of srcDataDir/pg_wal named
// after after (all when ""), the timelines' history files too, into
// dstDataDir/pg_wal, replacing what is there: the WAL a hot standby has
// received but not archived yet (the segment being received included),
// for a recovery from its archive to reach what it has now.
func CopyWALAfter(srcDataDir, dstDataDir, after string, owner *OSUser) error {
	srcWAL := filepath.Join(srcDataDir, "pg_wal")
	dstWAL := filepath.Join(dstDataDir, "pg_wal")
	entries, err := os.ReadDir(srcWAL)
	if err != nil {
		return fmt.Errorf("copy wal: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !(isWALName(n) && n > after || strings.HasSuffix(n, ".history")) {
			continue
		}
		if err := copyFileSynced(filepath.Join(srcWAL, n), filepath.Join(dstWAL, n), 0o600, owner); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // recycled meanwhile
			}
			return fmt.Errorf("copy wal: %w", err)
		}
	}
	return syncDir(dstWAL)
}
