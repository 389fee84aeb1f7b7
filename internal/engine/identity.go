package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/pgconf"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage/drivers"
)

// What velo writes beside each data directory so that the storage itself
// says whose it is (DESIGN §5: the storage and the processes are the
// truth). The records can then be made again from the volumes when
// state.db is lost (RebuildState), and doctor can tell a volume of this
// home that lost its record from an orphan it may destroy. Nothing secret
// goes into a volume: volumes are cloned, snapshotted and may be copied
// off the host; the password stays in the home, beside state.db.
const (
	// identityFile, in a volume's root beside pgdata, says which home,
	// project and branch the volume belongs to.
	identityFile = "velo-volume.json"
	// snapshotNotes, in a volume's root, holds one file per snapshot taken
	// of the volume: what the snapshot's record held.
	snapshotNotes = "velo-snapshots"
)

// volumeIdentity is the content of identityFile.
type volumeIdentity struct {
	Version int             `json:"version"`
	Home    string          `json:"home"`
	Project identityProject `json:"project"`
	Branch  identityBranch  `json:"branch"`
	// Retired: the branch no longer uses this volume (a reset replaced it,
	// or the branch was deleted); it stays while snapshots depend on it.
	Retired   bool      `json:"retired,omitempty"`
	WrittenAt time.Time `json:"written_at"`
}

type identityProject struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Driver         string    `json:"driver"`
	Pool           string    `json:"pool"`
	PGMajor        int       `json:"pg_major"`
	ArchiveTimeout int       `json:"archive_timeout"`
	Listen         string    `json:"listen,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	// Source is where an imported project came from (it holds no secret).
	Source *state.Source `json:"source,omitempty"`
	// Runtime and Image: a project made with --image runs in containers
	// of Image ("" runtime in files from before it: native).
	Runtime string `json:"runtime,omitempty"`
	Image   string `json:"image,omitempty"`
	// Archive and ArchiveEndpoint: the WAL archive in object storage
	// (project set --archive); no credential. The upload records are not
	// kept here: after a rebuild each file is uploaded again, which the
	// store answers without writing when the object is there already.
	Archive         string `json:"archive,omitempty"`
	ArchiveEndpoint string `json:"archive_endpoint,omitempty"`
	// IdleSeconds and Mask: the default idle timeout of its branches and
	// the default mask script (project set --idle, --mask), which a
	// rebuild must not lose: without the mask, new branches would hold
	// the original values. The mask is in main's volume only: a script
	// may name values (in its WHERE clauses) that a masked branch's
	// volume, which may be copied off the host, should not show.
	IdleSeconds int    `json:"idle_seconds,omitempty"`
	Mask        string `json:"mask,omitempty"`
}

type identityBranch struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	ParentID         string    `json:"parent_id,omitempty"`
	ParentName       string    `json:"parent_name,omitempty"`
	VolumeID         string    `json:"volume_id"`
	OriginSnapshotID string    `json:"origin_snapshot_id,omitempty"`
	Port             int       `json:"port"`
	CreatedAt        time.Time `json:"created_at"`
	// PITRTarget and ExpiresAt are zero when the branch has none.
	PITRTarget time.Time `json:"pitr_target,omitzero"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	PITRLSN    string    `json:"pitr_lsn,omitempty"`
	Masked     bool      `json:"masked,omitempty"`
	// Protected and IdleSeconds: branch protect, branch set --idle.
	Protected   bool `json:"protected,omitempty"`
	IdleSeconds int  `json:"idle_seconds,omitempty"`
}

