package e2e

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
			for _, dir := range []string{e.pool, e.home} {
				if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
					t.Fatal(err)
				}
			}
			e.user = cred
			e.create("solo")
			if owner := ownerOf(t, filepath.Join(e.pool, "velo")); owner != cred.Uid {
				t.Errorf("pool entries owned by uid %d, want %d", owner, cred.Uid)
			}
			e.psql("solo/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
			base := strings.TrimSpace(e.ok("snapshot", "create", "solo/main").stdout)
			e.psql("solo/main", "INSERT INTO t VALUES (2)")
			at := time.Now().UTC()
			time.Sleep(300 * time.Millisecond)
			e.psql("solo/main", "INSERT INTO t VALUES (3)")
			e.ok("branch", "create", "solo/dev")
			e.psql("solo/dev", "DELETE FROM t")
			e.ok("branch", "reset", "solo/dev")
			if got := e.rows("solo/dev", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
				t.Errorf("dev after reset = %s", got)
			}
			e.ok("branch", "create", "solo/then", "--pitr", at.Format(time.RFC3339Nano))
			if got := e.rows("solo/then", "SELECT v FROM t ORDER BY v"); got != "1,2" {
				t.Errorf("PITR branch = %s", got)
			}
			e.ok("branch", "stop", "solo/dev")
			e.ok("branch", "start", "solo/dev")
			e.ok("branch", "delete", "solo/then")
			e.ok("branch", "delete", "solo/dev")
			e.ok("snapshot", "delete", base)
			e.ok("project", "delete", "solo")
			left, _ := filepath.Glob(filepath.Join(e.pool, "velo", "vol", "*"))
			if len(left) != 0 {
				t.Errorf("volumes left after project delete: %v", left)
			}
		})
	}
}

// ordinaryUser returns the credential of velo-e2e, made if missing.
func ordinaryUser(t *testing.T) *syscall.Credential {
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
