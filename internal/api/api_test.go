package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

// TestOpenAPI: openapi.json is the document the routes make, and names
// every route's method and path.
func TestOpenAPI(t *testing.T) {
	want, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("VELO_UPDATE_OPENAPI") != "" {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want, openAPIJSON) {
		t.Fatal("openapi.json is not what the routes make; run VELO_UPDATE_OPENAPI=1 go test ./internal/api -run TestOpenAPI")
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range append(routes, extraRoutes...) {
		if doc.Paths[r.path][strings.ToLower(r.method)] == nil {
			t.Errorf("openapi.json lacks %s %s", r.method, r.path)
		}
	}
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if n != len(routes)+len(extraRoutes) {
		t.Errorf("openapi.json has %d operations, the routes %d", n, len(routes)+len(extraRoutes))
	}
}

// recorder is a Runner that records the command line it is given and
// answers with out or err.
type recorder struct {
	args []string
	out  string
	err  error
}

func (r *recorder) run(_ context.Context, args []string, stdout, stderr io.Writer) error {
	r.args = args
	io.WriteString(stderr, "  ▸ Clone   0.1s\nwarning: careful\n")
	io.WriteString(stdout, r.out)
	return r.err
}

func testServer(t *testing.T, rec *recorder) (*httptest.Server, string, string) {
	a := NewAuth(t.TempDir(), false)
	full, err := a.CreateToken(RoleFull)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := a.CreateToken(RoleReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(rec.run, a))
	t.Cleanup(srv.Close)
	return srv, full, ro
}

func call(t *testing.T, srv *httptest.Server, tok, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestCommandLines: a route's path, body and query make the command line
// the CLI would be given, with "--" before the names.
func TestCommandLines(t *testing.T) {
	rec := &recorder{out: `{"name":"d/x"}`}
	srv, full, _ := testServer(t, rec)
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/projects/d/branches", `{"name":"x","pitr":"2 hours ago","new_password":true,"new_password":false}`, "branch create --json --pitr=2 hours ago -- d/x"},
		{"POST", "/api/v1/projects/d/branches", `{"name":"-x","parent":"--force"}`, "branch create --json --parent=--force -- d/-x"},
		{"POST", "/api/v1/branches/d/x/rename", `{"new_name":"y"}`, "branch rename --json -- d/x d/y"},
		{"DELETE", "/api/v1/branches/d/x?force=true", ``, "branch delete --force -- d/x"},
		{"POST", "/api/v1/projects", `{"name":"p","database":["a","b"],"pg_version":17}`, "project create --json --pg-version=17 --database=a --database=b -- p"},
		{"POST", "/api/v1/projects/p/rename", `{"new_name":"q"}`, "project rename -- p q"},
		{"GET", "/api/v1/status?size=true", ``, "status --json --size --"},
		{"POST", "/api/v1/branches/d/x/promote", `{"name":"old"}`, "branch promote --json --name=old -- d/x"},
		{"POST", "/api/v1/branches/d/x/restore", `{"to":"10m ago","discard":true}`, "branch restore --json --to=10m ago --discard -- d/x"},
		{"POST", "/api/v1/branches/d/x/restore", `{"snapshot":"s1f0","name":"kept"}`, "branch restore --json --snapshot=s1f0 --name=kept -- d/x"},
		{"GET", "/api/v1/branches/d/x/diff", ``, "diff --json -- d/x"},
		{"GET", "/api/v1/branches/d/x/diff?database=app", ``, "diff --json --database=app -- d/x"},
		{"GET", "/api/v1/branches/d/x/diff?other=d/y&table=a&table=s.b&rows=3&schema_only=true", ``, "diff --json --schema-only --table=a --table=s.b --rows=3 -- d/x d/y"},
		{"GET", "/api/v1/branches/d/x/diff?other=--force", ``, "diff --json -- d/x --force"},
	} {
		rec.args = nil
		st, body := call(t, srv, full, c.method, c.path, c.body)
		if st >= 300 || strings.Join(rec.args, " ") != c.want {
			t.Errorf("%s %s %s: %d %s; ran %q, want %q", c.method, c.path, c.body, st, body, strings.Join(rec.args, " "), c.want)
		}
	}
}

// TestBadRequests: what is refused before any command runs.
func TestBadRequests(t *testing.T) {
	rec := &recorder{out: "{}"}
	srv, full, ro := testServer(t, rec)
	for _, c := range []struct {
		tok, method, path, body string
		status                  int
		want                    string
	}{
		{"", "GET", "/api/v1/status", "", 401, "missing or wrong token"},
		{"velo_wrong", "GET", "/api/v1/status", "", 401, "missing or wrong token"},
		{ro, "POST", "/api/v1/projects/d/branches", `{"name":"x"}`, 403, "read-only"},
		{ro, "GET", "/api/v1/branches/d/x/password", "", 403, "read-only"},
		{ro, "GET", "/api/v1/branches/d/x/diff", "", 403, "read-only"},
		{ro, "POST", "/api/v1/branches/d/x/restore", `{"to":"1h ago"}`, 403, "read-only"},
		{full, "GET", "/api/v1/branches/d/x/diff?rows=many", "", 400, "must be an integer"},
		{full, "GET", "/api/v1/branches/d/x/diff?other=a&other=b", "", 400, "given 2 times"},
		{full, "POST", "/api/v1/projects/d/branches", `{"name":`, 400, "not a JSON object"},
		{full, "POST", "/api/v1/projects/d/branches", `["x"]`, 400, "not a JSON object"},
		{full, "POST", "/api/v1/projects/d/branches", `{"name":"x","colour":"red"}`, 400, `unknown field \"colour\"`},
		{full, "POST", "/api/v1/projects/d/branches", `{"name":7}`, 400, `field \"name\" must be a string`},
		{full, "POST", "/api/v1/projects/d/branches", `{"name":"` + strings.Repeat("a", maxBody) + `"}`, 400, "larger than"},
		{full, "POST", "/api/v1/projects/d/branches?name=x", `{}`, 400, "JSON body, not the query"},
		{full, "GET", "/api/v1/status?token=abc", "", 400, "never in a URL"},
		{full, "GET", "/api/v1/status?colour=red", "", 400, `unknown parameter \"colour\"`},
		{full, "GET", "/api/v1/status?size=maybe", "", 400, "true or false"},
		{full, "GET", "/api/v1/nothing", "", 404, "no endpoint"},
	} {
		rec.args = nil
		st, body := call(t, srv, c.tok, c.method, c.path, c.body)
		if st != c.status || !strings.Contains(body, c.want) || rec.args != nil {
			t.Errorf("%s %s %.40s: %d %s (ran %v); want %d %q and nothing run", c.method, c.path, c.body, st, body, rec.args, c.status, c.want)
		}
	}
}

// TestErrorKinds: a command's error answers with its kind's status and
// the command's own message.
func TestErrorKinds(t *testing.T) {
	rec := &recorder{}
	srv, full, _ := testServer(t, rec)
	for k, st := range map[error]int{errdefs.ErrInvalid: 400, errdefs.ErrUsage: 400, errdefs.ErrNotFound: 404, errdefs.ErrAlreadyExists: 409, errdefs.ErrFailedPrecondition: 412} {
		rec.err = errdefs.New(k, "the rule, said")
		got, body := call(t, srv, full, "POST", "/api/v1/branches/d/x/start", "")
		if got != st || !strings.Contains(body, `"error":"the rule, said"`) {
			t.Errorf("%v: %d %s; want %d", k, got, body, st)
		}
	}
}

// TestStream: with Accept: application/x-ndjson the steps come first,
// then the result.
func TestStream(t *testing.T) {
	rec := &recorder{out: `{"name":"d/x"}` + "\n"}
	srv, full, _ := testServer(t, rec)
	st, body := call(t, srv, full, "POST", "/api/v1/projects/d/branches", `{"name":"x"}`, "Accept", "application/x-ndjson")
	want := `{"step":"▸ Clone   0.1s"}` + "\n" + `{"warning":"careful"}` + "\n" + `{"result":{"name":"d/x"}}` + "\n"
	if st != 200 || body != want {
		t.Errorf("%d %q; want %q", st, body, want)
	}
}

// TestLoginCode: a page link's code makes one session, once; the
// session's changing calls need the CSRF header.
func TestLoginCode(t *testing.T) {
	rec := &recorder{out: "{}"}
	home := t.TempDir()
	a := NewAuth(home, false)
	srv := httptest.NewServer(New(rec.run, a))
	defer srv.Close()
	if err := a.SetAddress(srv.URL); err != nil {
		t.Fatal(err)
	}
	link, err := a.PageLink()
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cookies := res.Cookies()
	if res.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d %v", res.StatusCode, cookies)
	}
	if res, _ := noRedirect.Get(link); res.StatusCode != 401 {
		t.Errorf("the link worked twice: %d", res.StatusCode)
	}
	ck := cookies[0].Name + "=" + cookies[0].Value
	st, body := call(t, srv, "", "GET", "/api/v1/session", "", "Cookie", ck)
	var s struct{ Role, CSRF string }
	if st != 200 || json.Unmarshal([]byte(body), &s) != nil || s.CSRF == "" {
		t.Fatalf("session: %d %s", st, body)
	}
	if st, _ := call(t, srv, "", "POST", "/api/v1/branches/d/x/stop", "", "Cookie", ck); st != 403 {
		t.Errorf("a cookie's changing call without CSRF: %d, want 403", st)
	}
	if st, _ := call(t, srv, "", "POST", "/api/v1/branches/d/x/stop", "", "Cookie", ck, csrfHeader, "wrong"); st != 403 {
		t.Errorf("a cookie's changing call with a wrong CSRF: %d, want 403", st)
	}
	if st, body := call(t, srv, "", "POST", "/api/v1/branches/d/x/stop", "", "Cookie", ck, csrfHeader, s.CSRF); st != 200 {
		t.Errorf("a cookie's changing call with CSRF: %d %s", st, body)
	}
	if fi, err := os.Stat(home + "/api/codes"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("codes file: %v %v", fi, err)
	}
}

