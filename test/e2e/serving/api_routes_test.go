package serving

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sameJSON reports whether two JSON documents hold the same values.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// TestAPIRoutes: the endpoints of velo diff and velo branch restore
// against real Postgres on btrfs, the same documents and refusals as the
// CLI; and velo token list and revoke against a running velo serve (a
// revoked token is refused at its next call).
func TestAPIRoutes(t *testing.T) {
	e := newEnv(t, "btrfs")
	e.Create("demo")
	e.Psql("demo/main", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two')")
	e.OK("branch", "create", "demo/dev")
	e.Psql("demo/dev", "INSERT INTO t VALUES (3, 'three'); UPDATE t SET v = 'uno' WHERE id = 1")
	s := e.serveAPI()

	// diff: what velo diff --json prints, with and without another branch.
	got := s.ok("GET", "/api/v1/branches/demo/dev/diff?rows=5", "")
	if want := e.OK("diff", "demo/dev", "--rows", "5", "--json").Stdout; !sameJSON(t, got, want) {
		t.Errorf("GET .../diff?rows=5:\n%s\nvelo diff --rows 5 --json:\n%s", got, want)
	}
	var d struct{ Same bool }
	json.Unmarshal([]byte(got), &d)
	if d.Same || !strings.Contains(got, `"rows_added": 1`) || !strings.Contains(got, `"rows_changed": 1`) || !strings.Contains(got, "public.t") {
		t.Errorf("the diff of demo/dev does not show one row added and one changed in public.t:\n%s", got)
	}
	got = s.ok("GET", "/api/v1/branches/demo/dev/diff?other=demo/main&schema_only=true", "")
	if want := e.OK("diff", "demo/dev", "demo/main", "--schema-only", "--json").Stdout; !sameJSON(t, got, want) {
		t.Errorf("GET .../diff?other=demo/main&schema_only=true:\n%s\nvelo diff demo/dev demo/main --schema-only --json:\n%s", got, want)
	}
	ro := strings.TrimSpace(e.OK("token", "create", "--read-only").Stdout)
	rule := func(args ...string) string {
		r := e.Run(args...)
		if r.Code != 2 {
			t.Fatalf("velo %s: %s", strings.Join(args, " "), r)
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		return jsonText(strings.TrimPrefix(lines[len(lines)-1], "velo: "))
	}
	s.refused(400, rule("diff", "demo/dev", "--table", "a.b.c.d"), s.token, "GET", "/api/v1/branches/demo/dev/diff?table=a.b.c.d", "")
	s.refused(400, rule("diff", "demo/dev", "Bad!"), s.token, "GET", "/api/v1/branches/demo/dev/diff?other="+url.QueryEscape("Bad!"), "")
	s.refused(400, "--schema-only and --data-only exclude each other", s.token, "GET", "/api/v1/branches/demo/dev/diff?schema_only=true&data_only=true", "")
	s.refused(404, "does not exist", s.token, "GET", "/api/v1/branches/demo/nothing/diff", "")
	s.refused(403, "read-only", ro, "GET", "/api/v1/branches/demo/dev/diff", "")

	// restore: to a snapshot of the branch, the replaced state kept as a
	// branch; then to a snapshot with discard.
	snap := strings.TrimSpace(e.OK("snapshot", "create", "demo/dev", "--label", "three rows").Stdout)
	e.Psql("demo/dev", "DELETE FROM t")
	s.refused(400, rule("branch", "restore", "demo/dev", "--to", "yesterday-ish"), s.token, "POST", "/api/v1/branches/demo/dev/restore", `{"to":"yesterday-ish"}`)
	s.refused(412, "is before the oldest snapshot of demo/dev; the earliest reachable moment is", s.token, "POST", "/api/v1/branches/demo/dev/restore", `{"to":"2000-01-01T00:00:00Z"}`)
	s.refused(404, "no snapshot", s.token, "POST", "/api/v1/branches/demo/dev/restore", `{"snapshot":"zzzz"}`)
	s.refused(403, "read-only", ro, "POST", "/api/v1/branches/demo/dev/restore", `{"snapshot":"`+snap+`"}`)
	s.refused(400, `unknown field \"at\"`, s.token, "POST", "/api/v1/branches/demo/dev/restore", `{"at":"1h ago"}`)
	port := e.BranchPort("demo/dev")
	var res struct {
		Restored struct{ Name string }
		Kept     *struct{ Name string }
		SnapID   string `json:"snapshot_id"`
	}
	if err := json.Unmarshal([]byte(s.ok("POST", "/api/v1/branches/demo/dev/restore", `{"snapshot":"`+snap[:6]+`","name":"dev-before"}`)), &res); err != nil {
		t.Fatal(err)
	}
	if res.Restored.Name != "demo/dev" || res.Kept == nil || res.Kept.Name != "demo/dev-before" || res.SnapID != snap {
		t.Errorf("restore answered %+v", res)
	}
	if got := e.Rows("demo/dev", "SELECT v FROM t ORDER BY id"); got != "uno,two,three" || e.BranchPort("demo/dev") != port {
		t.Errorf("demo/dev after restore: %q on port %d (was %d)", got, e.BranchPort("demo/dev"), port)
	}
	if got := e.Rows("demo/dev-before", "SELECT count(*) FROM t"); got != "0" {
		t.Errorf("the kept state demo/dev-before has %s rows, want 0", got)
	}

	// Tokens: listed by ID, never the token; revoked, refused at once.
	list := e.OK("token", "list", "--json").Stdout
	var toks []struct {
		ID       string `json:"id"`
		ReadOnly bool   `json:"read_only"`
		First    bool   `json:"first"`
		Created  string `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(list), &toks); err != nil {
		t.Fatalf("token list --json: %v\n%s", err, list)
	}
	if len(toks) != 2 || !toks[0].First || toks[0].ReadOnly || !toks[1].ReadOnly || toks[1].Created == "" {
		t.Fatalf("token list --json: %s", list)
	}
	text := e.OK("token", "list").Stdout
	for _, secret := range []string{s.token, ro, strings.TrimPrefix(ro, "velo_")[:16]} {
		if strings.Contains(list, secret) || strings.Contains(text, secret) {
			t.Errorf("token list shows a token:\n%s\n%s", text, list)
		}
	}
	if !strings.Contains(text, toks[1].ID) || !strings.Contains(text, "read-only") {
		t.Errorf("token list:\n%s", text)
	}
	if st, _ := s.call(ro, "GET", "/api/v1/status", ""); st != 200 {
		t.Fatalf("the read-only token before revoke: %d", st)
	}
	e.Refused([]string{"no token has an ID starting with"}, "token", "revoke", "ffff0000")
	r := e.OK("token", "revoke", toks[1].ID[:6])
	if !strings.Contains(r.Stdout, "Revoked token "+toks[1].ID) {
		t.Errorf("token revoke: %s", r)
	}
	if st, body := s.call(ro, "GET", "/api/v1/status", ""); st != 401 {
		t.Errorf("the revoked token, with velo serve running since before: %d %s, want 401", st, body)
	}
	if st, _ := s.call(s.token, "GET", "/api/v1/status", ""); st != 200 {
		t.Errorf("the other token after a revoke: %d", st)
	}
	if fi, err := os.Stat(filepath.Join(e.Home, "api", "tokens")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("api/tokens after revoke: %v %v, want 0600", fi, err)
	}
	if list := e.OK("token", "list", "--json").Stdout; strings.Contains(list, toks[1].ID) {
		t.Errorf("the revoked token is still listed: %s", list)
	}
}
