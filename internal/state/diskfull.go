package state

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"modernc.org/sqlite"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
)

// SQLite's primary result codes that a full filesystem gives: SQLITE_FULL
// when a write finds no room, SQLITE_IOERR (4874 is IOERR_SHMSIZE: the
// shared-memory file of WAL mode cannot grow) when the failed call was one
// SQLite does not read as "full".
const (
	sqliteIOErr = 10
	sqliteFull  = 13
)

// fullBelow is the free space under which a failed write of the state is
// put down to a full disk: SQLite needs a few pages of WAL and 32 KiB of
// shared memory at a time.
const fullBelow = 4 << 20

// DiskFull turns an error that a full filesystem under home caused into
// one that says so, where, and what to do (errdefs.ErrNoSpace, exit code
// 1): SQLite's own words ("database or disk is full (13)", "disk I/O error
// (4874)") name neither the disk nor the fix. Any other error, and one
// whose filesystem is not full after all, is returned as it is.
func DiskFull(err error, home string) error {
	if err == nil || errors.Is(err, errdefs.ErrNoSpace) {
		return err
	}
	var se *sqlite.Error
	var pe *fs.PathError
	switch {
	case errors.As(err, &se) && (se.Code()&0xff == sqliteFull || se.Code()&0xff == sqliteIOErr):
	case errors.As(err, &pe) && (errors.Is(pe.Err, syscall.ENOSPC) || errors.Is(pe.Err, syscall.EDQUOT)) && within(pe.Path, home):
	default:
		return err
	}
	var st syscall.Statfs_t
	if syscall.Statfs(home, &st) != nil {
		return err
	}
	free := int64(st.Bavail) * st.Bsize
	if free >= fullBelow && (se == nil || se.Code() != sqliteFull) {
		return err
	}
	slog.Debug("state: a full disk", "err", err)
	return errdefs.NoSpace("the disk holding VELO_HOME %s is full (%s free of %s on %s): Velo cannot write its state (state.db) there; free space on that filesystem, then run velo doctor to finish or undo what this command left half done",
		home, ui.Bytes(free), ui.Bytes(int64(st.Blocks)*st.Bsize), mountPoint(home))
}

// within reports whether path is home or below it.
func within(path, home string) bool {
	rel, err := filepath.Rel(home, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// mountPoint is the top directory of the filesystem that holds path.
func mountPoint(path string) string {
	dev := func(p string) (uint64, bool) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, false
		}
		s, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, false
		}
		return uint64(s.Dev), true
	}
	d, ok := dev(path)
	if !ok {
		return path
	}
	for path != "/" {
		up := filepath.Dir(path)
		if u, ok := dev(up); !ok || u != d {
			break
		}
		path = up
	}
	return path
}
