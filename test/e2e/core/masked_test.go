package core

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestMasked: a branch made with --mask holds none of main's secret value,
// neither in a query nor in any file of its volume (WAL included) or its
// archive, while main keeps it; a script with an SQL error leaves nothing.
func TestMasked(t *testing.T) {
	for _, d := range []string{"btrfs", "zfs"} {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, d)
			testMasked(e)
		})
	}
}

const maskSQL = `-- mask the users
UPDATE users SET email = 'user' || id || '@example.com',
                 notes = 'masked notes',
                 card  = 'xxxx-' || id;
`

// newSecret is a value no file holds by chance.
func newSecret(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "S3CRET" + hex.EncodeToString(b)
}

// seedSecret gives ref's users table the secret in a plain column (email),
// a TOASTed one stored uncompressed (notes), and an indexed one (card),
// with statistics that hold it (ANALYZE), all checkpointed to disk.
func seedSecret(e *env, ref, secret string) {
	e.Psql(ref, `CREATE TABLE users (id int PRIMARY KEY, email text, notes text, card text);
		ALTER TABLE users ALTER COLUMN notes SET STORAGE EXTERNAL;
		CREATE INDEX users_card ON users (card)`)
	e.Psql(ref, `INSERT INTO users SELECT i, '`+secret+`' || i || '@corp.example', repeat('`+secret+` ', 400), '`+secret+`'
		FROM generate_series(1, 300) i`)
	e.Psql(ref, "ANALYZE users")
	e.Psql(ref, "CHECKPOINT")
}

func writeFile(t testing.TB, dir, name, text string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// secretCount counts the rows and statistics of ref that show secret.
func secretCount(e *env, ref, secret string) string {
	return e.Psql(ref, `SELECT (SELECT count(*) FROM users WHERE email LIKE '%`+secret+`%' OR notes LIKE '%`+secret+`%' OR card LIKE '%`+secret+`%')
		+ (SELECT count(*) FROM pg_stats WHERE most_common_vals::text LIKE '%`+secret+`%' OR histogram_bounds::text LIKE '%`+secret+`%')`)
}

type branchFiles struct {
	DataDir string `json:"data_dir"`
	LogFile string `json:"log_file"`
	Masked  bool   `json:"masked"`
	Volume  string `json:"volume"`
}

func (e *env) branchFiles(ref string) branchFiles {
	e.T.Helper()
	var b branchFiles
	if err := json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b); err != nil || b.DataDir == "" {
		e.T.Fatalf("branch get %s --json: %v %+v", ref, err, b)
	}
	return b
}

// filesHolding lists the files under each of roots whose bytes hold s.
func filesHolding(t testing.TB, s string, roots ...string) (holding []string, read int) {
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("read %s: %v", p, err)
				return nil
			}
			read++
			if bytes.Contains(b, []byte(s)) {
				holding = append(holding, p)
			}
			return nil
		})
	}
	return holding, read
}

// archiveOf is a branch's WAL archive directory.
func (e *env) archiveOf(ref string) string {
	var infos []struct{ Directory string }
	if err := json.Unmarshal([]byte(e.OK("wal", "info", ref, "--json").Stdout), &infos); err != nil || len(infos) != 1 {
		e.T.Fatalf("wal info %s: %v %+v", ref, err, infos)
	}
	return infos[0].Directory
}

