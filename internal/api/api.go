// Package api is Velo's HTTP API, /api/v1, and the web page beside it
// (/ui/), served by velo serve --http.
//
// Every endpoint runs the velo command its route names, in process,
// through Config.Run (cli.Run): the same parsing and rules, the same
// engine and lock, and the same JSON document as the command's --json, so
// an API call and a CLI command at once behave as two commands do. The
// answer is that document (200), or 204 for a command that prints none;
// an error is {"error": the command's message, "kind": ...} with a status
// from its errdefs kind (statusOf). A client that accepts
// application/x-ndjson is sent the command's steps as they happen, one
// JSON object a line, and the result or error last.
//
// Auth (auth.go): a bearer token in the Authorization header, or the
// page's session cookie (made from a one-time code in the link velo
// serve and velo ui print) with a CSRF header on changing calls.
package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// Runner runs one velo command line (without "velo"), printing its
// result on stdout and its steps and warnings on stderr.
type Runner func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// maxBody is the largest request body taken: the biggest a command's
// flags make is a few kilobytes.
const maxBody = 64 << 10

// Server is the API and the page.
type Server struct {
	run  Runner
	auth *Auth
	mux  *http.ServeMux
}

// New serves the API, running commands with run and checking callers
// with auth.
func New(run Runner, auth *Auth) *Server {
	s := &Server{run: run, auth: auth, mux: http.NewServeMux()}
	for _, r := range routes {
		s.mux.Handle(r.method+" "+r.path, s.endpoint(r))
	}
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIJSON)
	})
	s.mux.Handle("GET /api/v1/session", s.authed(false, s.session))
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s; see GET /api/v1/openapi.json", r.Method, r.URL.Path))
	})
	s.page(s.mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	s.mux.ServeHTTP(rec, r)
	// The path only: the query may hold a one-time code (/ui/login), and
	// headers (the token, the cookie) are never logged.
	slog.Debug("http", "method", r.Method, "path", r.URL.Path, "status", rec.status)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// endpoint runs r's command for a request.
func (s *Server) endpoint(rt route) http.Handler {
	return s.authed(rt.full, func(w http.ResponseWriter, req *http.Request, _ *caller) {
		vals, err := values(rt, req)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		args := rt.args(req.PathValue, vals)
		if strings.Contains(req.Header.Get("Accept"), "application/x-ndjson") {
			s.stream(w, req, rt, args)
			return
		}
		var out bytes.Buffer
		if err := s.run(req.Context(), args, &out, io.Discard); err != nil && !reported(rt, err, out.Bytes()) {
			st, kind := statusOf(err)
			writeError(w, st, kind, err.Error())
			return
		}
		if !rt.json {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out.Bytes())
	})
}

// stream runs args sending each line the command prints on stderr as
// {"step": ...} (or {"warning": ...}) when it is printed, then
// {"result": document} or {"error": ..., "kind": ..., "status": ...}.
func (s *Server) stream(w http.ResponseWriter, req *http.Request, rt route, args []string) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	var mu sync.Mutex
	send := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(v)
		w.Write(append(b, '\n'))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if w, ok := strings.CutPrefix(line, "warning: "); ok {
				send(map[string]string{"warning": w})
			} else if line != "" {
				send(map[string]string{"step": line})
			}
		}
		io.Copy(io.Discard, pr)
	}()
	var out bytes.Buffer
	err := s.run(req.Context(), args, &out, pw)
	pw.Close()
	<-done
	if err != nil && !reported(rt, err, out.Bytes()) {
		st, kind := statusOf(err)
		send(map[string]any{"error": err.Error(), "kind": kind, "status": st})
		return
	}
	if !rt.json {
		send(map[string]any{"result": nil})
		return
	}
	send(map[string]json.RawMessage{"result": bytes.TrimSpace(out.Bytes())})
}

// reported tells whether a failed command of rt answers with the
// document it printed: a report route's command that failed (exit 1, not
// a refusal) after printing a whole JSON document.
func reported(rt route, err error, out []byte) bool {
	st, _ := statusOf(err)
	return rt.report && st == http.StatusInternalServerError && json.Valid(out) && len(bytes.TrimSpace(out)) > 0
}

