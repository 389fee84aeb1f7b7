package core

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/cli"
)

// TestJSONOutput runs every command that takes --json on a real home (copy
// storage, a point-in-time branch among the branches) and checks the output
// contract of internal/view: stdout is one JSON document and nothing else;
// every key at every depth is snake_case (read from the raw document, not
// decoded case-insensitively); branch and parent are PROJECT/BRANCH; a
// *_bytes key is an integer; a time parses as RFC 3339; no progress on
// stderr. It also checks what the text output of the same home shows to
// scripts and people: tables without borders when piped, -q names only,
// and branch get's paths and PITR target.
func TestJSONOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	// Every command that takes --json must be run below.
	root := cli.NewRoot(&cli.Globals{Stdout: io.Discard, Stderr: io.Discard})
	ran := map[*cobra.Command]bool{}
	defer func() {
		walk(root, func(c *cobra.Command) {
			// snapshot push needs a bucket: TestSecondHost checks its --json.
			if !c.HasSubCommands() && c.Flags().Lookup("json") != nil && !ran[c] && c.CommandPath() != "velo snapshot push" {
				t.Errorf("%s takes --json but TestJSONOutput does not run it", c.CommandPath())
			}
		})
	}()
	check := func(want int, args ...string) any {
		t.Helper()
		if c, _, err := root.Find(args); err == nil {
			ran[c] = true
		}
		r := e.Run(append(args, "--json")...)
		show := "velo " + strings.Join(args, " ") + " --json"
		if r.Code != want {
			t.Fatalf("%s: want exit %d: %s", show, want, r)
		}
		dec := json.NewDecoder(strings.NewReader(r.Stdout))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: stdout is not JSON: %v\n%s", show, err, r.Stdout)
		}
		if dec.More() {
			t.Errorf("%s: more than one document on stdout:\n%s", show, r.Stdout)
		}
		if strings.Contains(r.Stderr, "▸") {
			t.Errorf("%s: progress on stderr:\n%s", show, r.Stderr)
		}
		checkKeys(t, show, "", doc)
		return doc
	}
	obj := func(doc any) map[string]any {
		t.Helper()
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("document is %T, want an object", doc)
		}
		return m
	}

	// The changing commands that take --json print what they made.
	if p := obj(check(0, "project", "create", "j", "--pool", e.Pool, "--storage", "copy")); p["name"] != "j" || len(p["branch_list"].([]any)) != 1 {
		t.Errorf("project create --json = %v", p)
	}
	if b := obj(check(0, "branch", "create", "j/dev")); b["name"] != "j/dev" || b["parent"] != "j/main" || b["state"] != "running" {
		t.Errorf("branch create --json = %v", b)
	} else if _, sized := b["exclusive_bytes"]; sized {
		// The sizes walk the branch's files on this driver: branch get
		// has them, a create does not wait for them.
		t.Errorf("branch create --json computed the sizes: %v", b)
	}
	if b := obj(check(0, "branch", "get", "j/dev")); b["exclusive_bytes"] == nil || b["referenced_bytes"] == nil {
		t.Errorf("branch get --json has no sizes: %v", b)
	}
	snap := obj(check(0, "snapshot", "create", "j/main", "--label", "base"))
	time.Sleep(1100 * time.Millisecond)
	e.Psql("j/main", "CREATE TABLE t AS SELECT 1 AS v")
	target := time.Now().UTC()
	at := obj(check(0, "branch", "create", "j/at", "--pitr", target.Format(time.RFC3339Nano)))
	pitr, _ := at["pitr"].(map[string]any)
	if pitr == nil || pitr["source_snapshot"] != snap["id"] {
		t.Errorf("branch create --pitr --json: pitr = %v, want source snapshot %v", at["pitr"], snap["id"])
	} else if got, _ := time.Parse(time.RFC3339Nano, pitr["target"].(string)); !got.Equal(target) {
		t.Errorf("pitr target %v, want %s", pitr["target"], target.Format(time.RFC3339Nano))
	}
	for _, k := range []string{"data_dir", "socket_dir", "log_file"} {
		if s, _ := at[k].(string); !strings.HasPrefix(s, "/") {
			t.Errorf("branch create --json: %s = %v, want a path", k, at[k])
		}
	}
	if b := obj(check(0, "branch", "stop", "j/dev")); b["state"] != "stopped" {
		t.Errorf("branch stop --json: state %v", b["state"])
	}
	for _, args := range [][]string{{"branch", "start", "j/dev"}, {"branch", "restart", "j/dev"}, {"branch", "reset", "j/dev"}} {
		if b := obj(check(0, args...)); b["name"] != "j/dev" || b["state"] != "running" {
			t.Errorf("%v --json = %v", args, b)
		}
	}
	check(0, "branch", "start", "--all")
	// The lifecycle verbs print the branch.
	if b := obj(check(0, "branch", "protect", "j/dev")); b["protected"] != true {
		t.Errorf("branch protect --json = %v", b)
	}
	if b := obj(check(0, "branch", "unprotect", "j/dev")); b["protected"] != false {
		t.Errorf("branch unprotect --json = %v", b)
	}
	if b := obj(check(0, "branch", "set", "j/dev", "--ttl", "2h")); b["expires_at"] == nil || b["expires_in_seconds"] == nil {
		t.Errorf("branch set --ttl --json = %v", b)
	}
	if pr := obj(check(0, "prune", "--dry-run")); pr["dry_run"] != true || len(pr["deleted"].([]any)) != 0 {
		t.Errorf("prune --dry-run --json = %v", pr)
	}
	check(0, "branch", "set", "j/dev", "--no-expiry")
	// The idle timeout under velo serve: the project's default reaches
	// branches but main; a branch's own wins.
	if p := obj(check(0, "project", "set", "j", "--idle", "10m")); fmt.Sprint(p["idle_timeout_seconds"]) != "600" {
		t.Errorf("project set --idle --json = %v", p)
	}
	if b := obj(check(0, "branch", "get", "j/dev")); fmt.Sprint(b["idle_timeout_seconds"]) != "600" || b["idle_from"] != "project" || b["router_url"] != "postgresql://postgres:***@127.0.0.1:6543/j%2Fdev" {
		t.Errorf("branch get --json after project set --idle = %v", b)
	}
	if b := obj(check(0, "branch", "set", "j/dev", "--idle", "never")); fmt.Sprint(b["idle_timeout_seconds"]) != "0" || b["idle_from"] != "branch" {
		t.Errorf("branch set --idle never --json = %v", b)
	}

	// Every read command.
	for _, args := range [][]string{
		{"status"}, {"status", "--size"}, {"project", "list"}, {"project", "get", "j"},
		{"branch", "list"}, {"branch", "list", "j", "--size"}, {"branch", "get", "j/at"}, {"branch", "password", "j/main"},
		{"snapshot", "list"}, {"snapshot", "list", "j/main"},
		{"wal", "info"}, {"wal", "info", "j"}, {"wal", "info", "j/main"},
		{"snapshot", "cleanup", "j/main", "--days", "36500", "--dry-run"},
		{"wal", "cleanup", "j/main", "--days", "36500", "--dry-run"},
		// No archive in object storage here (TestObjectArchive has one):
		// push has nothing to do, set none changes nothing.
		{"wal", "push"}, {"project", "set", "j", "--archive", "none"},
		{"doctor"}, {"doctor", "--repair", "--dry-run"}, {"version"}, {"doctor", "--rebuild-state", "--force", "--dry-run"},
		{"diff", "j/dev", "--rows", "2", "--grants"}, {"diff", "j/main", "j/dev"}, {"token", "list"},
	} {
		check(0, args...)
	}
	st := obj(check(0, "status"))
	pool := obj(st["pools"].([]any)[0])
	for _, k := range []string{"name", "storage", "health", "size_bytes", "used_bytes", "free_bytes"} {
		if _, ok := pool[k]; !ok {
			t.Errorf("status --json pool lacks %s: %v", k, pool)
		}
	}

	// Text: what branch get shows of a point-in-time branch.
	r := e.OK("branch", "get", "j/at")
	for _, want := range []string{"PITR:", "from snapshot " + snap["id"].(string), "Data:", "/pgdata", "Sockets:", "Log:", ".log"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("branch get lacks %q:\n%s", want, r.Stdout)
		}
	}
	// Piped, tables have no borders; -q lists names alone.
	for _, args := range [][]string{{"status"}, {"branch", "list"}, {"project", "list"}, {"snapshot", "list"}} {
		if r := e.OK(args...); strings.ContainsAny(r.Stdout, "│─┌└") {
			t.Errorf("velo %v piped draws borders:\n%s", args, r.Stdout)
		}
	}
	if r := e.OK("branch", "list", "j", "-q"); r.Stdout != "j/main\nj/dev\nj/at\n" {
		t.Errorf("branch list -q = %q", r.Stdout)
	}
	if r := e.OK("project", "list", "--quiet"); r.Stdout != "j\n" {
		t.Errorf("project list --quiet = %q", r.Stdout)
	}
	if r := e.OK("snapshot", "list", "-q"); !strings.Contains(r.Stdout, snap["id"].(string)+"\n") || strings.Contains(r.Stdout, " ") {
		t.Errorf("snapshot list -q = %q", r.Stdout)
	}

	// stop --all stops every branch, and start --all then leaves them.
	stopped := check(0, "branch", "stop", "--all").([]any)
	if len(stopped) != 3 {
		t.Errorf("stop --all reported %v", stopped)
	}
	for _, b := range e.BranchList() {
		if b.State != "stopped" {
			t.Errorf("after stop --all %s is %s", b.Name, b.State)
		}
	}
	if rs := check(0, "branch", "start", "--all").([]any); len(rs) != 0 {
		t.Errorf("start --all after stop --all started %v", rs)
	}

	// Rename and promote print what they renamed.
	if b := obj(check(0, "branch", "rename", "j/at", "j/then")); b["name"] != "j/then" {
		t.Errorf("branch rename --json = %v", b)
	}
	pr := obj(check(0, "branch", "promote", "j/dev", "--name", "before"))
	if m, old := obj(pr["main"]), obj(pr["old_main"]); m["name"] != "j/main" || old["name"] != "j/before" || old["parent"] != "j/main" || m["parent"] != nil {
		t.Errorf("branch promote --json = %v", pr)
	}
	e.OK("branch", "start", "j/then")
	e.OK("snapshot", "create", "j/then")
	time.Sleep(10 * time.Millisecond)
	rs := obj(check(0, "branch", "restore", "j/then", "--to", time.Now().UTC().Format(time.RFC3339Nano), "--name", "then-was"))
	if r, k := obj(rs["restored"]), obj(rs["kept"]); r["name"] != "j/then" || k["name"] != "j/then-was" || rs["target"] == nil {
		t.Errorf("branch restore --json = %v", rs)
	}
}

