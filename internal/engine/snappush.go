package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
)

// Snapshots in object storage (velo snapshot push). A pushed snapshot is
//
//	PREFIX/snapshots/ID/data.tar.00000, ...   the tar of its data directory, in parts
//	PREFIX/snapshots/ID/manifest.json         what it is and what it needs
//
// written once each; the manifest last, so a snapshot without one was not
// pushed whole and is never restored from. The tar is read from a clone of
// the snapshot (any driver can clone), destroyed afterwards. Every push is
// a whole copy: no driver's incremental stream (zfs send -i) is used.

// manifestVersion is Manifest.Format: a reader refuses a format it does
// not know.
const manifestVersion = 1

// Manifest describes one pushed snapshot.
type Manifest struct {
	Format    int    `json:"format"`
	Snapshot  string `json:"snapshot"`
	ProjectID string `json:"project_id"`
	Project   string `json:"project"`
	Branch    string `json:"branch"`
	// Volume is the volume the snapshot was taken of: its WAL, after the
	// snapshot, is in PREFIX/wal/VOLUME/.
	Volume  string `json:"volume"`
	PGMajor int    `json:"pg_major"`
	// Superuser is the data's bootstrap superuser, Velo's way in on a copy.
	Superuser string    `json:"superuser"`
	CreatedAt time.Time `json:"created_at"`
	PushedAt  time.Time `json:"pushed_at"`
	// The WAL a recovery from it needs: from StartSegment (where its
	// checkpoint or backup began) to EndLSN, in EndSegment, the position
	// its data reaches.
	StartSegment string `json:"start_segment"`
	EndLSN       string `json:"end_lsn"`
	EndSegment   string `json:"end_segment"`
	// BackupLabel is the backup_label a copy of a non-atomic snapshot needs.
	BackupLabel string          `json:"backup_label,omitempty"`
	Size        int64           `json:"size"`
	Parts       []objstore.Part `json:"parts"`
	Masked      bool            `json:"masked,omitempty"`
}

func snapshotKey(id, name string) string { return "snapshots/" + id + "/" + name }

// SnapshotPush is what velo snapshot push did.
type SnapshotPush struct {
	ID      string
	Archive string
	Already bool // it was in the bucket before
	Size    int64
	Parts   int
	// WAL is the upload round of the project's WAL that followed.
	WALUploaded int
	WALError    string
}

// PushSnapshot stores snapshot prefix (ID or unique prefix) in its
// project's archive bucket: the tar of its data, then its manifest. A
// snapshot already pushed is left as it is. The project's WAL is uploaded
// after it, so that the WAL a restore needs is there too.
func (e *Engine) PushSnapshot(ctx context.Context, prefix string) (SnapshotPush, error) {
	var res SnapshotPush
	if err := ValidateSnapshotPrefix(prefix); err != nil {
		return res, err
	}
	var p state.Project
	err := e.mutate(ctx, func(op *op) error {
		s, err := e.resolveSnapshot(ctx, prefix)
		if err != nil {
			return err
		}
		pid, err := e.Store.Q().SnapshotProject(ctx, s.ID)
		if err != nil {
			return err
		}
		if p, err = e.Store.Q().ProjectByID(ctx, pid); err != nil {
			return err
		}
		return e.pushSnapshot(ctx, op, p, s, &res)
	})
	if err != nil || res.Already {
		return res, err
	}
	// The WAL after it, best effort: velo serve or velo wal push retries.
	r := e.pushProject(ctx, p)
	res.WALUploaded = r.Uploaded
	if len(r.Errors) > 0 {
		res.WALError = r.Errors[0]
	}
	return res, nil
}

