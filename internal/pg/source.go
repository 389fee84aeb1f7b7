package pg

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/velohq/velo/internal/ui"
)

// Source is a Postgres server a project is imported from (`velo project
// create --from SOURCE`). SOURCE is a libpq URL (postgresql://user@host:
// port/db?sslmode=...) or service=NAME, a section of pg_service.conf. The
// password comes, as libpq takes it, from the URL, PGPASSWORD, the service
// file or ~/.pgpass (PGPASSFILE); it is held here only to be written into a
// 0600 passfile for the tools and servers that connect (never into their
// arguments, environment or a log).
type Source struct {
	Host     string // a host name, an address, or a socket directory
	Port     int
	User     string
	Database string
	// SSL holds the TLS settings given (sslmode, sslrootcert, sslcert,
	// sslkey, sslcrl), passed on as given to whatever connects.
	SSL map[string]string
	// Password is the secret; "" when the server asks for none.
	Password string
	// Service is the pg_service.conf section SOURCE named, if any.
	Service string
}

// sslKeys are the libpq settings about TLS a Source carries on.
var sslKeys = []string{"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslnegotiation"}

// knownKeys are the libpq settings a SOURCE may hold; others are refused
// so that a typo does not silently connect elsewhere.
var knownKeys = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "user": true, "dbname": true, "password": true,
	"connect_timeout": true, "application_name": true,
}

// ParseSource reads SOURCE: a postgres:// or postgresql:// URL, or
// service=NAME. The environment (PGHOST, PGPASSWORD, PGSERVICEFILE...)
// fills in what SOURCE leaves out, as libpq does.
func ParseSource(s string) (Source, error) {
	s = strings.TrimSpace(s)
	var kv map[string]string
	var err error
	var service string
	switch {
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		kv, err = urlSettings(s)
	case strings.HasPrefix(s, "service="):
		service = strings.TrimPrefix(s, "service=")
		if service == "" || strings.ContainsAny(service, " \t'\"=") {
			return Source{}, fmt.Errorf("--from %s: the service name must be one word, as in service=prod", safeSource(s))
		}
		kv, err = serviceSettings(service)
	default:
		return Source{}, fmt.Errorf("--from %s is neither a postgresql:// URL nor service=NAME; e.g. --from postgresql://replicator@db.example.com:5432/postgres", safeSource(s))
	}
	if err != nil {
		return Source{}, err
	}
	for k := range kv {
		if !knownKeys[k] && !isSSLKey(k) {
			return Source{}, fmt.Errorf("--from: setting %s is not one Velo passes on; use host, port, user, dbname, password, connect_timeout and the ssl* settings", k)
		}
	}
	// pgconn applies libpq's rules: defaults, the environment, ~/.pgpass.
	cfg, err := pgconn.ParseConfig(keywordString(kv))
	if err != nil {
		return Source{}, fmt.Errorf("--from %s: %v", safeSource(s), redact(err, kv["password"]))
	}
	src := Source{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Database: cfg.Database, Password: cfg.Password, Service: service, SSL: map[string]string{}}
	if src.Database == "" {
		src.Database = src.User
	}
	for _, k := range sslKeys {
		if v, ok := kv[k]; ok {
			src.SSL[k] = v
		} else if v := os.Getenv("PG" + strings.ToUpper(k)); v != "" {
			src.SSL[k] = v
		}
	}
	if src.User == "" {
		return Source{}, fmt.Errorf("--from %s names no user; add it, as in postgresql://replicator@HOST/postgres", safeSource(s))
	}
	return src, nil
}

func isSSLKey(k string) bool {
	for _, s := range sslKeys {
		if k == s {
			return true
		}
	}
	return false
}

// urlSettings turns a libpq URL into keyword settings.
func urlSettings(s string) (map[string]string, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url's error quotes the input, which may hold the password.
		return nil, fmt.Errorf("--from is not a valid URL; write postgresql://USER@HOST:PORT/DATABASE")
	}
	kv := map[string]string{}
	if u.User != nil {
		kv["user"] = u.User.Username()
		if p, ok := u.User.Password(); ok {
			kv["password"] = p
		}
	}
	if h := u.Hostname(); h != "" {
		kv["host"] = h
	}
	if p := u.Port(); p != "" {
		kv["port"] = p
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		kv["dbname"] = db
	}
	for k, vs := range u.Query() {
		if len(vs) > 0 {
			kv[k] = vs[len(vs)-1]
		}
	}
	return kv, nil
}

// serviceSettings reads section name of the service files libpq reads: the
// user's (PGSERVICEFILE, else ~/.pg_service.conf) first, then the system's
// (PGSYSCONFDIR/pg_service.conf, else Debian's /etc/postgresql-common).
func serviceSettings(name string) (map[string]string, error) {
	var files []string
	if f := os.Getenv("PGSERVICEFILE"); f != "" {
		files = append(files, f)
	} else if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".pg_service.conf"))
	}
	if d := os.Getenv("PGSYSCONFDIR"); d != "" {
		files = append(files, filepath.Join(d, "pg_service.conf"))
	} else {
		files = append(files, "/etc/postgresql-common/pg_service.conf")
	}
	for _, f := range files {
		kv, found, err := readService(f, name)
		if err != nil {
			return nil, err
		}
		if found {
			return kv, nil
		}
	}
	return nil, fmt.Errorf("--from service=%s: no section [%s] in %s; add one or give a postgresql:// URL", name, name, strings.Join(files, " or "))
}

func readService(path, name string) (map[string]string, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("service file: %w", err)
	}
	defer f.Close()
	var kv map[string]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			if kv != nil {
				return kv, true, nil
			}
			if strings.TrimSuffix(line[1:], "]") == name {
				kv = map[string]string{}
			}
		case kv != nil:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, false, fmt.Errorf("service file %s line %d: want KEY=VALUE", path, n)
			}
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return kv, kv != nil, sc.Err()
}

