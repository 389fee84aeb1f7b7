package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// KeepBackups is how many backups of the state database a home keeps.
const KeepBackups = 10

// BackupDir holds a home's backups of state.db: $VELO_HOME/backups, 0700.
func BackupDir(home string) string { return filepath.Join(home, "backups") }

const backupPrefix, backupSuffix = "state-", ".db"

// Backups lists the backups of home's state database, newest first.
func Backups(home string) []string {
	entries, err := os.ReadDir(BackupDir(home))
	if err != nil {
		return nil
	}
	var out []string
	for _, en := range entries {
		n := en.Name()
		if en.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			out = append(out, filepath.Join(BackupDir(home), n))
		}
	}
	// The names hold the UTC time to the nanosecond: their order is their age.
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// Backup writes a consistent copy of the database into the home's backup
// directory (SQLite's VACUUM INTO, which reads one snapshot of the
// database while others may write), 0600, synced, under a temporary name
// renamed into place; then it keeps only the newest keep backups. A
// backup after every change means that losing state.db loses at most the
// change being made, never the home's records.
func (s *Store) Backup(ctx context.Context, keep int) (string, error) {
	dir := BackupDir(filepath.Dir(s.path))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	name := backupPrefix + time.Now().UTC().Format("20060102T150405.000000000Z") + backupSuffix
	final := filepath.Join(dir, name)
	tmp := final + ".tmp"
	// VACUUM INTO accepts an empty file: made first, it has the mode we want.
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	f.Close()
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("back up %s: %w", s.path, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := syncFile(dir); err != nil {
		return "", err
	}
	all := Backups(filepath.Dir(s.path))
	for i, old := range all {
		if i >= keep {
			_ = os.Remove(old)
		}
	}
	// What a backup killed half-way left (changing commands hold the lock,
	// so no other backup is being written).
	if stale, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*"+backupSuffix+".tmp")); len(stale) > 0 {
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}
	return final, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Check opens a database file read-only and runs SQLite's integrity check
// on it: a backup is only used when it passes.
func Check(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this velo knows (%d)", v, len(migrations))
	}
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return errors.New("integrity check: " + res)
	}
	return nil
}

// CopyFile writes a consistent copy of the database file at src (a
// backup, read-only) to dst, which must not exist: the start of a rebuild.
func CopyFile(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}
