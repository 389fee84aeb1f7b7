// Package testenv guards tests that need something from the host: root, a
// command, a filesystem, a Postgres install.
//
// A test that cannot run skips with the reason, so `go test ./...` stays green
// on a laptop. CI sets VELO_TEST_REQUIRE=all (or a comma-separated list such as
// "root,zfs") and then the same skip fails the test instead: a suite that
// silently skipped everything would otherwise look like a suite that passed.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv is the environment variable naming what must not be skipped.
const RequireEnv = "VELO_TEST_REQUIRE"

// Required reports whether VELO_TEST_REQUIRE is "all" or lists what.
func Required(what string) bool {
	v := strings.TrimSpace(os.Getenv(RequireEnv))
	if v == "" {
		return false
	}
	for _, w := range strings.Split(v, ",") {
		w = strings.TrimSpace(w)
		if w == "all" || w == what {
			return true
		}
	}
	return false
}

// Skip skips the test with reason, unless VELO_TEST_REQUIRE is "all" or a
// comma-separated list containing what, in which case it fails it with the
// reason.
func Skip(t testing.TB, what, reason string) {
	t.Helper()
	if Required(what) {
		t.Fatalf("%s required (%s=%q): %s", what, RequireEnv, os.Getenv(RequireEnv), reason)
	}
	t.Skipf("skipping: %s", reason)
}

// RequireRoot skips the test unless it runs with effective uid 0
// (what="root").
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "root", "test needs root (euid 0)")
	}
}

// RequireCommand returns the path of the command name found in PATH, or
// skips the test (what=name).
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, name, "command "+name+" not found in PATH")
	}
	return p
}
