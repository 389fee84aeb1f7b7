package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestReadmeVerifyFull runs the README's sslmode=verify-full psql line as
// it is written, with VELO_HOME elsewhere than ~/.velo: the line must find
// the project's CA wherever the home is. branch password's text shows
// the CA's path too.
func TestReadmeVerifyFull(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "$ psql ") && strings.Contains(l, "sslmode=verify-full") {
			line = strings.TrimPrefix(l, "$ ")
			break
		}
	}
	if line == "" {
		t.Fatal("README has no psql line with sslmode=verify-full")
	}
	e := newEnv(t, "btrfs")
	e.Create("demo")
	e.OK("branch", "create", "demo/dev")
	ca := filepath.Join(e.Home, "projects", "demo", "ca.crt")
	if r := e.OK("branch", "password", "demo/dev"); !strings.Contains(r.Stdout, "TLS CA:   "+ca) {
		t.Errorf("branch password does not show the CA's path %s:\n%s", ca, r.Stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line+" -X -At -c 'SHOW ssl'")
	cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home, "HOME="+t.TempDir(), "PATH="+filepath.Dir(harness.VeloBin)+":"+os.Getenv("PATH"), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "on" {
		t.Errorf("the README's line %q: %v\n%s", line, err, out)
	}
}
