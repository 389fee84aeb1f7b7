package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage/drivers"
)

// TestSnapshotDeleteFindsClones: snapshot delete refuses a snapshot that a
// branch was made from, naming it (one branch: "that branch"), and one the
// storage lists a clone of that no branch has, naming the volume; the
// refusals change nothing, and the snapshot goes once nothing is made
// from it.
func TestSnapshotDeleteFindsClones(t *testing.T) {
	ctx := context.Background()
	e, _, pool := newEngine(t)
	if _, err := e.CreateProject(ctx, engine.CreateProjectOptions{Name: "s", Pool: pool, Storage: "copy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateBranch(ctx, engine.CreateBranchOptions{Ref: "s/dev"}); err != nil {
		t.Fatal(err)
	}
	origin := newestSnapshot(t, e, "s/main", 2) // project create's base, then dev's origin
	if len(origin.Clones) != 1 || origin.Clones[0] != "s/dev" {
		t.Fatalf("s/dev's origin snapshot %s lists clones %v", origin.ID, origin.Clones)
	}
	_, err := e.DeleteSnapshot(ctx, origin.ID)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "s/dev was made from; delete that branch first") {
		t.Errorf("delete of s/dev's origin: %v; want a refusal naming s/dev", err)
	}

	user, err := e.CreateSnapshot(ctx, "s/main", "kept")
	if err != nil {
		t.Fatal(err)
	}
	d, err := drivers.Open(ctx, "copy", pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Clone(ctx, user.ID, "vorphan"); err != nil {
		t.Fatal(err)
	}
	_, err = e.DeleteSnapshot(ctx, user.ID)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "volume vorphan (no branch has it") {
		t.Errorf("delete of a snapshot with a clone no branch has: %v; want a refusal naming volume vorphan", err)
	}
	if n := len(snapshots(t, e, "s/main")); n != 3 {
		t.Errorf("refused deletes left %d snapshots of s/main, want 3", n)
	}

	if err := d.DestroyVolume(ctx, "vorphan"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DeleteSnapshot(ctx, user.ID); err != nil {
		t.Errorf("delete of a snapshot nothing was made from: %v", err)
	}
}

func snapshots(t *testing.T, e *engine.Engine, ref string) []engine.SnapshotInfo {
	t.Helper()
	s, err := e.Snapshots(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newestSnapshot is ref's newest snapshot, checking that it has n.
func newestSnapshot(t *testing.T, e *engine.Engine, ref string, n int) engine.SnapshotInfo {
	t.Helper()
	s := snapshots(t, e, ref)
	if len(s) != n {
		t.Fatalf("%s has %d snapshots, want %d", ref, len(s), n)
	}
	return s[0]
}
