package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/testenv"
)

// TestDebianPackage builds the package with scripts/package.sh, installs
// it with dpkg -i on this machine, runs the installed velo (its version,
// then the demo's first two commands), and removes it with dpkg -r,
// leaving none of its files.
func TestDebianPackage(t *testing.T) {
	t.Parallel() // it installs /usr/bin/velo, which no other test runs
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dpkg")
	if err := exec.Command("dpkg", "-s", "velo").Run(); err == nil {
		t.Fatal("a velo package is installed on this machine already: this test would remove it (dpkg -r velo first)")
	}
	out := t.TempDir()
	build := exec.Command("../../../scripts/package.sh", out)
	build.Env = append(os.Environ(), "VERSION=0.0.0~e2e")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("package.sh: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "velo_0.0.0~e2e_amd64.deb")
	info, err := exec.Command("dpkg-deb", "--info", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: velo", "Version: 0.0.0~e2e", "Architecture: amd64", "Depends: postgresql", "Recommends: postgresql-client, btrfs-progs, xfsprogs, zfsutils-linux | zfs-fuse"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("the package's control lacks %q:\n%s", want, info)
		}
	}
	files := []string{"/usr/bin/velo", "/usr/share/man/man1/velo.1.gz", "/usr/share/man/man1/velo-branch-create.1.gz",
		"/usr/share/bash-completion/completions/velo", "/lib/systemd/system/velo@.service"}
	if b, err := exec.Command("dpkg", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_ = exec.Command("dpkg", "-r", "velo").Run()
		}
	})
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	if v, err := exec.Command("/usr/bin/velo", "--version").Output(); err != nil || !strings.HasPrefix(string(v), "velo 0.0.0~e2e, commit ") {
		t.Errorf("velo --version of the package: %q %v", v, err)
	}
	e := newEnv(t, "copy")
	for _, args := range [][]string{{"project", "create", "demo", "--pool", e.Pool, "--storage", "copy"}, {"branch", "create", "demo/dev"}} {
		cmd := exec.Command("/usr/bin/velo", args...)
		cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the installed velo %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	if got := e.Rows("demo/dev", "SELECT 1"); got != "1" {
		t.Errorf("the branch the installed velo made answers %q", got)
	}
	e.OK("project", "delete", "demo", "--force")
	if b, err := exec.Command("dpkg", "-r", "velo").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, b)
	}
	removed = true
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is left after dpkg -r (%v)", f, err)
		}
	}
	if st, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "velo").Output(); strings.Contains(string(st), "installed") && !strings.Contains(string(st), "not-installed") && !strings.Contains(string(st), "config-files") {
		t.Errorf("dpkg still counts velo installed: %s", st)
	}
}
