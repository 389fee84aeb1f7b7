package api

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pgconf"
	"github.com/velohq/velo/internal/ui"
)

// Auth checks the API's callers. Its files are in VELO_HOME/api, each
// 0600 in a 0700 directory:
//
//	tokens   one line a token: the SHA-256 of the token and its role
//	         (full or read-only); tokens themselves are never stored here
//	token    the token velo serve made at its first start (full), for the
//	         user to read and give to a client
//	codes    one-time login codes for the page: SHA-256 and expiry
//	address  where velo serve's page is, for velo ui
//
// velo token create, velo token revoke and velo ui change them while
// velo serve runs, which reads them at every call: each change is made
// under api/lock, written to a temporary file and renamed.
type Auth struct {
	dir    string
	secure bool // the page is served over TLS: cookies are Secure

	mu       sync.Mutex
	sessions map[string]*session // by the SHA-256 of the cookie
}

type session struct {
	role    string
	csrf    string
	expires time.Time
}

// Roles.
const (
	RoleFull     = "full"
	RoleReadOnly = "read-only"
)

// codeLife is how long a page link works; a session lasts sessionLife.
const (
	codeLife    = 10 * time.Minute
	sessionLife = 12 * time.Hour
	cookieName  = "velo_session"
	csrfHeader  = "X-Velo-CSRF"
)

// NewAuth reads and writes the files of home's api directory.
func NewAuth(home string, secure bool) *Auth {
	return &Auth{dir: filepath.Join(home, "api"), secure: secure, sessions: map[string]*session{}}
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// change runs fn on the lines of the api file name under the lock and
// writes what it returns in their place (0600, by rename).
func (a *Auth) change(name string, fn func(lines []string) []string) error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return err
	}
	l := flock.New(filepath.Join(a.dir, "lock"))
	if err := l.Lock(); err != nil {
		return err
	}
	defer l.Unlock()
	lines, err := a.lines(name)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(a.dir, name), strings.Join(fn(lines), ""))
}

// writeFile replaces path with content, 0600, fsynced with its directory
// (pgconf.WriteAtomic), so a crash leaves the old file or the new one.
func writeFile(path, content string) error {
	return pgconf.WriteAtomic(path, []byte(content), 0o600)
}

// lines are the lines of an api file, each with its newline; none when
// it does not exist.
func (a *Auth) lines(name string) ([]string, error) {
	f, err := os.Open(filepath.Join(a.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			out = append(out, t+"\n")
		}
	}
	return out, sc.Err()
}

// CreateToken makes a token of role and records its hash; the token is
// returned once, and stored nowhere but where the caller puts it.
func (a *Auth) CreateToken(role string) (string, error) {
	if role != RoleFull && role != RoleReadOnly {
		return "", errdefs.Invalid("role %q is neither %s nor %s", role, RoleFull, RoleReadOnly)
	}
	tok := "velo_" + randomSecret()
	err := a.change("tokens", func(lines []string) []string {
		return append(lines, fmt.Sprintf("%s %s %s\n", hash(tok), role, time.Now().UTC().Format(time.RFC3339)))
	})
	return tok, err
}

// FirstToken is the path of the token velo serve made at its first start,
// made now if there is none.
func (a *Auth) FirstToken() (string, error) {
	path := filepath.Join(a.dir, "token")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tok, err := a.CreateToken(RoleFull)
	if err != nil {
		return "", err
	}
	return path, writeFile(path, tok+"\n")
}

// Token is a token as velo token list shows it: never the token itself.
type Token struct {
	ID        string    // the first characters of its SHA-256
	Role      string    // RoleFull or RoleReadOnly
	CreatedAt time.Time // zero when the line records none
	First     bool      // the one velo serve made, in VELO_HOME/api/token
}

// idLen is how much of a token's SHA-256 is its ID: enough to name one
// token among many, and of a hash of 256 random bits, so it tells
// nothing of the token.
const idLen = 12

