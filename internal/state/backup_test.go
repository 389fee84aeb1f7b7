package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBackupRotatesAndRestores(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	p := Project{ID: "p1", Name: "demo", Driver: "copy", Pool: "/pool", PGMajor: 15, CreatedAt: time.Now()}
	if err := s.Q().InsertProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < KeepBackups+3; i++ {
		if _, err := s.Backup(ctx, KeepBackups); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	bs := Backups(home)
	if len(bs) != KeepBackups {
		t.Fatalf("%d backups kept, want %d: %v", len(bs), KeepBackups, bs)
	}
	for _, path := range []string{BackupDir(home), bs[0]} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if info.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
	if bs[0] < bs[1] {
		t.Errorf("backups not newest first: %v", bs[:2])
	}
	if err := Check(ctx, bs[0]); err != nil {
		t.Fatalf("check of a good backup: %v", err)
	}
	restored := filepath.Join(t.TempDir(), "state.db")
	if err := CopyFile(ctx, bs[0], restored); err != nil {
		t.Fatal(err)
	}
	r, err := OpenFile(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.Q().Project(ctx, "demo"); err != nil || got.ID != "p1" {
		t.Errorf("restored project = %+v, %v", got, err)
	}
}

// A truncated state.db is said to be corrupt, with the path and the fix.
func TestOpenCorrupt(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := s.BeginOperation(ctx, strings.Repeat("velo branch create demo/x ", 20)); err != nil {
			t.Fatal(err)
		}
	}
	path := s.Path()
	s.Close()
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	_, err = Open(ctx, home)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a truncated state.db: %v, want ErrCorrupt", err)
	}
	for _, want := range []string{path, "corrupt", "velo doctor --rebuild-state"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if err := Check(ctx, path); err == nil {
		t.Error("Check passes a truncated database")
	}

	// Not a database at all.
	if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(ctx, home); !errors.Is(err, ErrCorrupt) {
		t.Errorf("open of a file that is not a database: %v, want ErrCorrupt", err)
	}
}

// A state.db that is gone while its backups are not is refused, not made
// again empty.
func TestOpenMissingWithBackups(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(ctx, KeepBackups); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	_, err = Open(ctx, home)
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "velo doctor --rebuild-state") {
		t.Fatalf("open with state.db gone and backups present: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused open made %s (%v)", path, err)
	}
}