var (
	snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	refValue = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*$`)
)

// checkKeys walks doc: every key snake_case, and the values of the keys
// whose meaning is fixed of that form.
func checkKeys(t *testing.T, show, path string, doc any) {
	t.Helper()
	switch v := doc.(type) {
	case []any:
		for i, x := range v {
			checkKeys(t, show, fmt.Sprintf("%s[%d]", path, i), x)
		}
	case map[string]any:
		for k, x := range v {
			where := path + "." + k
			if !snakeKey.MatchString(k) {
				t.Errorf("%s: key %s is not snake_case", show, where)
			}
			switch {
			case k == "branch" || k == "parent":
				if s, ok := x.(string); !ok || !refValue.MatchString(s) {
					t.Errorf("%s: %s = %v, want PROJECT/BRANCH", show, where, x)
				}
			case strings.HasSuffix(k, "_bytes"):
				n, ok := x.(json.Number)
				if _, err := n.Int64(); !ok || err != nil {
					t.Errorf("%s: %s = %v, want an integer of bytes", show, where, x)
				}
			case strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "_pitr") || k == "target":
				s, _ := x.(string)
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					t.Errorf("%s: %s = %v, want an RFC 3339 time", show, where, x)
				}
			}
			checkKeys(t, show, where, x)
		}
	}
}