// Tokens are the tokens that are honoured, oldest first.
func (a *Auth) Tokens() ([]Token, error) {
	lines, err := a.lines("tokens")
	if err != nil {
		return nil, err
	}
	first := a.firstHash()
	var out []Token
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || len(f[0]) < idLen {
			continue
		}
		t := Token{ID: f[0][:idLen], Role: f[1], First: f[0] == first}
		if len(f) >= 3 {
			t.CreatedAt, _ = time.Parse(time.RFC3339, f[2])
		}
		out = append(out, t)
	}
	return out, nil
}

// TokenFile is where velo serve keeps the token it made at its first
// start.
func TokenFile(home string) string { return filepath.Join(home, "api", "token") }

// firstHash is the SHA-256 of the token in api/token, or "".
func (a *Auth) firstHash() string {
	b, err := os.ReadFile(filepath.Join(a.dir, "token"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return ""
	}
	return hash(strings.TrimSpace(string(b)))
}

// RevokeToken stops honouring the token whose ID is id (or a unique
// prefix of it, at least 4 characters): velo serve reads the tokens at
// every call, so the next call with it is refused. Revoking the token of
// api/token removes that file too (velo serve makes a new one at its next
// start). It returns the token revoked.
func (a *Auth) RevokeToken(id string) (Token, error) {
	if len(id) < 4 || len(id) > idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return Token{}, errdefs.Invalid("token ID %s is not 4 to %d hexadecimal characters, 0-9 and a-f (velo token list shows the IDs)", ui.Quote(id), idLen)
	}
	first := a.firstHash()
	// Nothing is written (not even api/) unless one token matches.
	lines, err := a.lines("tokens")
	if err != nil {
		return Token{}, err
	}
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, id) {
			n++
		}
	}
	var found []Token
	if n == 1 {
		err = a.change("tokens", a.revokeLines(id, first, &found))
	} else {
		_ = a.revokeLines(id, first, &found)(lines)
	}
	if err != nil {
		return Token{}, err
	}
	switch len(found) {
	case 0:
		return Token{}, errdefs.NotFound("no token has an ID starting with %s (velo token list shows them)", id)
	case 1:
	default:
		return Token{}, errdefs.Invalid("%d tokens have IDs starting with %s: give more of the ID (velo token list)", len(found), id)
	}
	if found[0].First {
		if err := os.Remove(filepath.Join(a.dir, "token")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return found[0], err
		}
	}
	return found[0], nil
}

// revokeLines is the change that drops the token with ID prefix id from
// the lines of api/tokens, recording in found each token it matches.
func (a *Auth) revokeLines(id, first string, found *[]Token) func([]string) []string {
	return func(lines []string) []string {
		*found = nil
		keep := []string{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 2 && strings.HasPrefix(f[0], id) {
				t := Token{ID: f[0][:min(idLen, len(f[0]))], Role: f[1], First: f[0] == first}
				if len(f) >= 3 {
					t.CreatedAt, _ = time.Parse(time.RFC3339, f[2])
				}
				*found = append(*found, t)
				continue
			}
			keep = append(keep, l)
		}
		if len(*found) != 1 {
			return lines // nothing changes
		}
		return keep
	}
}

// role is the role of a presented token, or "" for none: every stored
// hash is compared, each in constant time.
func (a *Auth) role(tok string) string {
	lines, err := a.lines("tokens")
	if err != nil || tok == "" {
		return ""
	}
	h := []byte(hash(tok))
	role := ""
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && subtle.ConstantTimeCompare(h, []byte(f[0])) == 1 {
			role = f[1]
		}
	}
	return role
}