// keywordString writes settings as a libpq keyword/value string.
func keywordString(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+quoteConninfo(kv[k]))
	}
	return strings.Join(parts, " ")
}

// quoteConninfo quotes a libpq keyword value.
func quoteConninfo(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Conninfo is a libpq keyword/value string to reach the source, without
// the password: whoever connects reads it from passfile ("" leaves libpq
// to find it). extra adds settings (application_name, replication).
func (s Source) Conninfo(passfile string, extra map[string]string) string {
	kv := map[string]string{"host": s.Host, "port": strconv.Itoa(s.Port), "user": s.User, "dbname": s.Database}
	for k, v := range s.SSL {
		kv[k] = v
	}
	if passfile != "" {
		kv["passfile"] = passfile
	}
	for k, v := range extra {
		kv[k] = v
	}
	return keywordString(kv)
}

// FindPassword gives s, when it holds no password, the one libpq would
// find for it now: in its service's section, PGPASSWORD or ~/.pgpass
// (PGPASSFILE). It is how a source recorded without its secret (an
// import that keeps none) is reached again.
func (s Source) FindPassword() (Source, error) {
	if s.Password != "" {
		return s, nil
	}
	kv := map[string]string{"host": s.Host, "port": strconv.Itoa(s.Port), "user": s.User, "dbname": s.Database}
	if s.Service != "" {
		svc, err := serviceSettings(s.Service)
		if err != nil {
			return s, err
		}
		if pw, ok := svc["password"]; ok {
			kv["password"] = pw
		}
	}
	cfg, err := pgconn.ParseConfig(keywordString(kv))
	if err != nil {
		return s, fmt.Errorf("source %s: %v", s.Display(), redact(err, kv["password"]))
	}
	s.Password = cfg.Password
	return s, nil
}

// Passfile is the line of a pgpass file that gives s's password to
// whoever connects to s (any database: a replication connection asks for
// the database "replication").
func (s Source) Passfile() string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	return esc.Replace(s.Host) + ":" + strconv.Itoa(s.Port) + ":*:" + esc.Replace(s.User) + ":" + esc.Replace(s.Password) + "\n"
}

// Display shows where s is, without any secret: user@host:port/database.
func (s Source) Display() string {
	host := s.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(s.Port))
	} else {
		host = host + ":" + strconv.Itoa(s.Port)
	}
	return s.User + "@" + host + "/" + s.Database
}

// safeSource is SOURCE fit for an error message: a URL's password masked.
func safeSource(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "***")
			return ui.Quote(strings.Replace(u.String(), "%2A%2A%2A", "***", 1))
		}
	}
	return ui.Quote(s)
}

// redact removes a password from an error's text.
func redact(err error, password string) string {
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "***")
		msg = strings.ReplaceAll(msg, url.QueryEscape(password), "***")
	}
	return msg
}

// WritePassfile writes s's password as the pgpass file path (0600, owned
// by owner), for a server's walreceiver (primary_conninfo passfile=...) or
// a later refresh. The file is replaced atomically.
func WritePassfile(path string, s Source, owner *OSUser) error {
	if strings.ContainsAny(s.Password, "\r\n") {
		return errors.New("source password: must be one line")
	}
	if err := writeFileAtomic(path, []byte(s.Passfile()), 0o600, owner); err != nil {
		return fmt.Errorf("source passfile: %w", err)
	}
	return nil
}

// TempPassfile writes s's password into a pgpass file in a new private
// directory under dir (0700, both owned by owner), for a child tool
// (pg_basebackup, pg_dump) that gets it as PGPASSFILE; cleanup removes
// both, and must be called once the tool is done.
func TempPassfile(dir string, s Source, owner *OSUser) (path string, cleanup func(), err error) {
	priv, err := os.MkdirTemp(dir, ".velo-source-")
	if err != nil {
		return "", nil, fmt.Errorf("source passfile: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(priv) }
	if err := chownOne(priv, owner); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("source passfile: %w", err)
	}
	path = filepath.Join(priv, "pgpass")
	if err := WritePassfile(path, s, owner); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

// ToolEnv is the environment of a child tool connecting to a source: the
// given base (PATH, locale; see Install.Env) with every PG* variable of
// velo's own removed, so that only the conninfo Velo passes and the
// passfile decide what the tool connects to and with which secret.
func ToolEnv(base []string, passfile string) []string {
	var env []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	if passfile != "" {
		env = append(env, "PGPASSFILE="+passfile)
	}
	return env
}

// ReadPassfilePassword returns the password of the first line of a pgpass
// file written by WritePassfile.
func ReadPassfilePassword(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields, cur, esc := 0, strings.Builder{}, false
	for _, r := range line {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == ':' && fields < 4:
			fields++
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if fields < 4 {
		return "", fmt.Errorf("%s is not a pgpass file", path)
	}
	return cur.String(), nil
}

// SourceFromConninfo is the Source a Conninfo string (no password) names,
// with password, as a journal entry records it.
func SourceFromConninfo(conninfo, password string) (Source, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return Source{}, fmt.Errorf("source %q: %w", conninfo, err)
	}
	src := Source{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Database: cfg.Database, Password: password, SSL: map[string]string{}}
	// The TLS settings as Conninfo wrote them (pgconn keeps only their effect).
	for _, m := range conninfoSSL.FindAllStringSubmatch(conninfo, -1) {
		if isSSLKey(m[1]) {
			src.SSL[m[1]] = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
		}
	}
	return src, nil
}

var conninfoSSL = regexp.MustCompile(`(ssl[a-z]+)='((?:[^'\\]|\\.)*)'`)
