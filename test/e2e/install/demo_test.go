package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestDemoScript runs the README's demo (scripts/demo.sh), which checks its
// own rows, with the binary under test on a btrfs pool.
func TestDemoScript(t *testing.T) {
	e := newEnv(t, "btrfs")
	// Like root's ~/.velo: a home the Postgres user cannot pass through.
	private := harness.TmpDir(t, "velo-private-")
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	e.Home = filepath.Join(private, ".velo")
	script, err := filepath.Abs("../../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "--pool", e.Pool)
	cmd.Env = append(os.Environ(), "VELO="+harness.VeloBin, "VELO_HOME="+e.Home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"Connection ready", "Velo Status", "demo/dev", "Done:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// Run twice: the demo cleans up after an earlier run.
	cmd = exec.Command("bash", script, "--pool", e.Pool)
	cmd.Env = append(os.Environ(), "VELO="+harness.VeloBin, "VELO_HOME="+e.Home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second demo run: %v\n%s", err, out)
	}
}