// snapshotNote is the content of one file in snapshotNotes.
type snapshotNote struct {
	ID          string    `json:"id"`
	BranchID    string    `json:"branch_id"`
	VolumeID    string    `json:"volume_id"`
	Label       string    `json:"label,omitempty"`
	User        bool      `json:"user"`
	BackupLabel string    `json:"backup_label,omitempty"`
	WALStart    string    `json:"wal_start,omitempty"`
	EndLSN      string    `json:"end_lsn,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Masked      bool      `json:"masked,omitempty"`
}

func identityOf(home string, p state.Project, b state.Branch, parentName string) volumeIdentity {
	if b.Name != MainBranch {
		p.Mask = ""
	}
	return volumeIdentity{Version: 1, Home: home, WrittenAt: time.Now().UTC(),
		Project: identityProject{ID: p.ID, Name: p.Name, Driver: p.Driver, Pool: p.Pool, PGMajor: p.PGMajor,
			ArchiveTimeout: p.ArchiveTimeout, Listen: p.Listen, CreatedAt: p.CreatedAt.UTC(), Source: p.Source,
			Runtime: p.Runtime, Image: p.Image, Archive: p.Archive, ArchiveEndpoint: p.ArchiveEndpoint, IdleSeconds: p.IdleSeconds, Mask: p.Mask},
		Branch: identityBranch{ID: b.ID, Name: b.Name, ParentID: b.ParentID, ParentName: parentName, VolumeID: b.VolumeID,
			OriginSnapshotID: b.OriginSnapshotID, Port: b.Port, CreatedAt: b.CreatedAt.UTC(), PITRTarget: b.PITRTarget, ExpiresAt: b.ExpiresAt, PITRLSN: b.PITRLSN, Masked: b.Masked,
			Protected: b.Protected, IdleSeconds: b.IdleSeconds}}
}

// writeIdentity records in b's volume (its root, dataDir's parent) whose
// it is, and keeps b's password in the home (secretFile); configure calls
// it, so every create, clone, reset and start brings both up to date.
func (e *Engine) writeIdentity(p state.Project, b state.Branch, dataDir string) error {
	parentName := ""
	if b.ParentID != "" && e.Store != nil {
		if pb, err := e.Store.Q().BranchByID(context.Background(), b.ParentID); err == nil {
			parentName = pb.Name
		}
	}
	if err := writeJSON(filepath.Join(filepath.Dir(dataDir), identityFile), identityOf(e.Home, p, b, parentName), 0o644); err != nil {
		return fmt.Errorf("write the identity of %s/%s's volume: %w", p.Name, b.Name, err)
	}
	return e.writeSecret(b)
}

// markRetired notes in a volume's identity that its branch no longer uses
// it, so that a rebuild records it as retired, not as the branch.
func markRetired(volumePath string) {
	path := filepath.Join(volumePath, identityFile)
	id, err := readIdentity(volumePath)
	if err != nil {
		return
	}
	id.Retired, id.WrittenAt = true, time.Now().UTC()
	_ = writeJSON(path, id, 0o644)
}

// readIdentity reads a volume's identity file.
func readIdentity(volumePath string) (volumeIdentity, error) {
	var id volumeIdentity
	b, err := os.ReadFile(filepath.Join(volumePath, identityFile))
	if err != nil {
		return id, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("%s: %w", filepath.Join(volumePath, identityFile), err)
	}
	if id.Branch.ID == "" || id.Project.ID == "" {
		return id, fmt.Errorf("%s names no branch", filepath.Join(volumePath, identityFile))
	}
	return id, nil
}

// writeSnapshotNote keeps what a snapshot's record holds in the root of
// the volume it was taken of (written after the snapshot, so the snapshot
// itself does not hold it).
func writeSnapshotNote(volumePath string, s state.Snapshot) error {
	dir := filepath.Join(volumePath, snapshotNotes)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := snapshotNote{ID: s.ID, BranchID: s.BranchID, VolumeID: s.VolumeID, Label: s.Label, User: s.User,
		BackupLabel: s.BackupLabel, WALStart: s.WALStart, EndLSN: s.EndLSN, CreatedAt: s.CreatedAt.UTC(), Masked: s.Masked}
	return writeJSON(filepath.Join(dir, s.ID+".json"), n, 0o644)
}

// readSnapshotNote reads the note of snapshot id from the volume it was taken of.
func readSnapshotNote(volumePath, id string) (snapshotNote, error) {
	var n snapshotNote
	b, err := os.ReadFile(filepath.Join(volumePath, snapshotNotes, id+".json"))
	if err != nil {
		return n, err
	}
	err = json.Unmarshal(b, &n)
	return n, err
}

// secretsDir holds each branch's password, one 0600 file per branch ID, in
// a 0700 directory of the home: where state.db keeps it too, with the
// same protection, so that a lost state.db does not lose the passwords.
func (e *Engine) secretsDir() string { return filepath.Join(e.Home, "secrets") }

func (e *Engine) secretFile(branchID string) string { return filepath.Join(e.secretsDir(), branchID) }

func (e *Engine) writeSecret(b state.Branch) error {
	if b.Password == "" {
		return nil
	}
	if cur, err := os.ReadFile(e.secretFile(b.ID)); err == nil && string(cur) == b.Password {
		return nil
	}
	if err := os.MkdirAll(e.secretsDir(), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(e.secretsDir(), 0o700); err != nil {
		return err
	}
	return pgconf.WriteAtomic(e.secretFile(b.ID), []byte(b.Password), 0o600)
}

func (e *Engine) readSecret(branchID string) (string, error) {
	b, err := os.ReadFile(e.secretFile(branchID))
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("empty")
	}
	return string(b), nil
}

func writeJSON(path string, v any, mode fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return pgconf.WriteAtomic(path, append(b, '\n'), mode)
}

// homeIdentitiesIn reads the identities of this home's volumes in a
// directory pool (the default pool, one named with --pool) without opening
// a driver, which could create the pool's directories.
func (e *Engine) homeIdentitiesIn(pool string) []volumeIdentity {
	var out []volumeIdentity
	found, _ := filepath.Glob(filepath.Join(drivers.Root(filepath.Clean(pool)), "vol", "*", identityFile))
	for _, f := range found {
		if id, err := readIdentity(filepath.Dir(f)); err == nil && id.Home == e.Home {
			out = append(out, id)
		}
	}
	return out
}
