package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/state"
)

func TestIdentityRoundTrip(t *testing.T) {
	home, vol := t.TempDir(), t.TempDir()
	e := &Engine{Home: home}
	p := state.Project{ID: "p1", Name: "demo", Driver: "btrfs", Pool: "/pool", PGMajor: 17, ArchiveTimeout: 60, CreatedAt: time.Now(),
		Archive: "s3://velo-wal/demo", ArchiveEndpoint: "http://127.0.0.1:7070"}
	b := state.Branch{ID: "b2", ProjectID: "p1", Name: "dev", ParentID: "b1", VolumeID: "v2", OriginSnapshotID: "s1", Port: 5433, Password: "secret-password-of-24chars", CreatedAt: time.Now()}
	if err := e.writeIdentity(p, b, filepath.Join(vol, "pgdata")); err != nil {
		t.Fatal(err)
	}
	id, err := readIdentity(vol)
	if err != nil {
		t.Fatal(err)
	}
	if id.Home != home || id.Project.Name != "demo" || id.Project.PGMajor != 17 || id.Branch.ParentID != "b1" || id.Branch.Port != 5433 || id.Retired ||
		id.Project.Archive != p.Archive || id.Project.ArchiveEndpoint != p.ArchiveEndpoint {
		t.Errorf("identity = %+v", id)
	}
	raw, _ := os.ReadFile(filepath.Join(vol, identityFile))
	if len(raw) == 0 || strings.Contains(string(raw), b.Password) {
		t.Errorf("the identity file holds the password (or nothing):\n%s", raw)
	}
	if pw, err := e.readSecret("b2"); err != nil || pw != b.Password {
		t.Errorf("secret = %q, %v", pw, err)
	}
	for path, want := range map[string]os.FileMode{e.secretsDir(): 0o700, e.secretFile("b2"): 0o600} {
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %v", path, err, want)
		}
	}
	markRetired(vol)
	if id, err := readIdentity(vol); err != nil || !id.Retired {
		t.Errorf("after markRetired: %+v, %v", id, err)
	}
	s := state.Snapshot{ID: "s9", BranchID: "b2", VolumeID: "v2", Label: "before", User: true, BackupLabel: "START WAL LOCATION: 0/2000028", CreatedAt: time.Now().UTC()}
	if err := writeSnapshotNote(vol, s); err != nil {
		t.Fatal(err)
	}
	if n, err := readSnapshotNote(vol, "s9"); err != nil || n.Label != "before" || !n.User || n.BackupLabel != s.BackupLabel || !n.CreatedAt.Equal(s.CreatedAt) {
		t.Errorf("note = %+v, %v", n, err)
	}
}

// TestIdentityKeepsSettings: what a rebuild must not lose (protection,
// idle timeouts, the project's default mask) is in the identity; the mask
// in main's volume only.
func TestIdentityKeepsSettings(t *testing.T) {
	p := state.Project{ID: "p1", Name: "demo", IdleSeconds: 600, Mask: "UPDATE users SET email = 'x';"}
	main := identityOf("/h", p, state.Branch{ID: "b1", Name: MainBranch}, "")
	dev := identityOf("/h", p, state.Branch{ID: "b2", Name: "dev", Protected: true, IdleSeconds: 60, Masked: true}, "main")
	if main.Project.Mask != p.Mask || main.Project.IdleSeconds != 600 {
		t.Errorf("main's identity: %+v", main.Project)
	}
	if dev.Project.Mask != "" || dev.Project.IdleSeconds != 600 || !dev.Branch.Protected || dev.Branch.IdleSeconds != 60 || !dev.Branch.Masked {
		t.Errorf("dev's identity: %+v %+v", dev.Project, dev.Branch)
	}
}

func TestJournalNamed(t *testing.T) {
	ops := []state.Operation{{Steps: []state.Step{
		{Action: "create-volume", Subject: "btrfs:/mnt/pool:v1"},
		{Action: "snapshot", Subject: "zfs:tank:s2"},
		{Action: "clone", Subject: "copy:/a:b/c:v3"},
		{Action: "start-server", Subject: "/mnt/pool/velo/vol/v9/pgdata"},
	}}}
	got := journalNamed(readJournal(ops))
	for _, id := range []string{"v1", "s2", "v3"} {
		if !got[id] {
			t.Errorf("%s is not journal-named: %v", id, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("journalNamed = %v", got)
	}
}
