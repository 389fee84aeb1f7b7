package engine

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/ui"
)

// TestUndoFailureWarnsWhenQuiet: a command whose step fails and whose undo
// fails too says so on stderr even with its progress quiet (--json, a read
// command), and its journal entry stays open for velo doctor.
func TestUndoFailureWarnsWhenQuiet(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	e, err := New(ctx, Config{Home: filepath.Join(t.TempDir(), "home"), Runtime: native.New(), Pools: drivers.Pools{},
		Progress: ui.NewPrinter(&bytes.Buffer{}, &stderr, true, false).Progress(), Command: "velo test"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	failed := errors.New("step failed")
	err = e.mutate(ctx, func(op *op) error {
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