// pushSnapshot is PushSnapshot under the lock, for one snapshot of p.
func (e *Engine) pushSnapshot(ctx context.Context, op *op, p state.Project, s state.Snapshot, res *SnapshotPush) error {
	res.ID, res.Archive = s.ID, p.Archive
	if p.Archive == "" {
		return errdefs.FailedPrecondition("project %s has no archive in object storage to push snapshot %s to; set one with velo project set %s --archive s3://BUCKET/PREFIX", p.Name, s.ID, p.Name)
	}
	if s.WALStart == "" || s.EndLSN == "" {
		return errdefs.FailedPrecondition("snapshot %s does not record the WAL it needs (it was made by an older velo); take a new one with velo snapshot create --push", s.ID)
	}
	st, err := openArchive(ctx, p)
	if err != nil {
		return err
	}
	e.Progress.Title("Pushing snapshot %s of %s to %s...", s.ID, p.Name, p.Archive)
	if err := e.Progress.Step("Check the bucket", func() error { return st.Check(ctx) }); err != nil {
		return err
	}
	if b, err := st.GetBytes(ctx, snapshotKey(s.ID, "manifest.json")); err == nil {
		var m Manifest
		if json.Unmarshal(b, &m) == nil {
			res.Already, res.Size, res.Parts = true, m.Size, len(m.Parts)
			e.Progress.Note("snapshot %s is in %s already", s.ID, p.Archive)
			return nil
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	d, err := e.driver(ctx, p)
	if err != nil {
		return err
	}
	if err := e.ensureDirs(); err != nil {
		return err
	}
	// A clone to read the snapshot's files from, whatever the driver.
	tmp := newID("v")
	if err := op.record(ctx, stepClone, subject{Driver: d.Name(), Pool: p.Pool, ID: tmp}); err != nil {
		return err
	}
	var vol string
	if err := e.Progress.Step("Clone snapshot", func() error { vol, err = d.Clone(ctx, s.ID, tmp); return err }); err != nil {
		return err
	}
	destroy := func(ctx context.Context) error { return ignoreNotFound(d.DestroyVolume(ctx, tmp)) }
	op.onFail(destroy)
	if err := op.record(ctx, stepUpload, subject{ID: s.ID}); err != nil {
		return err
	}
	var parts []objstore.Part
	err = e.Progress.Transfer("Upload data", func(report func(done, total int64)) error {
		pr, pw := io.Pipe()
		var done int64
		go func() {
			pw.CloseWithError(pg.TarDataDir(pw, dataDir(vol), func(n int64) { done += n; report(done, 0) }))
		}()
		defer pr.Close()
		parts, err = st.PutStream(ctx, snapshotKey(s.ID, "data.tar"), pr, e.runDir())
		return err
	})
	if err != nil {
		return err
	}
	m := Manifest{Format: manifestVersion, Snapshot: s.ID, ProjectID: p.ID, Project: p.Name, Volume: s.VolumeID, PGMajor: p.PGMajor,
		Superuser: pg.Superuser, CreatedAt: s.CreatedAt, PushedAt: time.Now().UTC(),
		StartSegment: s.WALStart, EndLSN: s.EndLSN, BackupLabel: s.BackupLabel, Parts: parts, Masked: s.Masked}
	if imported(p) {
		m.Superuser = p.Source.Superuser
	}
	if b, err := e.Store.Q().BranchByID(ctx, s.BranchID); err == nil {
		m.Branch = b.Name
	}
	if lsn, err := pg.ParseLSN(s.EndLSN); err == nil {
		m.EndSegment = segmentOf(s.WALStart, lsn)
	}
	for _, part := range parts {
		m.Size += part.Size
	}
	doc, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := e.Progress.Step("Upload manifest", func() error {
		_, err := st.PutBytes(ctx, snapshotKey(s.ID, "manifest.json"), append(doc, '\n'))
		return err
	}); err != nil {
		return err
	}
	res.Size, res.Parts = m.Size, len(parts)
	op.commit()
	if err := op.record(ctx, stepDestroyVolume, subject{ID: tmp}); err != nil {
		return err
	}
	return e.Progress.Step("Destroy clone", func() error { return destroy(ctx) })
}

// segmentOf is the name of the WAL segment holding lsn on the timeline of
// segment start (16 MB segments, Velo's initdb's).
func segmentOf(start string, lsn pg.LSN) string {
	if len(start) < 8 {
		return ""
	}
	n := uint64(lsn) / (16 << 20)
	return fmt.Sprintf("%s%08X%08X", strings.ToUpper(start[:8]), n/0x100, n%0x100)
}

// readManifests lists the pushed snapshots under st, oldest first; a
// manifest that cannot be read is skipped with a note, and its key
// returned in skipped.
func (e *Engine) readManifests(ctx context.Context, st *objstore.Store) (out []Manifest, skipped []string, err error) {
	objs, err := st.List(ctx, "snapshots")
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if objstore.Base(o.Key) != "manifest.json" {
			continue
		}
		rel := strings.TrimPrefix(o.Key, st.Loc.Key(""))
		rel = strings.TrimPrefix(rel, "/")
		b, err := st.GetBytes(ctx, rel)
		if err != nil {
			e.Progress.Note("skipped %s: %v", o.Key, err)
			skipped = append(skipped, o.Key)
			continue
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil || m.Format != manifestVersion || m.Snapshot == "" || len(m.Parts) == 0 {
			e.Progress.Note("skipped %s: not a manifest this velo reads", o.Key)
			skipped = append(skipped, o.Key)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, skipped, nil
}
