package serving

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// apiServer is a velo serve --http process of an env.
type apiServer struct {
	e      *env
	base   string
	token  string
	link   string
	stderr *bytes.Buffer
}

// serveAPI starts velo serve --http on a free loopback port and waits
// for it to print its addresses; it is stopped (SIGTERM) at cleanup.
func (e *env) serveAPI() *apiServer {
	e.T.Helper()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.T.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, router := free(), free()
	cmd := exec.Command(harness.VeloBin, "serve", "--http", addr, "--listen", router)
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home, "VELO_DEBUG=1"), e.Extra...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	s := &apiServer{e: e, base: "http://" + addr, stderr: &bytes.Buffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "Page  "); ok {
			s.link = strings.Fields(f)[0]
			break
		}
		if !strings.HasPrefix(line, "API   ") {
			e.T.Fatalf("velo serve printed %q", line)
		}
	}
	if s.link == "" {
		cmd.Wait()
		e.T.Fatalf("velo serve printed no page link; stderr:\n%s", s.stderr)
	}
	go io.Copy(io.Discard, out)
	tok, err := os.ReadFile(filepath.Join(e.Home, "api", "token"))
	if err != nil {
		e.T.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	return s
}

// call makes one API call with token tok ("" for none), body a JSON text
// or "", and returns the status and body.
func (s *apiServer) call(tok, method, path, body string, hdr ...string) (int, string) {
	s.e.T.Helper()
	st, b, err := s.callErr(tok, method, path, body, hdr...)
	if err != nil {
		s.e.T.Fatalf("%s %s: %v", method, path, err)
	}
	return st, b
}

func (s *apiServer) callErr(tok, method, path, body string, hdr ...string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// ok makes a call that must answer 200 or 204.
func (s *apiServer) ok(method, path, body string) string {
	s.e.T.Helper()
	st, b := s.call(s.token, method, path, body)
	if st != 200 && st != 204 {
		s.e.T.Fatalf("%s %s %s: %d %s", method, path, body, st, b)
	}
	return b
}

// refused makes a call that must answer status with a message holding
// want, and change nothing.
func (s *apiServer) refused(status int, want, tok, method, path, body string, hdr ...string) {
	s.e.T.Helper()
	before := s.e.SnapshotState()
	st, b := s.call(tok, method, path, body, hdr...)
	if st != status || !strings.Contains(b, want) {
		s.e.T.Errorf("%s %s %.60s: %d %s; want %d with %q", method, path, body, st, b, status, want)
	}
	if after := s.e.SnapshotState(); after != before {
		s.e.T.Errorf("%s %s changed the state:\nbefore %s\nafter  %s", method, path, before, after)
	}
}

// projectsOf is the projects part of a status document, which the API
// and the CLI must give alike (the pools' used and free bytes move).
func projectsOf(t *testing.T, doc string) string {
	t.Helper()
	var v struct {
		Projects json.RawMessage `json:"projects"`
	}
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("status: %v\n%s", err, doc)
	}
	return string(v.Projects)
}

