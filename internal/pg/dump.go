package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/velohq/velo/internal/errdefs"
)

// ErrNoClientTools is the kind of error DumpTools returns when no install
// here has pg_dump, pg_restore and pg_dumpall new enough for a source.
var ErrNoClientTools = errors.New("no pg_dump new enough")

// DumpTools returns the install whose pg_dump, pg_restore and pg_dumpall a
// logical import of a source of major sourceMajor uses: the newest major
// that has all three and is at least the source's (pg_dump refuses a
// server newer than itself). An install without them (the embedded
// packages carry only initdb, pg_ctl and postgres) is passed over.
func DumpTools(installs []Install, sourceMajor int) (Install, error) {
	var best Install
	var seen []string
	for _, in := range installs {
		if !hasPrograms(in, "pg_dump", "pg_restore", "pg_dumpall") {
			continue
		}
		seen = append(seen, strconv.Itoa(in.Major))
		if in.Major >= sourceMajor && in.Major > best.Major {
			best = in
		}
	}
	if best.Major == 0 {
		have := "none here has them"
		if len(seen) > 0 {
			sort.Strings(seen)
			have = "found them for PostgreSQL " + strings.Join(seen, ", ") + " only"
		}
		return Install{}, errdefs.Mark(ErrNoClientTools, fmt.Errorf("a logical import of a PostgreSQL %d source needs pg_dump, pg_restore and pg_dumpall of %d or later; %s; install postgresql-client-%d or set %s to a bin directory that has them",
			sourceMajor, sourceMajor, have, sourceMajor, BinEnv))
	}
	return best, nil
}