func testMasked(e *env) {
	t := e.T
	secret := newSecret(t)
	e.Create("m")
	seedSecret(e, "m/main", secret)
	dir := harness.TmpDir(t, "mask-")
	mask := writeFile(t, dir, "mask.sql", maskSQL)

	e.OK("branch", "create", "m/dev", "--mask", mask)
	if got := secretCount(e, "m/dev", secret); got != "0" {
		t.Errorf("m/dev shows the secret in %s rows or statistics", got)
	}
	if got := e.Psql("m/dev", "SELECT count(*) FROM users WHERE email LIKE 'user%@example.com' AND card LIKE 'xxxx-%'"); got != "300" {
		t.Errorf("m/dev has %s masked rows, want 300", got)
	}
	if got := e.Psql("m/dev", "SELECT count(*) FROM users WHERE card = 'xxxx-7'"); got != "1" { // through the index
		t.Errorf("the masked index finds %s rows", got)
	}
	if got := secretCount(e, "m/main", secret); got == "0" {
		t.Fatalf("main lost its secret")
	}
	b := e.branchFiles("m/dev")
	if !b.Masked {
		t.Errorf("branch get --json does not say m/dev is masked")
	}
	if r := e.OK("branch", "get", "m/dev"); !strings.Contains(r.Stdout, "Masked:     yes") {
		t.Errorf("branch get does not say masked:\n%s", r.Stdout)
	}
	// Writes on the branch go to its archive: WAL after the masking only.
	e.Psql("m/dev", "INSERT INTO users VALUES (1000, 'new', 'new', 'new'); SELECT pg_switch_wal()")
	e.Psql("m/dev", "CHECKPOINT")
	vol := filepath.Dir(b.DataDir)
	holding, read := filesHolding(t, secret, vol, e.archiveOf("m/dev"), b.LogFile)
	if len(holding) > 0 {
		t.Errorf("the secret is in %d of the %d files of m/dev's volume, archive and log: %s", len(holding), read, strings.Join(holding, ", "))
	}
	if read < 100 {
		t.Errorf("only %d files read under %s", read, vol)
	}
	mainFiles := e.branchFiles("m/main")
	if h, _ := filesHolding(t, secret, mainFiles.DataDir); len(h) == 0 {
		t.Errorf("no file of main holds the secret: the search finds nothing")
	}

	// A branch of a masked branch is masked, and no reset brings main back.
	e.OK("branch", "create", "m/dev2", "--parent", "m/dev")
	if !e.branchFiles("m/dev2").Masked || secretCount(e, "m/dev2", secret) != "0" {
		t.Errorf("m/dev2, a branch of masked m/dev, is not masked")
	}
	e.Refused([]string{"masked", "original values"}, "branch", "reset", "m/dev")
	e.OK("branch", "reset", "m/dev2") // from masked m/dev: stays masked
	if !e.branchFiles("m/dev2").Masked || secretCount(e, "m/dev2", secret) != "0" {
		t.Errorf("m/dev2 after a reset to masked m/dev is not masked")
	}

	// A script with an SQL error: its line, exit 2, nothing left.
	bad := writeFile(t, dir, "bad.sql", "UPDATE users SET email = 'x';\n\n  UPDATE nosuch SET a = 1;\n")
	e.Refused([]string{"line 3", "nosuch", "bad.sql"}, "branch", "create", "m/bad", "--mask", bad)
	div := writeFile(t, dir, "div.sql", "-- a runtime error\nUPDATE users SET id = id / 0;\n")
	e.Refused([]string{"line 2", "division by zero"}, "branch", "create", "m/bad", "--mask", div)
	commit := writeFile(t, dir, "commit.sql", "UPDATE users SET email = 'x';\nCOMMIT;\n")
	e.Refused([]string{"one transaction"}, "branch", "create", "m/bad", "--mask", commit)
	e.Refused([]string{"--mask", "no such file"}, "branch", "create", "m/bad", "--mask", filepath.Join(dir, "missing.sql"))
	empty := writeFile(t, dir, "empty.sql", "-- nothing\n")
	e.Refused([]string{"no SQL statement"}, "branch", "create", "m/bad", "--mask", empty)
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()

	// The project's default mask: a copy of the file, used by every new
	// branch of unmasked data until cleared.
	def := writeFile(t, dir, "default.sql", maskSQL)
	e.OK("project", "set", "m", "--mask", def)
	writeFile(t, dir, "default.sql", "SELECT 1;") // a later edit changes nothing
	e.OK("branch", "create", "m/def")
	if !e.branchFiles("m/def").Masked || secretCount(e, "m/def", secret) != "0" {
		t.Errorf("m/def, made with the project's default mask, is not masked")
	}
	e.OK("project", "set", "m", "--mask", "none")
	e.OK("branch", "create", "m/plain")
	if e.branchFiles("m/plain").Masked || secretCount(e, "m/plain", secret) == "0" {
		t.Errorf("m/plain, made after the default mask was cleared, is masked")
	}
	e.Refused([]string{"--mask"}, "project", "set", "m")

	// A second database: a mask that does not name it is refused (its
	// values would be copied as they are); one with \connect shop masks
	// it too, every file of the volume clean of both secrets.
	shopSecret := newSecret(t)
	e.Psql("m/main", "CREATE DATABASE shop")
	e.PsqlDB("m/main", "shop", `CREATE TABLE customers (id int PRIMARY KEY, email text);
		INSERT INTO customers SELECT i, '`+shopSecret+`' || i FROM generate_series(1, 200) i;
		ANALYZE customers; CHECKPOINT`)
	e.Refused([]string{`database "shop" of the branch is not masked`, `\connect shop`}, "branch", "create", "m/multi", "--mask", mask)
	shopOnly := writeFile(t, dir, "shoponly.sql", "\\connect shop\nUPDATE customers SET email = 'x';\n")
	e.Refused([]string{`database "postgres" of the branch is not masked`, `\connect postgres`}, "branch", "create", "m/multi", "--mask", shopOnly)
	nosuch := writeFile(t, dir, "nosuch.sql", maskSQL+"\\connect shop\nSELECT 1;\n\\c nosuch\nSELECT 1;\n")
	e.Refused([]string{"connects to database", "nosuch", "does not have"}, "branch", "create", "m/multi", "--mask", nosuch)
	badShop := writeFile(t, dir, "badshop.sql", maskSQL+"\\connect shop\nUPDATE customers SET email = 'x';\nUPDATE nosuch SET a = 1;\n")
	e.Refused([]string{"line 7", "nosuch"}, "branch", "create", "m/multi", "--mask", badShop)
	multi := writeFile(t, dir, "multi.sql", maskSQL+"\\connect shop\nUPDATE customers SET email = 'c' || id || '@example.com';\n")
	r := e.OK("branch", "create", "m/multi", "--mask", multi)
	if !strings.Contains(r.Stderr, "Run the mask script in shop") {
		t.Errorf("branch create does not show the script's part in shop:\n%s", r.Stderr)
	}
	if got := e.PsqlDB("m/multi", "shop", `SELECT (SELECT count(*) FROM customers WHERE email LIKE '%`+shopSecret+`%')
		+ (SELECT count(*) FROM pg_stats WHERE most_common_vals::text LIKE '%`+shopSecret+`%' OR histogram_bounds::text LIKE '%`+shopSecret+`%'),
		(SELECT count(*) FROM customers WHERE email LIKE 'c%@example.com')`); got != "0|200" {
		t.Errorf("m/multi's shop: secret rows and statistics, masked rows = %s, want 0|200", got)
	}
	if got := secretCount(e, "m/multi", secret); got != "0" {
		t.Errorf("m/multi shows postgres's secret in %s rows or statistics", got)
	}
	mb := e.branchFiles("m/multi")
	for _, s := range []string{secret, shopSecret} {
		if holding, _ := filesHolding(t, s, filepath.Dir(mb.DataDir), mb.LogFile); len(holding) > 0 {
			t.Errorf("a secret is in files of m/multi: %s", strings.Join(holding, ", "))
		}
	}
	if h, _ := filesHolding(t, shopSecret, e.branchFiles("m/main").DataDir); len(h) == 0 {
		t.Errorf("no file of main holds shop's secret: the search finds nothing")
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
}

// maskStringFlags are TestHostileInput's cases for --mask (branch create,
// project set): a file that cannot be read, or is not a script, is
// refused before anything changes.
var maskStringFlags = map[string]stringFlag{
	"mask": {rules: []string{"no such file or directory", "is a directory", "file name too long", "is not UTF-8 text", "holds no SQL statement"},
		extra: []string{"/dev/null", "/proc/self/environ"}},
}

// lsnStringFlags are TestHostileInput's cases for --pitr and --to, which
// (importing's TestPITRLSN tries LSNs that work)
// take an LSN as well as a time: a value with a slash is refused by the
// LSN's rule, never read as a time.
var lsnStringFlags = map[string]stringFlag{
	"pitr": {rules: lsnRules, extra: lsnExtra},
	"to":   {rules: lsnRules, extra: lsnExtra},
}

var lsnRules = []string{timeRule, "too far back", "is in the future", "two hexadecimal numbers of up to 8 digits"}

var lsnExtra = []string{"9999-12-31T00:00:00Z", "3000000000w", "99999999999 weeks ago", "-5m", "1e9d", "2025-13-45",
	"0/", "/0", "0/3000060/1", "g/1", "123456789/0", "0x0/1", "-1/0", "0 /1"}
