package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/ui"
)

// bareEngine is an engine on a new home with the native runtime and the
// drivers, its progress on stderr (quiet as under --json): enough for the
// journal and doctor's reading of it, without root or Postgres.
func bareEngine(t *testing.T, home string, stderr io.Writer, quiet bool) *Engine {
	t.Helper()
	e, err := New(context.Background(), Config{Home: home, Runtime: native.New(), Pools: drivers.Pools{},
		Progress: ui.NewPrinter(&bytes.Buffer{}, stderr, quiet, false).Progress(), Command: "velo test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestUndoFailureWarnsWhenQuiet: a command whose step fails and whose undo
// fails too says so on stderr even with its progress quiet (--json, a read
// command), and its journal entry stays open for velo doctor.
func TestUndoFailureWarnsWhenQuiet(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	e := bareEngine(t, filepath.Join(t.TempDir(), "home"), &stderr, true)
	failed := errors.New("step failed")
	err := e.mutate(ctx, func(op *op) error {
		op.onFail(func(context.Context) error { return errors.New("volume v1 is busy") })
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("mutate = %v, want the step's error", err)
	}
	if got := stderr.String(); !strings.Contains(got, "warning: undo failed: volume v1 is busy (run velo doctor)") {
		t.Errorf("stderr = %q, want the undo's failure", got)
	}
	ops, err := e.Store.UnfinishedOperations(ctx)
	if err != nil || len(ops) != 1 {
		t.Errorf("unfinished operations = %v, %v; want the failed one", ops, err)
	}
}
