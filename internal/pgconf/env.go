// Package pgconf speaks libpq's conventions for Velo's branches: the PG*
// environment variables (in shell, dotenv and JSON forms), the
// connection service file (pg_service.conf) and the password file
// (.pgpass). Velo's entries in the user's files live in a marked block
// that Velo rewrites whole, atomically, keeping every other line.
package pgconf

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Target is how to reach one branch's server.
type Target struct {
	Branch   string // PROJECT/BRANCH
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// CACert is the project's CA certificate; "" for a project that has
	// none yet (an older one), which is then reached without verifying.
	CACert string
}

// Service is the service name of a branch: PROJECT-BRANCH (demo-dev).
func (t Target) Service() string { return strings.Replace(t.Branch, "/", "-", 1) }

// SSLMode is verify-full with the project's CA, else prefer.
func (t Target) SSLMode() string {
	if t.CACert != "" {
		return "verify-full"
	}
	return "prefer"
}

// URL is the libpq URL with the password and the TLS settings.
func (t Target) URL() string {
	q := url.Values{"sslmode": {t.SSLMode()}}
	if t.CACert != "" {
		q.Set("sslrootcert", t.CACert)
	}
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(t.User, t.Password), Host: t.Host + ":" + strconv.Itoa(t.Port), Path: "/" + t.Database, RawQuery: q.Encode()}
	return u.String()
}

// Var is one environment variable.
type Var struct{ Name, Value string }

// Vars are the variables libpq reads, in a fixed order, then DATABASE_URL.
func (t Target) Vars() []Var {
	vs := []Var{
		{"PGHOST", t.Host}, {"PGPORT", strconv.Itoa(t.Port)}, {"PGUSER", t.User}, {"PGPASSWORD", t.Password},
		{"PGDATABASE", t.Database}, {"PGSSLMODE", t.SSLMode()},
	}
	if t.CACert != "" {
		vs = append(vs, Var{"PGSSLROOTCERT", t.CACert})
	}
	return append(vs, Var{"DATABASE_URL", t.URL()})
}

// Shell is vs as POSIX shell export lines, for eval "$(velo branch env)":
// every value single-quoted, a quote inside closing, escaping and reopening.
func Shell(vs []Var) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "export %s='%s'\n", v.Name, strings.ReplaceAll(v.Value, "'", `'\''`))
	}
	return b.String()
}

// Dotenv is vs as a .env file: plain where the value has only characters
// every dotenv reader takes as they are, else double-quoted with \, ",
// $ and ` escaped and a newline as \n (as docker compose and the dotenv
// libraries read them).
func Dotenv(vs []Var) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "%s=%s\n", v.Name, dotenvValue(v.Value))
	}
	return b.String()
}

func dotenvValue(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:@%+,", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`", "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// Map is vs as a map, for the JSON form.
func Map(vs []Var) map[string]string {
	m := make(map[string]string, len(vs))
	for _, v := range vs {
		m[v.Name] = v.Value
	}
	return m
}
