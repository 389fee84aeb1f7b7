package install

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestIfNotExists: a rerun CI job's create succeeds and changes nothing
// (same output contract as a create, the branch's data kept); one that
// asks for something else than what exists is refused, nothing changed.
func TestIfNotExists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	e.Create("eco")
	again := e.OK("project", "create", "eco", "--if-not-exists", "--storage", "copy")
	if !strings.Contains(again.Stdout, "Connection ready") {
		t.Errorf("project create --if-not-exists of an existing project prints its connection as create does:\n%s", again)
	}
	e.Refused([]string{"already exists with --storage copy, not btrfs", "velo project delete eco"}, "project", "create", "eco", "--if-not-exists", "--storage", "btrfs")
	e.Refused([]string{"already exists"}, "project", "create", "eco")

	type doc struct {
		Name, Parent, Volume, URL, State string
		Port                             int
		CreatedAt                        string `json:"created_at"`
	}
	read := func(r harness.Result) doc {
		t.Helper()
		var d doc
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			t.Fatalf("not one JSON document: %v\n%s", err, r)
		}
		return d
	}
	first := read(e.OK("branch", "create", "eco/dev", "--json"))
	e.Psql("eco/dev", `CREATE TABLE work (v int); INSERT INTO work VALUES (7)`)
	second := read(e.OK("branch", "create", "eco/dev", "--if-not-exists", "--json"))
	if first != second {
		t.Errorf("create --if-not-exists changed the branch:\nfirst  %+v\nsecond %+v", first, second)
	}
	if got := e.Rows("eco/dev", "SELECT v FROM work"); got != "7" {
		t.Errorf("the existing branch's rows after create --if-not-exists: %q, want 7", got)
	}
	text := e.OK("branch", "create", "eco/dev", "--if-not-exists")
	if !strings.Contains(text.Stdout, "Connection ready") || !strings.Contains(text.Stderr, "already exists") {
		t.Errorf("create --if-not-exists prints the connection and says the branch was there:\n%s", text)
	}
	e.OK("branch", "create", "eco/feat", "--parent", "eco/dev")
	e.Refused([]string{"already exists with parent eco/dev, not eco/main", "velo branch delete eco/feat"}, "branch", "create", "eco/feat", "--if-not-exists")
	e.OK("branch", "create", "eco/feat", "--parent", "eco/dev", "--if-not-exists")

	// The names just made complete at TAB in bash.
	if got := completeBash(t, e, "branch get eco/"); got != "eco/dev eco/feat eco/main" {
		t.Errorf("velo branch get eco/<TAB>: %q", got)
	}
	if got := completeBash(t, e, "project delete "); got != "eco" {
		t.Errorf("velo project delete <TAB>: %q", got)
	}
}

// TestLibpqConventions: a branch of the longest names the rule allows is
// reached by the real psql through eval "$(velo branch env)", a .env
// file, DATABASE_URL from --format json, and psql service=NAME after
// velo service-file --write, which keeps the user's own entries and puts
// no password in the service file; a file Velo cannot parse is refused
// with its line and left as it was; a missing branch is exit 2.
func TestLibpqConventions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	project := strings.Repeat("p", 31) + "-_" + strings.Repeat("9", 30)
	branch := strings.Repeat("b", 31) + "_-" + strings.Repeat("0", 30)
	ref := project + "/" + branch
	e.Create(project)
	e.OK("branch", "create", ref)
	e.Psql(ref, `CREATE TABLE here (v text); INSERT INTO here VALUES ('on the branch')`)
	home := harness.TmpDir(t, "velo-user-home-")
	e.Extra = append(e.Extra, "HOME="+home)
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", "set -eu\n"+script)
		cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home, "HOME="+home, "VELO="+harness.VeloBin, "PGCONNECT_TIMEOUT=5")
		cmd.Dir = home
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", script, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	const q = `psql -X -At -c "SELECT v || ' ' || current_setting('ssl') FROM here"`
	want := "on the branch on"
	if got := sh(`eval "$("$VELO" branch env ` + ref + `)"; ` + q); got != want {
		t.Errorf("eval branch env, psql: %q, want %q", got, want)
	}
	if got := sh(`"$VELO" branch env ` + ref + ` --format dotenv > .env; set -a; . ./.env; set +a; ` + q); got != want {
		t.Errorf(".env, psql: %q, want %q", got, want)
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(e.OK("branch", "env", ref, "--format", "json").Stdout), &vars); err != nil || vars["PGPORT"] == "" || vars["PGSSLROOTCERT"] == "" {
		t.Fatalf("--format json: %v %v", vars, err)
	}
	if got := sh(`psql -X -At "` + vars["DATABASE_URL"] + `" -c "SELECT v FROM here"`); got != "on the branch" {
		t.Errorf("DATABASE_URL, psql: %q", got)
	}

	svc, pass := filepath.Join(home, ".pg_service.conf"), filepath.Join(home, ".pgpass")
	mine := "# my own\n[prod]\nhost=db.example.com\nport=5432\n"
	minePass := "db.example.com:5432:*:me:secret\n"
	if err := os.WriteFile(svc, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pass, []byte(minePass), 0o600); err != nil {
		t.Fatal(err)
	}
	printed := e.OK("service-file", ref).Stdout
	service := project + "-" + branch
	if !strings.Contains(printed, "["+service+"]\n") || !strings.Contains(printed, "sslrootcert=") {
		t.Errorf("service-file prints the section:\n%s", printed)
	}
	e.OK("service-file", "--write")
	e.OK("service-file", "--write") // a rewrite replaces the block, not adds one
	if got := sh(`psql -X -At "service=` + service + `" -c "SELECT v || ' ' || current_setting('ssl') FROM here"`); got != want {
		t.Errorf("psql service=%s: %q, want %q", service, got, want)
	}
	svcData, _ := os.ReadFile(svc)
	passData, _ := os.ReadFile(pass)
	password := e.Conn(ref).Password
	switch {
	case !strings.HasPrefix(string(svcData), mine) || strings.Count(string(svcData), "["+service+"]") != 1:
		t.Errorf("the service file keeps the user's entries, and Velo's once:\n%s", svcData)
	case strings.Contains(string(svcData), password) || strings.Contains(string(svcData), "password"):
		t.Errorf("the service file holds a password:\n%s", svcData)
	case !strings.HasSuffix(string(passData), minePass) || strings.Count(string(passData), password) != 2:
		t.Errorf("the password file keeps the user's line and has main's and the branch's:\n%s", passData)
	}
	if fi, err := os.Stat(pass); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("~/.pgpass mode %v %v, want 0600", fi.Mode().Perm(), err)
	}

	broken := string(svcData) + "not a setting\n"
	if err := os.WriteFile(svc, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Refused([]string{svc, "not a setting", "changed nothing"}, "service-file", "--write")
	if after, _ := os.ReadFile(svc); string(after) != broken {
		t.Errorf("a refused write changed the service file:\n%s", after)
	}
	if after, _ := os.ReadFile(pass); string(after) != string(passData) {
		t.Errorf("a refused write changed the password file:\n%s", after)
	}
	e.Refused([]string{"does not exist"}, "branch", "env", project+"/nope")
	e.Refused([]string{"does not exist"}, "service-file", project+"/nope")
	e.Refused([]string{"shell, dotenv or json"}, "branch", "env", ref, "--format", "yaml")
}

