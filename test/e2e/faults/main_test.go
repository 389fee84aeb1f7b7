package faults

import (
	"testing"

	"github.com/velohq/velo/test/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// env is the harness's Env, with this package's own helpers as methods.
type env struct{ *harness.Env }

func newEnv(t testing.TB, driver string) *env { return &env{harness.NewEnv(t, driver)} }

func newEnvSized(t testing.TB, driver string, size int64) *env {
	return &env{harness.NewEnvSized(t, driver, size)}
}
