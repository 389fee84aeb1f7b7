package faults

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/velohq/velo/internal/storage/storagetest"
)

// TestHomeDiskFull puts VELO_HOME on a small filesystem and fills it: a
// command that must record its state fails with exit code 1 saying the
// disk is full and which (not SQLite's "disk I/O error (4874)" or
// "database or disk is full (13)"), the branches stay as they were, and
// once space is freed doctor mends what the command left and the same
// command works.
func TestHomeDiskFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	mnt := storagetest.LoopFS(t, "ext4", 160<<20, []string{"-q", "-F", "-m", "0"}, "")
	// Cleanups run last first: the servers, whose logs and WAL archive
	// live in the home, go before it is unmounted; newEnv's own teardown
	// then finds its empty home again.
	spare := e.Home
	t.Cleanup(func() { e.Teardown(); e.Home = spare })
	e.Home = filepath.Join(mnt, "home")
	// Each WAL switch archives 16 MB into the home: room for several once
	// the filler is gone, and none on a timer meanwhile.
	e.Create("hf", "--archive-timeout", "24h")
	e.Psql("hf/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	before := e.SnapshotState()

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// Even a read fails once the home is full to the last block: SQLite
	// makes its shared-memory file anew when it opens the database.
	for _, args := range [][]string{{"branch", "create", "hf/b1"}, {"snapshot", "create", "hf/main"}, {"branch", "list"}} {
		r := e.Run(args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "disk holding VELO_HOME "+e.Home+" is full") ||
			!strings.Contains(r.Stderr, mnt) || !strings.Contains(r.Stderr, "free space") {
			t.Errorf("velo %s on a full home: want exit 1 saying the disk of %s is full, got %s", strings.Join(args, " "), e.Home, r)
		}
		if strings.Contains(r.Stderr, "disk I/O error") || strings.Contains(r.Stderr, "(13)") {
			t.Errorf("velo %s: SQLite's words reach the user: %s", strings.Join(args, " "), r.Stderr)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if after := e.SnapshotState(); after != before {
		t.Errorf("a full home changed the branches:\nbefore %s\nafter  %s", before, after)
	}
	e.OK("doctor", "--repair")
	e.OK("doctor")
	e.OK("branch", "create", "hf/b1")
	if got := e.Rows("hf/b1", "SELECT v FROM t"); got != "1" {
		t.Errorf("hf/b1 after the disk was freed = %s", got)
	}
}

// fill writes path until its filesystem has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Write the last blocks' worth too: a short write leaves a remainder.
	for _, n := range []int{64 << 10, 4 << 10, 512} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	_ = f.Sync()
}
