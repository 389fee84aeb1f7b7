package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIfNotExists: a rerun CI job's create succeeds and changes nothing
// (same output contract as a create, the branch's data kept); one that
// asks for something else than what exists is refused, nothing changed.
func TestIfNotExists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "copy")
	e.create("eco")
	again := e.ok("project", "create", "eco", "--if-not-exists", "--storage", "copy")
	if !strings.Contains(again.stdout, "Connection ready") {
		t.Errorf("project create --if-not-exists of an existing project prints its connection as create does:\n%s", again)
	}
	e.refused([]string{"already exists with --storage copy, not btrfs", "velo project delete eco"}, "project", "create", "eco", "--if-not-exists", "--storage", "btrfs")
	e.refused([]string{"already exists"}, "project", "create", "eco")

	type doc struct {
		Name, Parent, Volume, URL, State string
		Port                             int
		CreatedAt                        string `json:"created_at"`
	}
	read := func(r result) doc {
		t.Helper()
		var d doc
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("not one JSON document: %v\n%s", err, r)
		}
		return d
	}
	first := read(e.ok("branch", "create", "eco/dev", "--json"))
	e.psql("eco/dev", `CREATE TABLE work (v int); INSERT INTO work VALUES (7)`)
	second := read(e.ok("branch", "create", "eco/dev", "--if-not-exists", "--json"))
	if first != second {
		t.Errorf("create --if-not-exists changed the branch:\nfirst  %+v\nsecond %+v", first, second)
	}
	if got := e.rows("eco/dev", "SELECT v FROM work"); got != "7" {
		t.Errorf("the existing branch's rows after create --if-not-exists: %q, want 7", got)
	}
	text := e.ok("branch", "create", "eco/dev", "--if-not-exists")
	if !strings.Contains(text.stdout, "Connection ready") || !strings.Contains(text.stderr, "already exists") {
		t.Errorf("create --if-not-exists prints the connection and says the branch was there:\n%s", text)
	}
	e.ok("branch", "create", "eco/feat", "--parent", "eco/dev")
	e.refused([]string{"already exists with parent eco/dev, not eco/main", "velo branch delete eco/feat"}, "branch", "create", "eco/feat", "--if-not-exists")
	e.ok("branch", "create", "eco/feat", "--parent", "eco/dev", "--if-not-exists")
}