// TestVersion: velo --version and velo version --json say what the build
// information of the binary says (go version -m reads it).
func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "version", "-m", harness.VeloBin).Output()
	if err != nil {
		t.Fatal(err)
	}
	stamped := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "build" {
			k, v, _ := strings.Cut(f[1], "=")
			stamped[k] = v
		}
	}
	var v struct {
		Version, Commit, Go string
		Modified            bool
	}
	r, err := exec.Command(harness.VeloBin, "version", "--json").Output()
	if err != nil || json.Unmarshal(r, &v) != nil {
		t.Fatalf("velo version --json: %v\n%s", err, r)
	}
	if v.Version == "" || v.Commit != stamped["vcs.revision"] || v.Modified != (stamped["vcs.modified"] == "true") || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("velo version --json = %+v; the build information has %v", v, stamped)
	}
	line, err := exec.Command(harness.VeloBin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(line), "velo "+v.Version) || !strings.Contains(string(line), v.Commit) {
		t.Errorf("velo --version = %q (%v), want the version and commit of %+v", line, err, v)
	}
}

// completeBash is what bash offers at TAB after line, through the script
// of velo completion bash and bash-completion, as in a user's shell.
func completeBash(t *testing.T, e *env, line string) string {
	t.Helper()
	script := `source /usr/share/bash-completion/bash_completion
source <("$VELO" completion bash)
COMP_TYPE=9 COMP_LINE="$VELO $LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_velo velo 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home, "VELO="+harness.VeloBin, "LINE="+line)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash completion of %q: %v", line, err)
	}
	return strings.TrimSpace(string(out))
}

// TestCIRecipe runs scripts/ci-branch.sh as a CI system would for pull
// request 7: open with the migrations and the tests, the same job again
// (a rerun, which finds the branch and its data), then close, twice, and
// finds nothing left: no branch, no server on its port.
func TestCIRecipe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	e.Create("app")
	e.Psql("app/main", `CREATE TABLE users (name text); INSERT INTO users VALUES ('alice')`)
	script, err := filepath.Abs("../../../scripts/ci-branch.sh")
	if err != nil {
		t.Fatal(err)
	}
	ci := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "VELO_HOME="+e.Home, "VELO="+harness.VeloBin, "PGCONNECT_TIMEOUT=5")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ci-branch.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The app's migrations and tests, as a CI job runs them: psql with no
	// connection settings of its own, reading the PG* variables.
	job := `psql -X -v ON_ERROR_STOP=1 -q -c 'CREATE TABLE IF NOT EXISTS orders (id serial, who text)' &&
		psql -X -v ON_ERROR_STOP=1 -q -c "INSERT INTO orders (who) SELECT name FROM users" &&
		psql -X -At -c 'SELECT count(*) FROM orders'`
	if out := ci("open", "7", "--", "sh", "-c", job); !strings.HasSuffix(strings.TrimSpace(out), "1") {
		t.Errorf("first run: the tests saw %q, want 1 order", out)
	}
	port := e.Conn("app/pr-7").Port
	if out := ci("open", "7", "--", "sh", "-c", job); !strings.HasSuffix(strings.TrimSpace(out), "2") || !strings.Contains(out, "already exists") {
		t.Errorf("rerun: the same branch, its data kept, is used: %q", out)
	}
	if got := e.Rows("app/main", "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"); got != "0" {
		t.Errorf("the migrations reached main")
	}
	ci("close", "7")
	if out := ci("close", "7"); !strings.Contains(out, "nothing to delete") {
		t.Errorf("a second close: %q", out)
	}
	if got := strings.TrimSpace(e.OK("branch", "list", "app", "-q").Stdout); got != "app/main" {
		t.Errorf("branches left after close: %q", got)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("a server still answers on the closed branch's port %d", port)
	}
	cmd := exec.Command(script, "open", "7; rm -rf /")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "must be digits") {
		t.Errorf("a bad pull request number: %v %s", err, out)
	}
}