// TestRevokeToken: a revoked token is refused at the next call, the
// others still work, and the list never holds a token.
func TestRevokeToken(t *testing.T) {
	rec := &recorder{out: "{}"}
	home := t.TempDir()
	a := NewAuth(home, false)
	srv := httptest.NewServer(New(rec.run, a))
	defer srv.Close()
	path, err := a.FirstToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	first := strings.TrimSpace(string(b))
	ro, _ := a.CreateToken(RoleReadOnly)
	toks, err := a.Tokens()
	if err != nil || len(toks) != 2 || !toks[0].First || toks[0].Role != RoleFull || toks[1].Role != RoleReadOnly || toks[1].CreatedAt.IsZero() {
		t.Fatalf("tokens: %+v %v", toks, err)
	}
	for _, tk := range toks {
		if strings.Contains(first, tk.ID) || strings.Contains(ro, tk.ID) {
			t.Errorf("an ID is part of a token: %s", tk.ID)
		}
	}
	if st, _ := call(t, srv, ro, "GET", "/api/v1/status", ""); st != 200 {
		t.Fatalf("before revoke: %d", st)
	}
	for _, bad := range []string{"xyz!", "ab", strings.Repeat("a", 13)} {
		if _, err := a.RevokeToken(bad); errdefs.Of(err) != errdefs.ErrInvalid {
			t.Errorf("revoke %q: %v, want invalid", bad, err)
		}
	}
	if _, err := a.RevokeToken("0000000"); errdefs.Of(err) != errdefs.ErrNotFound && !strings.HasPrefix(toks[0].ID, "0000000") {
		t.Errorf("revoke of no token: %v", err)
	}
	got, err := a.RevokeToken(toks[1].ID[:6])
	if err != nil || got.ID != toks[1].ID {
		t.Fatalf("revoke: %+v %v", got, err)
	}
	if st, _ := call(t, srv, ro, "GET", "/api/v1/status", ""); st != 401 {
		t.Errorf("the revoked token: %d, want 401", st)
	}
	if st, _ := call(t, srv, first, "GET", "/api/v1/status", ""); st != 200 {
		t.Errorf("the other token after a revoke: %d", st)
	}
	if _, err := a.RevokeToken(toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the first token's file stays after its revoke: %v", err)
	}
	if st, _ := call(t, srv, first, "GET", "/api/v1/status", ""); st != 401 {
		t.Errorf("the revoked first token: %d, want 401", st)
	}
}

