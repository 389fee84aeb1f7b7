package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/errdefs"
)

func TestRecordsRoundTrip(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{home: 0o711, s.Path(): 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	p := Project{ID: "p1", Name: "demo", Driver: "btrfs", Pool: "/pool", PGMajor: 15, CreatedAt: now}
	main := Branch{ID: "b1", ProjectID: "p1", Name: "main", VolumeID: "v1", Port: 5433, Password: "pw", CreatedAt: now}
	dev := Branch{ID: "b2", ProjectID: "p1", Name: "dev", ParentID: "b1", VolumeID: "v2", OriginSnapshotID: "s1", Port: 5434, Password: "pw", CreatedAt: now.Add(time.Second)}
	err = s.Tx(ctx, func(tx *Tx) error {
		if err := tx.InsertProject(ctx, p); err != nil {
			return err
		}
		if err := tx.InsertBranch(ctx, main); err != nil {
			return err
		}
		if err := tx.InsertSnapshot(ctx, "p1", Snapshot{ID: "s1", BranchID: "b1", VolumeID: "v1", CreatedAt: now}); err != nil {
			return err
		}
		return tx.InsertBranch(ctx, dev)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Q().Branch(ctx, "p1", "dev")
	if err != nil || got != dev {
		t.Errorf("Branch = %+v, %v; want %+v", got, err, dev)
	}
	if _, err := s.Q().Branch(ctx, "p1", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing branch: %v", err)
	}
	// A duplicate port is refused by the schema, and the transaction changes nothing.
	err = s.Tx(ctx, func(tx *Tx) error {
		if err := tx.InsertProject(ctx, Project{ID: "p2", Name: "other", Driver: "copy", Pool: "/x", PGMajor: 15, CreatedAt: now}); err != nil {
			return err
		}
		return tx.InsertBranch(ctx, Branch{ID: "b3", ProjectID: "p2", Name: "main", VolumeID: "v3", Port: 5433, Password: "x", CreatedAt: now})
	})
	if err == nil {
		t.Fatal("duplicate port accepted")
	}
	if _, err := s.Q().Project(ctx, "other"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("failed transaction left a project: %v", err)
	}
	ports, _ := s.Q().Ports(ctx)
	if !ports[5433] || !ports[5434] || len(ports) != 2 {
		t.Errorf("ports = %v", ports)
	}
	if err := s.Integrity(ctx); err != nil {
		t.Error(err)
	}
}

func TestJournal(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	op, err := s.BeginOperation(ctx, "velo branch create demo/dev")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.RecordStep(ctx, op, "snapshot", "s1")
	_ = s.RecordStep(ctx, op, "clone", "v2")
	ops, err := s.UnfinishedOperations(ctx)
	if err != nil || len(ops) != 1 || len(ops[0].Steps) != 2 || ops[0].Steps[1].Action != "clone" {
		t.Fatalf("unfinished = %+v, %v", ops, err)
	}
	if err := s.FinishOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	if ops, _ := s.UnfinishedOperations(ctx); len(ops) != 0 {
		t.Errorf("finished operation still listed: %+v", ops)
	}
}

func TestLockNamesHolder(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	l, err := Acquire(ctx, home, "velo branch create demo/dev", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks are per open file description: a second Flock in the same
	// process contends like another process would.
	var waited Holder
	_, err = Acquire(ctx, home, "velo branch delete demo/dev", 200*time.Millisecond, func(h Holder) { waited = h })
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "velo branch create demo/dev") || !strings.Contains(err.Error(), "pid") {
		t.Errorf("second lock: %v", err)
	}
	if waited.PID != os.Getpid() {
		t.Errorf("holder pid = %d", waited.PID)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(ctx, home, "x", time.Second, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}