// NewCode makes a one-time login code for the page, good for codeLife.
func (a *Auth) NewCode() (string, error) {
	code := randomSecret()
	now := time.Now()
	err := a.change("codes", func(lines []string) []string {
		keep := []string{}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) == 2 && unexpired(f[1], now) {
				keep = append(keep, l)
			}
		}
		return append(keep, fmt.Sprintf("%s %d\n", hash(code), now.Add(codeLife).Unix()))
	})
	return code, err
}

func unexpired(unix string, now time.Time) bool {
	n, err := strconv.ParseInt(unix, 10, 64)
	return err == nil && now.Unix() < n
}

// useCode reports whether code is a login code not used or expired, and
// uses it up.
func (a *Auth) useCode(code string) bool {
	if code == "" {
		return false
	}
	h := []byte(hash(code))
	ok := false
	now := time.Now()
	err := a.change("codes", func(lines []string) []string {
		keep := []string{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 2 || !unexpired(f[1], now) {
				continue
			}
			if subtle.ConstantTimeCompare(h, []byte(f[0])) == 1 {
				ok = true
				continue
			}
			keep = append(keep, l)
		}
		return keep
	})
	return err == nil && ok
}

// SetAddress records where the page is, for velo ui.
func (a *Auth) SetAddress(base string) error {
	return a.change("address", func([]string) []string { return []string{base + "\n"} })
}

// PageLink is a new link to the page of the velo serve running for this
// home: its address with a new one-time code.
func (a *Auth) PageLink() (string, error) {
	lines, err := a.lines("address")
	if err != nil {
		return "", err
	}
	if len(lines) == 0 {
		return "", errdefs.FailedPrecondition("velo serve --http has not run in this VELO_HOME (%s); start it with velo serve", filepath.Dir(a.dir))
	}
	code, err := a.NewCode()
	if err != nil {
		return "", err
	}
	return loginURL(strings.TrimSpace(lines[0]), code), nil
}

// caller is who made a request.
type caller struct {
	role    string
	session *session // set when the caller is the page (cookie)
}

// authed checks a request's caller before h: 401 without a valid token
// or session, 403 for a read-only caller on a full route or a cookie
// session's changing call without its CSRF token.
func (s *Server) authed(full bool, h func(http.ResponseWriter, *http.Request, *caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.auth.check(r)
		if c == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="velo"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong token: send Authorization: Bearer TOKEN (the token velo serve made is in VELO_HOME/api/token; velo token create makes more)")
			return
		}
		if full && c.role != RoleFull {
			writeError(w, http.StatusForbidden, "forbidden", "this token is read-only; the call changes something or shows a secret (make a full token with velo token create)")
			return
		}
		if c.session != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(c.session.csrf)) != 1 {
				writeError(w, http.StatusForbidden, "forbidden", "a changing call from the page needs its "+csrfHeader+" header (GET /api/v1/session)")
				return
			}
		}
		h(w, r, c)
	})
}

func (a *Auth) check(r *http.Request) *caller {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil
		}
		if role := a.role(strings.TrimSpace(tok)); role != "" {
			return &caller{role: role}
		}
		return nil
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ses := a.sessions[hash(ck.Value)]
	if ses == nil || time.Now().After(ses.expires) {
		return nil
	}
	return &caller{role: ses.role, session: ses}
}

// login exchanges a one-time code for a session cookie (HttpOnly,
// SameSite=Strict) and sends the browser to the page, the code gone from
// its address bar.
func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	if !a.useCode(r.URL.Query().Get("code")) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "This link was used already or has expired. Run velo ui for a new one.")
		return
	}
	id := randomSecret()
	a.mu.Lock()
	a.sessions[hash(id)] = &session{role: RoleFull, csrf: randomSecret(), expires: time.Now().Add(sessionLife)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: a.secure, MaxAge: int(sessionLife.Seconds())})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// session tells the page its role and CSRF token.
func (s *Server) session(w http.ResponseWriter, _ *http.Request, c *caller) {
	v := map[string]string{"role": c.role}
	if c.session != nil {
		v["csrf"] = c.session.csrf
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