// values reads a request's fields: a POST's JSON body (an object with
// only rt's fields, of their types, at most maxBody bytes), or a GET's or
// DELETE's query.
func values(rt route, req *http.Request) (map[string]any, error) {
	known := map[string]field{}
	for _, f := range rt.fields {
		known[f.name] = f
	}
	vals := map[string]any{}
	q := req.URL.Query()
	for k := range q {
		if k == "token" || k == "access_token" {
			return nil, errors.New("a token goes in the Authorization header (Bearer), never in a URL")
		}
	}
	if req.Method != http.MethodPost {
		for k, vs := range q {
			f, ok := known[k]
			if !ok {
				return nil, fmt.Errorf("unknown parameter %q; %s takes %s", k, rt.path, names(rt.fields))
			}
			if f.kind == "strings" {
				vals[k] = vs
				continue
			}
			if len(vs) != 1 {
				return nil, fmt.Errorf("parameter %q given %d times", k, len(vs))
			}
			v, err := parseQuery(f, vs[0])
			if err != nil {
				return nil, err
			}
			vals[k] = v
		}
		return vals, nil
	}
	if len(q) > 0 {
		return nil, fmt.Errorf("POST %s takes its fields in a JSON body, not the query", rt.path)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("the body is larger than %d bytes", maxBody)
		}
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return vals, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %v", err)
	}
	for k, v := range raw {
		f, ok := known[k]
		if !ok {
			return nil, fmt.Errorf("unknown field %q; %s %s takes %s", k, rt.method, rt.path, names(rt.fields))
		}
		var err error
		switch f.kind {
		case "bool":
			var b bool
			err = json.Unmarshal(v, &b)
			vals[k] = b
		case "string":
			var s string
			err = json.Unmarshal(v, &s)
			vals[k] = s
		case "int":
			var n int64
			err = json.Unmarshal(v, &n)
			vals[k] = n
		case "strings":
			var ss []string
			err = json.Unmarshal(v, &ss)
			vals[k] = ss
		}
		if err != nil {
			return nil, fmt.Errorf("field %q must be %s", k, kindText[f.kind])
		}
	}
	return vals, nil
}

var kindText = map[string]string{"bool": "true or false", "string": "a string", "int": "an integer", "strings": "an array of strings"}

func parseQuery(f field, s string) (any, error) {
	switch f.kind {
	case "bool":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("parameter %q must be true or false, got %q", f.name, s)
		}
		return b, nil
	case "int":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parameter %q must be an integer, got %q", f.name, s)
		}
		return n, nil
	}
	return s, nil
}

func names(fs []field) string {
	if len(fs) == 0 {
		return "no fields"
	}
	var n []string
	for _, f := range fs {
		n = append(n, f.name)
	}
	return strings.Join(n, ", ")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// statusOf is the HTTP status of a command's error, by its kind as
// cmd/velo's exit code is: the refusals (exit 2) are 4xx.
func statusOf(err error) (int, string) {
	if errors.Is(err, state.ErrLocked) {
		return http.StatusConflict, "locked"
	}
	switch errdefs.Of(err) {
	case errdefs.ErrUsage, errdefs.ErrInvalid:
		return http.StatusBadRequest, "invalid"
	case errdefs.ErrNotFound:
		return http.StatusNotFound, "not_found"
	case errdefs.ErrAlreadyExists:
		return http.StatusConflict, "already_exists"
	case errdefs.ErrFailedPrecondition:
		return http.StatusPreconditionFailed, "failed_precondition"
	case errdefs.ErrUnsupported:
		return http.StatusNotImplemented, "unsupported"
	case errdefs.ErrNoSpace:
		return http.StatusInsufficientStorage, "no_space"
	case errdefs.ErrEnvironment:
		return http.StatusInternalServerError, "environment"
	}
	return http.StatusInternalServerError, "failed"
}

func writeError(w http.ResponseWriter, status int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "kind": kind})
}

// url is the page's link for a login code.
func loginURL(base, code string) string {
	return strings.TrimSuffix(base, "/") + "/ui/login?code=" + url.QueryEscape(code)
}