// TestAPI drives velo serve's API as a client would, against real
// Postgres: the same documents as the CLI, branches made, queried, reset
// and deleted through it, an API call and a CLI command at once, and
// every refusal of bad input changing nothing.
func TestAPI(t *testing.T) {
	e := newEnv(t, "copy")
	e.Create("demo")
	e.Psql("demo/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	s := e.serveAPI()
	if fi, err := os.Stat(filepath.Join(e.Home, "api", "token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file: %v %v, want mode 0600", fi, err)
	}

	// The same documents as --json.
	if got, want := projectsOf(t, s.ok("GET", "/api/v1/status", "")), projectsOf(t, e.OK("status", "--json").Stdout); got != want {
		t.Errorf("GET /api/v1/status is not velo status --json:\n%s\n%s", got, want)
	}
	if got, want := s.ok("GET", "/api/v1/branches/demo/main", ""), e.OK("branch", "get", "demo/main", "--json").Stdout; got != want {
		t.Errorf("GET /api/v1/branches/demo/main:\n%s\nvelo branch get --json:\n%s", got, want)
	}
	doc, err := os.ReadFile("../../../internal/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ok("GET", "/api/v1/openapi.json", ""); got != string(doc) {
		t.Error("GET /api/v1/openapi.json is not internal/api/openapi.json")
	}

	// A branch made through the API, its steps streamed, then queried
	// with psql.
	st, body := s.call(s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"api"}`, "Accept", "application/x-ndjson")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if st != 200 || len(lines) < 3 || !strings.Contains(lines[0], `"step"`) || !strings.Contains(body, "PostgreSQL ready") || !strings.HasPrefix(lines[len(lines)-1], `{"result":{"name":"demo/api"`) {
		t.Fatalf("streamed create: %d\n%s", st, body)
	}
	e.Psql("demo/api", "INSERT INTO t VALUES (2)")
	if got := e.Rows("demo/api", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("demo/api has %q", got)
	}
	var pw struct{ URL, Password string }
	json.Unmarshal([]byte(s.ok("GET", "/api/v1/branches/demo/api/password", "")), &pw)
	if pw.Password == "" || !strings.Contains(pw.URL, pw.Password) {
		t.Errorf("password: %+v", pw)
	}

	// An API call and a CLI command at once: both done, as two commands.
	var wg sync.WaitGroup
	var cli harness.Result
	var apiSt int
	var apiBody string
	wg.Add(2)
	go func() { defer wg.Done(); cli, _ = e.RunErr("branch", "create", "demo/cli") }()
	go func() {
		defer wg.Done()
		apiSt, apiBody, _ = s.callErr(s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"api2","parent":"demo/api"}`)
	}()
	wg.Wait()
	if cli.Code != 0 || apiSt != 200 {
		t.Fatalf("at once: cli %s\napi %d %s", cli, apiSt, apiBody)
	}
	if got := e.Rows("demo/api2", "SELECT v FROM t ORDER BY v"); got != "1,2" {
		t.Errorf("demo/api2 (child of demo/api) has %q", got)
	}

	// Refusals: the same rule as the CLI, the same kinds, nothing changed.
	cliRefusal := e.Run("branch", "create", "demo/Bad!")
	rule := strings.TrimPrefix(strings.TrimSpace(cliRefusal.Stderr), "velo: ")
	ro := strings.TrimSpace(e.OK("token", "create", "--read-only").Stdout)
	s.refused(400, jsonText(rule), s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"Bad!"}`)
	s.refused(400, "use RFC 3339", s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"x","pitr":"yesterday-ish"}`)
	s.refused(401, "missing or wrong token", "", "POST", "/api/v1/projects/demo/branches", `{"name":"x"}`)
	s.refused(401, "missing or wrong token", "velo_not-a-token", "DELETE", "/api/v1/branches/demo/api", "")
	s.refused(401, "missing or wrong token", "", "GET", "/api/v1/status", "", "Authorization", "Basic "+s.token)
	s.refused(403, "read-only", ro, "DELETE", "/api/v1/branches/demo/api", "")
	s.refused(403, "read-only", ro, "GET", "/api/v1/branches/demo/api/password", "")
	s.refused(400, "not a JSON object", s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"x"`)
	s.refused(400, `unknown field \"colour\"`, s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"x","colour":"red"}`)
	s.refused(400, "larger than", s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"x","parent":"`+strings.Repeat("a", 70<<10)+`"}`)
	s.refused(400, "never in a URL", s.token, "GET", "/api/v1/status?token="+s.token, "")
	s.refused(404, "does not exist", s.token, "GET", "/api/v1/branches/demo/nothing", "")
	s.refused(409, "already exists", s.token, "POST", "/api/v1/projects/demo/branches", `{"name":"api"}`)
	s.refused(412, "--force", s.token, "DELETE", "/api/v1/branches/demo/api", "")
	if st, _ := s.call(ro, "GET", "/api/v1/status", ""); st != 200 {
		t.Errorf("a read-only token reading status: %d", st)
	}

	// Reset and delete through the API.
	s.ok("DELETE", "/api/v1/branches/demo/api2", "")
	s.ok("POST", "/api/v1/branches/demo/api/reset", "{}")
	if got := e.Rows("demo/api", "SELECT v FROM t ORDER BY v"); got != "1" {
		t.Errorf("demo/api after reset has %q", got)
	}
	s.ok("DELETE", "/api/v1/branches/demo/api", "")
	if r := e.Run("branch", "get", "demo/api"); r.Code != 2 {
		t.Errorf("demo/api after delete: %s", r)
	}

	// Never a token in what velo serve printed or logged.
	for _, tok := range []string{s.token, ro} {
		if strings.Contains(s.stderr.String(), tok) {
			t.Errorf("velo serve's log holds a token")
		}
	}
	if !strings.Contains(s.stderr.String(), "path=/api/v1/status") {
		t.Errorf("velo serve's debug log names no call:\n%.500s", s.stderr.String())
	}
}

// jsonText is s as it shows inside a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}
