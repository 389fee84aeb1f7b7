package importing

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestMaskedImport makes a masked branch of a following main, a physical
// copy of a "production" server (btrfs): the values the script replaces
// are in no query and no file of the branch's volume or log, the source's
// roles keep no password there, the branch answers with Velo's password,
// and main and the source still hold the values.
func TestMaskedImport(t *testing.T) {
	src := harness.NewProdSource(t, 1)
	secret := "S3CRET-prod-" + fmt.Sprint(os.Getpid())
	src.SQL(`CREATE TABLE customers (id int PRIMARY KEY, email text);
		INSERT INTO customers SELECT g, '` + secret + `' || g || '@corp.example' FROM generate_series(1, 500) g;
		ANALYZE customers`)
	e := newEnv(t, "btrfs")
	e.Extra = []string{"PGPASSWORD=" + harness.SourceReplPassword}
	e.createR("prod", "--from", fmt.Sprintf("postgresql://repl@127.0.0.1:%d/postgres", src.Port))
	mask := filepath.Join(harness.TmpDir(t, "mask-"), "mask.sql")
	if err := os.WriteFile(mask, []byte("UPDATE customers SET email = 'c' || id || '@example.com';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.OK("branch", "create", "prod/m", "--mask", mask)
	got := e.Psql("prod/m", `SELECT (SELECT count(*) FROM customers WHERE email LIKE '%`+secret+`%'),
		(SELECT count(*) FROM customers WHERE email LIKE 'c%@example.com'),
		(SELECT count(*) FROM pg_stats WHERE most_common_vals::text LIKE '%`+secret+`%' OR histogram_bounds::text LIKE '%`+secret+`%'),
		(SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname <> 'postgres'),
		pg_is_in_recovery()`)
	if got != "0|500|0|0|f" {
		t.Errorf("prod/m: secret rows, masked rows, secret statistics, source roles with a password, in recovery = %s, want 0|500|0|0|f", got)
	}
	e.Psql("prod/m", "INSERT INTO customers VALUES (1000, 'new')")
	var b struct {
		DataDir string `json:"data_dir"`
		LogFile string `json:"log_file"`
		Masked  bool   `json:"masked"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "prod/m", "--json").Stdout), &b); err != nil || !b.Masked {
		t.Fatalf("branch get prod/m --json: masked %v (%v)", b.Masked, err)
	}
	e.Psql("prod/m", "CHECKPOINT")
	if out, _ := exec.Command("grep", "-rlaF", secret, filepath.Dir(b.DataDir), b.LogFile).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("the secret is in files of prod/m:\n%s", out)
	}
	assertNoSourceIn(t, b.DataDir, src.Port)
	var m struct {
		DataDir string `json:"data_dir"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", "prod/main", "--json").Stdout), &m); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("grep", "-rlaF", secret, m.DataDir).CombinedOutput(); strings.TrimSpace(string(out)) == "" {
		t.Errorf("no file of prod/main holds the secret: the search finds nothing")
	}
	if got := src.SQL("SELECT count(*) FROM customers WHERE email LIKE '%" + secret + "%'"); got != "500" {
		t.Errorf("the source has %s secret rows, want 500", got)
	}
	e.AssertDoctorHealthy()
}
