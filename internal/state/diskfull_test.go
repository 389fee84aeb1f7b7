package state

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

// TestDiskFullLeavesOthers: only a full disk under the home is explained;
// a full disk elsewhere, or a home with room, keeps its error (the e2e
// TestHomeDiskFull fills a real one).
func TestDiskFullLeavesOthers(t *testing.T) {
	home := t.TempDir()
	for _, err := range []error{
		nil,
		errors.New("pg_ctl failed"),
		&fs.PathError{Op: "write", Path: "/elsewhere/x", Err: syscall.ENOSPC},
		&fs.PathError{Op: "write", Path: home + "/state.db", Err: syscall.ENOSPC}, // t.TempDir has room
		errdefs.NoSpace("pool tank is full"),
	} {
		if got := DiskFull(err, home); got != err {
			t.Errorf("DiskFull(%v) = %v; want it unchanged", err, got)
		}
	}
	for path, want := range map[string]bool{home: true, home + "/wal/x": true, home + "/../x": false, "/": false, home + "x": false} {
		if within(path, home) != want {
			t.Errorf("within(%s, %s) = %v", path, home, !want)
		}
	}
}
