package install

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
)

// TestNonRoot runs the whole workflow as an ordinary user, on the drivers
// that need no root: btrfs (mounted with user_subvol_rm_allowed), reflink
// and copy. Tests that run as root hide permission bugs.
func TestNonRoot(t *testing.T) {
	testenv.RequireRoot(t) // to make the user and the filesystems
	cred := ordinaryUser(t)
	for _, d := range []string{"btrfs", "reflink", "copy"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			for _, dir := range []string{e.Pool, e.Home} {
				if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
					t.Fatal(err)
				}
			}
			e.User = cred
			e.Create("solo")
			if owner := ownerOf(t, filepath.Join(e.Pool, "velo")); owner != cred.Uid {
				t.Errorf("pool entries owned by uid %d, want %d", owner, cred.Uid)
			}
			e.Psql("solo/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
			base := strings.TrimSpace(e.OK("snapshot", "create", "solo/main").Stdout)
			e.Psql("solo/main", "INSERT INTO t VALUES (2)")
			at := time.Now().UTC()
			time.Sleep(300 * time.Millisecond)
			e.Psql("solo/main", "INSERT INTO t VALUES (3)")
			e.OK("branch", "create", "solo/dev")
			e.Psql("solo/dev", "DELETE FROM t")
			e.OK("branch", "reset", "solo/dev")
			if got := e.Rows("solo/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
				t.Errorf("dev after reset = %s", got)
			}
			e.OK("branch", "create", "solo/then", "--pitr", at.Format(time.RFC3339Nano))
			if got := e.Rows("solo/then", "SELECT v FROM t ORDER BY v"); got != "1,2" {
				t.Errorf("PITR branch = %s", got)
			}
			e.OK("branch", "stop", "solo/dev")
			e.OK("branch", "start", "solo/dev")
			e.OK("branch", "delete", "solo/then")
			e.OK("branch", "delete", "solo/dev")
			e.OK("snapshot", "delete", base)
			e.OK("project", "delete", "solo")
			left, _ := filepath.Glob(filepath.Join(e.Pool, "velo", "vol", "*"))
			if len(left) != 0 {
				t.Errorf("volumes left after project delete: %v", left)
			}
		})
	}
}

// userMu keeps two tests from making velo-e2e at once.
var userMu sync.Mutex

// ordinaryUser returns the credential of velo-e2e, made if missing.
func ordinaryUser(t *testing.T) *syscall.Credential {
	// Parallel tests ask at once: one useradd.
	userMu.Lock()
	defer userMu.Unlock()
	u, err := user.Lookup("velo-e2e")
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "velo-e2e").CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
		if u, err = user.Lookup("velo-e2e"); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

func ownerOf(t *testing.T, path string) uint32 {
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Uid
}
