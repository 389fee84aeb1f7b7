package native_test

import (
	"testing"

	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/runtime/runtimetest"
	"github.com/velohq/velo/internal/testenv"
)

func newRuntime() runtime.Runtime { return native.New() }

// TestNative runs the conformance suite once per Postgres install found. The
// tests run as root; the servers run as the postgres user.
func TestNative(t *testing.T) {
	testenv.RequireRoot(t)
	runtimetest.Suite(t, newRuntime)
}

func BenchmarkStart(b *testing.B) {
	testenv.RequireRoot(b)
	runtimetest.Benchmark(b, newRuntime)
}
