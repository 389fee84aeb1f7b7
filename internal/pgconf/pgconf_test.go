package pgconf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

// longest is a branch with the longest names the rule allows, of every
// character it allows.
var longest = Target{
	Branch: strings.Repeat("a", 31) + "-_" + strings.Repeat("9", 30) + "/" + strings.Repeat("z", 31) + "_-" + strings.Repeat("0", 30),
	Host:   "localhost", Port: 65535, User: "postgres", Password: `pw'with"odd$chars\and:colons` + "`x`", Database: "postgres",
	CACert: "/home/o'neil/my files/.velo/projects/p/ca.crt",
}

// TestShellRoundTrip: what sh reads back from the export lines is each
// value exactly, however odd.
func TestShellRoundTrip(t *testing.T) {
	for _, v := range longest.Vars() {
		out, err := exec.Command("sh", "-c", Shell(longest.Vars())+`printf %s "$`+v.Name+`"`).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != v.Value {
			t.Errorf("%s: sh read %q, want %q", v.Name, out, v.Value)
		}
	}
}

func TestDotenv(t *testing.T) {
	got := Dotenv([]Var{{"PGHOST", "localhost"}, {"PGPASSWORD", `a"b$c\d`}, {"PGSSLROOTCERT", "/x y/ca.crt"}})
	want := "PGHOST=localhost\nPGPASSWORD=\"a\\\"b\\$c\\\\d\"\nPGSSLROOTCERT=\"/x y/ca.crt\"\n"
	if got != want {
		t.Errorf("dotenv:\n%s\nwant\n%s", got, want)
	}
}

// TestServiceBlockLongestNames: a section of the longest names is one
// [name] line libpq reads back, and the file parses.
func TestServiceBlockLongestNames(t *testing.T) {
	block, skipped := ServiceBlock([]Target{longest}, nil)
	if len(skipped) > 0 {
		t.Fatalf("skipped %v", skipped)
	}
	name := longest.Service()
	if !strings.Contains(block, "\n["+name+"]\n") || strings.Contains(block, "password") {
		t.Errorf("block:\n%s", block)
	}
	if _, err := ParseServices("f", []byte(block)); err != nil {
		t.Error(err)
	}
	pass := PassBlock([]Target{longest})
	if !strings.Contains(pass, `localhost:65535:*:postgres:pw'with"odd$chars\\and\:colons`) {
		t.Errorf("pgpass escapes : and \\:\n%s", pass)
	}
}

func TestMergeKeepsOthers(t *testing.T) {
	user := "# mine\n[prod]\nhost=db.example\n"
	block1, _ := ServiceBlock([]Target{{Branch: "demo/dev", Host: "localhost", Port: 1, User: "postgres", Database: "postgres"}}, nil)
	once := Merge([]byte(user), block1, false)
	if !strings.HasPrefix(string(once), user) || !strings.HasSuffix(string(once), block1) {
		t.Fatalf("first merge:\n%s", once)
	}
	block2, _ := ServiceBlock([]Target{{Branch: "demo/feat", Host: "localhost", Port: 2, User: "postgres", Database: "postgres"}}, nil)
	twice := string(Merge(append(once, "[later]\nhost=x\n"...), block2, false))
	if strings.Contains(twice, "demo-dev") || !strings.Contains(twice, "[demo-feat]") || !strings.HasPrefix(twice, user) || !strings.HasSuffix(twice, EndMark+"\n[later]\nhost=x\n") {
		t.Errorf("second merge replaces the block in place:\n%s", twice)
	}
	names, err := ParseServices("f", []byte(twice))
	if err != nil || !names["prod"] || !names["later"] || names["demo-feat"] {
		t.Errorf("names outside the block %v, %v", names, err)
	}
	// The password file's block goes first: libpq takes the first match.
	if got := string(Merge([]byte("*:*:*:postgres:old\n"), "B\n", true)); got != "B\n*:*:*:postgres:old\n" {
		t.Errorf("pgpass merge %q", got)
	}
}

// TestServiceBlockSkips: a name the user's file has, or two branches
// share, is left out rather than shadowed or doubled.
func TestServiceBlockSkips(t *testing.T) {
	ts := []Target{{Branch: "a-b/c"}, {Branch: "a/b-c"}, {Branch: "demo/dev"}}
	block, skipped := ServiceBlock(ts, map[string]bool{"demo-dev": true})
	if strings.Count(block, "[a-b-c]") != 1 || strings.Contains(block, "[demo-dev]") || len(skipped) != 2 {
		t.Errorf("skipped %v\n%s", skipped, block)
	}
}

func TestParseServicesRefuses(t *testing.T) {
	for _, bad := range []string{
		"[ok]\nhost=x\nthis is not a setting\n",
		"host=x\n",
		"[unclosed\n",
		BeginMark + "\n[a]\nhost=x\n",
		EndMark + "\n",
	} {
		_, err := ParseServices("/home/u/.pg_service.conf", []byte(bad))
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "/home/u/.pg_service.conf") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	_, err := ParseServices("f", []byte("[ok]\nhost=x\nthis is not a setting\n"))
	if err == nil || !strings.Contains(err.Error(), `line 3`) || !strings.Contains(err.Error(), `this is not a setting`) {
		t.Errorf("the refusal quotes the line: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.conf")
	link := filepath.Join(dir, ".pg_service.conf")
	if err := os.WriteFile(real, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	path, data, perm, err := ReadFile(link, 0o644)
	if err != nil || path != real || string(data) != "old" || perm != 0o640 {
		t.Fatalf("ReadFile: %s %q %v %v", path, data, perm, err)
	}
	if err := WriteAtomic(path, []byte("new"), perm); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(link)
	fi, _ := os.Lstat(link)
	st, _ := os.Stat(real)
	if string(got) != "new" || fi.Mode()&os.ModeSymlink == 0 || st.Mode().Perm() != 0o640 {
		t.Errorf("after write: %q, link kept %v, perm %v", got, fi.Mode()&os.ModeSymlink != 0, st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*velo-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