func hasPrograms(in Install, names ...string) bool {
	for _, n := range names {
		fi, err := os.Stat(in.Bin(n))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// DumpOptions say what pg_dump dumps and where.
type DumpOptions struct {
	Tools Install
	// Conninfo reaches the database to dump (Source.Conninfo with a
	// passfile and the dbname); never a password.
	Conninfo string
	Dir      string // the directory-format dump to write; must not exist
	Jobs     int
}

// Dump runs pg_dump -Fd -j N of one database of the source into o.Dir.
// pg_dump reads the database in one repeatable-read snapshot shared by its
// workers, so the dump is of one moment, and it only reads.
func Dump(ctx context.Context, o DumpOptions) error {
	args := []string{"--format=directory", "--jobs=" + strconv.Itoa(max(o.Jobs, 1)), "--file=" + o.Dir,
		"--no-password", "--dbname=" + o.Conninfo}
	return runTool(ctx, o.Tools, "pg_dump", args)
}

// RestoreOptions say what pg_restore restores and into which server.
type RestoreOptions struct {
	Tools Install
	// Conninfo reaches the target server as its superuser, without a
	// dbname (passfile=..., never a password).
	Conninfo string
	Dir      string // a directory-format dump
	// Create makes the database as the dump describes it (name, encoding,
	// locale, settings, grants) from the postgres database; without it the
	// dump is restored into Database, which exists.
	Create   bool
	Database string
	Jobs     int
	// NoOwner leaves every object owned by the superuser, for when the
	// source's roles were not restored.
	NoOwner bool
}

// Restore runs pg_restore -j N, stopping at the first error: a partly
// restored database is not an import.
func Restore(ctx context.Context, o RestoreOptions) error {
	args := []string{"--jobs=" + strconv.Itoa(max(o.Jobs, 1)), "--exit-on-error", "--no-tablespaces", "--no-password"}
	if o.Create {
		args = append(args, "--create", "--dbname="+o.Conninfo+" "+DBNameConninfo(Superuser))
	} else {
		args = append(args, "--dbname="+o.Conninfo+" "+DBNameConninfo(o.Database))
	}
	if o.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	args = append(args, o.Dir)
	return runTool(ctx, o.Tools, "pg_restore", args)
}

// DumpRoles returns the SQL of pg_dumpall --roles-only: every role of the
// source, its attributes, settings and memberships; with passwords false,
// without their password verifiers (pg_authid, where they are kept, is for
// superusers only; pg_roles, which pg_dumpall then reads, is for anyone).
func DumpRoles(ctx context.Context, tools Install, conninfo string, passwords bool) (string, error) {
	args := []string{"--roles-only", "--no-password", "--dbname=" + conninfo}
	if !passwords {
		args = append(args, "--no-role-passwords")
	}
	var out bytes.Buffer
	if err := runToolOut(ctx, tools, "pg_dumpall", args, &out); err != nil {
		return "", err
	}
	return out.String(), nil
}

// RoleStatement is one statement of a roles dump and the role it makes or
// changes ("" for SET and the like).
type RoleStatement struct {
	SQL  string
	Role string
}

var (
	roleStmt     = regexp.MustCompile(`^(?:CREATE|ALTER) ROLE ("(?:[^"]|"")+"|[^\s;]+)`)
	passwordPart = regexp.MustCompile(` PASSWORD '(?:[^']|'')*'`)
)

// RoleStatements splits pg_dumpall --roles-only output into statements,
// leaving out comments and blank lines. pg_dumpall writes one statement a
// line; a quoted name may hold a newline, so a statement runs until a
// line ends with ';' outside quotes.
func RoleStatements(sql string) []RoleStatement {
	var out []RoleStatement
	var cur strings.Builder
	quotes := 0
	for _, line := range strings.Split(sql, "\n") {
		if cur.Len() == 0 && (strings.HasPrefix(line, "--") || strings.TrimSpace(line) == "" || strings.HasPrefix(line, `\`)) {
			continue
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
		quotes += strings.Count(line, `"`) + strings.Count(line, `'`)
		if quotes%2 == 0 && strings.HasSuffix(strings.TrimSpace(line), ";") {
			s := cur.String()
			st := RoleStatement{SQL: s}
			if m := roleStmt.FindStringSubmatch(s); m != nil {
				st.Role = unquoteIdent(m[1])
			}
			out = append(out, st)
			cur.Reset()
			quotes = 0
		}
	}
	return out
}

// WithoutPassword drops the PASSWORD clause of a CREATE or ALTER ROLE.
func WithoutPassword(stmt string) string { return passwordPart.ReplaceAllString(stmt, "") }

// DBNameConninfo is a --dbname argument that names database and nothing
// else: a bare name holding '=' or starting with postgresql:// would be
// read by libpq as connection settings.
func DBNameConninfo(database string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "dbname='" + r.Replace(database) + "'"
}

func unquoteIdent(s string) string {
	if strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) && len(s) >= 2 {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

func runTool(ctx context.Context, in Install, name string, args []string) error {
	var out bytes.Buffer
	return runToolOut(ctx, in, name, args, &out)
}

// runToolOut runs a client program of in with only the install's
// environment (so none of the caller's PG* variables, nor a PGPASSWORD,
// reaches it: the conninfo in args says where and the passfile it names
// with what); a failure carries the end of its stderr.
func runToolOut(ctx context.Context, in Install, name string, args []string, stdout *bytes.Buffer) error {
	cmd := exec.CommandContext(ctx, in.Bin(name), args...)
	cmd.Env = ToolEnv(in.Env(), "")
	var stderr bytes.Buffer
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(toolError(stderr.String()))
		if msg == "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Errorf("%s: %w:\n%s", name, err, msg)
	}
	return nil
}

// toolError is the part of a client tool's stderr that says what went
// wrong: from its first error line (pg_restore -j ends with "a worker
// process died", far below the cause), at most 10 lines.
func toolError(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i, l := range lines {
		if strings.Contains(l, "error:") || strings.Contains(l, "FATAL:") {
			lines = lines[i:]
			break
		}
	}
	if len(lines) > 10 {
		lines = lines[:10]
	}
	return strings.Join(lines, "\n")
}