// TestReport: doctor's document is the answer when doctor fails (exit 1)
// after printing it; a refusal is still an error.
func TestReport(t *testing.T) {
	rec := &recorder{out: `{"findings":[],"failed":1}`, err: errors.New("doctor found 1 problem")}
	srv, full, _ := testServer(t, rec)
	if st, body := call(t, srv, full, "GET", "/api/v1/doctor", ""); st != 200 || body != rec.out {
		t.Errorf("doctor with a failed check: %d %s", st, body)
	}
	if st, body := call(t, srv, full, "GET", "/api/v1/doctor", "", "Accept", "application/x-ndjson"); st != 200 || !strings.HasSuffix(body, `{"result":{"findings":[],"failed":1}}`+"\n") {
		t.Errorf("doctor streamed with a failed check: %d %s", st, body)
	}
	rec.err = errdefs.Usage("bad")
	if st, _ := call(t, srv, full, "GET", "/api/v1/doctor", ""); st != 400 {
		t.Errorf("doctor refused: %d", st)
	}
	rec.out, rec.err = "", errors.New("failed")
	if st, _ := call(t, srv, full, "GET", "/api/v1/doctor", ""); st != 500 {
		t.Errorf("doctor failing with no document: %d", st)
	}
	rec.out = `{"name":"d/x"}`
	if st, _ := call(t, srv, full, "POST", "/api/v1/branches/d/x/start", ""); st != 500 {
		t.Errorf("a failed start with a document: %d, want 500", st)
	}
}
