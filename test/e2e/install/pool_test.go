package install

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/storage/storagetest"
	"github.com/velohq/velo/internal/testenv"
)

// TestPoolChoice: a --pool directory that does not exist (a typo) is
// refused, saying how to make it, and nothing is made; a bare word is
// taken for a ZFS pool and the refusal says how to name a directory; a
// pool without clones is said to give full copies, with the way to a
// copy-on-write pool; project delete leaves no velo/ tree behind.
func TestPoolChoice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	typo := filepath.Join(e.Pool, "no", "such")
	e.Refused([]string{"does not exist", "mkdir -p"}, "project", "create", "p", "--pool", typo)
	if _, err := os.Stat(filepath.Join(e.Pool, "no")); !os.IsNotExist(err) {
		t.Errorf("a refused --pool %s made a directory: %v", typo, err)
	}
	e.Refused([]string{"absolute path"}, "project", "create", "p", "--pool", "mnt")

	r := e.OK("project", "create", "p", "--pool", e.Pool)
	if !strings.Contains(r.Stderr, "full copy") || !strings.Contains(r.Stderr, "velo setup --pool-file") {
		t.Errorf("a pool without clones is not said to give full copies:\n%s", r.Stderr)
	}
	e.OK("branch", "create", "p/dev")
	e.OK("project", "delete", "p", "--force")
	if _, err := os.Stat(filepath.Join(e.Pool, "velo")); !os.IsNotExist(err) {
		left, _ := filepath.Glob(filepath.Join(e.Pool, "velo", "*"))
		t.Errorf("project delete left %s/velo behind: %v %v", e.Pool, left, err)
	}
}

// TestNonRootBtrfsWithoutUserDelete: as an ordinary user, on a btrfs
// filesystem mounted without user_subvol_rm_allowed, subvolumes can be
// made but not deleted. project create must find that out first and
// refuse, naming the mount option, with nothing made; and doctor must give
// that fix for a project whose pool lost the option.
func TestNonRootBtrfsWithoutUserDelete(t *testing.T) {
	testenv.RequireRoot(t)
	t.Parallel()
	cred := ordinaryUser(t)
	e := newEnv(t, "btrfs")
	mnt := e.Pool
	img := filepath.Join(filepath.Dir(mnt), "pool.img")
	remount := func(opts string) {
		t.Helper()
		storagetest.Unmount(t, mnt)
		args := []string{"-o", "loop" + opts, img, mnt}
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v\n%s", args, err, out)
		}
	}
	remount("") // as newEnv made it, but without user_subvol_rm_allowed
	for _, dir := range []string{mnt, e.Home} {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	e.User = cred
	r := e.Run("project", "create", "nr", "--pool", mnt)
	if r.Code != 2 || !strings.Contains(r.Stderr, "user_subvol_rm_allowed") || !strings.Contains(r.Stderr, "mount -o remount,user_subvol_rm_allowed "+mnt) {
		t.Errorf("project create without user_subvol_rm_allowed: want exit 2 naming the mount option, got %s", r)
	}
	if left, _ := os.ReadDir(mnt); len(left) != 0 {
		t.Errorf("the refused create left %v in the pool", left)
	}
	var ps []struct{ Name string }
	if err := json.Unmarshal([]byte(e.OK("project", "list", "--json").Stdout), &ps); err != nil || len(ps) != 0 {
		t.Errorf("projects after the refusal: %v %v", ps, err)
	}

	// With the option the project is made; then the pool loses it.
	if out, err := exec.Command("mount", "-o", "remount,user_subvol_rm_allowed", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	e.OK("project", "create", "nr", "--pool", mnt)
	e.OK("branch", "create", "nr/dev")
	e.OK("branch", "stop", "nr/dev")
	e.OK("branch", "stop", "nr/main")
	remount("")
	r = e.Run("doctor")
	if r.Code != 1 || !strings.Contains(r.Stdout, "mounted without user_subvol_rm_allowed") || !strings.Contains(r.Stdout, "fix: remount it with sudo mount -o remount,user_subvol_rm_allowed "+mnt) {
		t.Errorf("doctor on a pool without user_subvol_rm_allowed should give the remount as the fix: %s", r)
	}
	// The fix doctor gives is the fix.
	if out, err := exec.Command("mount", "-o", "remount,user_subvol_rm_allowed", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	e.OK("branch", "delete", "nr/dev")
	e.AssertDoctorHealthy()
}
