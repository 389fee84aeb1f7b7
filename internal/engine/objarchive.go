package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/state"
)

// A project's WAL archive in object storage. The local archive of each
// volume (archiveDir) stays the durable buffer that archive_command
// writes to; every file of it is copied to the project's bucket under
//
//	PREFIX/velo-project.json        the marker: which project owns PREFIX
//	PREFIX/wal/VOLUME/FILE          segments, .history, .backup, .partial
//
// by velo wal push and velo serve (upload.go), and recorded in
// state.archive_objects once its checksum was read back from the store.

// ArchiveNone is the --archive value that turns the archive off.
const ArchiveNone = "none"

// markerName is the object that names the project owning a prefix.
const markerName = "velo-project.json"

type marker struct {
	ProjectID string `json:"project_id"`
}

// ArchiveSetting is what --archive and --archive-endpoint ask for.
type ArchiveSetting struct {
	Off      bool // --archive none
	Loc      objstore.Location
	Endpoint string
}

// ParseArchive checks --archive and --archive-endpoint before anything is
// done: s3://BUCKET/PREFIX or none, and an http(s) URL without
// credentials, which means nothing with none.
func ParseArchive(archive, endpoint string) (ArchiveSetting, error) {
	if archive == ArchiveNone {
		if endpoint != "" {
			return ArchiveSetting{}, errdefs.Invalid("--archive-endpoint has no use with --archive none: drop it")
		}
		return ArchiveSetting{Off: true}, nil
	}
	if archive == "" {
		return ArchiveSetting{}, errdefs.Invalid("--archive: give s3://BUCKET/PREFIX, or none to turn the archive off")
	}
	loc, err := objstore.ParseLocation(archive)
	if err != nil {
		return ArchiveSetting{}, err
	}
	if err := objstore.ValidateEndpoint(endpoint); err != nil {
		return ArchiveSetting{}, err
	}
	return ArchiveSetting{Loc: loc, Endpoint: endpoint}, nil
}

// openArchive opens the store of p's archive; p must have one.
func openArchive(ctx context.Context, p state.Project) (*objstore.Store, error) {
	loc, err := objstore.ParseLocation(p.Archive)
	if err != nil {
		return nil, fmt.Errorf("project %s: its recorded archive: %w", p.Name, err)
	}
	return objstore.Open(ctx, loc, p.ArchiveEndpoint)
}

// claimBucket proves that the store at a is reachable and writable with
// the credentials of the AWS chain, and that its prefix is free or already
// projectID's: it writes the marker naming projectID when there is none.
// An empty projectID only checks (a project not made yet): any marker
// there is another project's.
func claimBucket(ctx context.Context, a ArchiveSetting, projectID string) error {
	st, err := objstore.Open(ctx, a.Loc, a.Endpoint)
	if err != nil {
		return err
	}
	if err := st.Check(ctx); err != nil {
		return err
	}
	b, err := st.GetBytes(ctx, markerName)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		if projectID == "" {
			return nil
		}
		m, _ := json.Marshal(marker{ProjectID: projectID})
		if _, err := st.PutBytes(ctx, markerName, append(m, '\n')); err != nil {
			if errors.Is(err, objstore.ErrConflict) {
				return errdefs.FailedPrecondition("%s was claimed by another project at the same moment; give another --archive prefix", a.Loc)
			}
			return err
		}
		return nil
	case err != nil:
		return err
	}
	var m marker
	if jerr := json.Unmarshal(b, &m); jerr != nil || m.ProjectID == "" {
		return errdefs.FailedPrecondition("%s holds a %s that velo cannot read: it is not this project's archive; give another --archive prefix", a.Loc, markerName)
	}
	if m.ProjectID != projectID {
		return errdefs.FailedPrecondition("%s holds the WAL archive of another project (id %s, in its %s); give another --archive prefix (s3://%s/OTHER), or, if that project is gone for good, delete the prefix's objects from the bucket first",
			a.Loc, m.ProjectID, markerName, a.Loc.Bucket)
	}
	return nil
}

// SetArchive sets (or with --archive none clears) the project's archive in
// object storage, after checking the bucket; nothing changes when a
// check fails.
func (e *Engine) SetArchive(ctx context.Context, name, archive, endpoint string) error {
	if err := ValidateName("project", name); err != nil {
		return err
	}
	a, err := ParseArchive(archive, endpoint)
	if err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, name)
		if err != nil {
			return err
		}
		if a.Off {
			if p.Archive == "" {
				return nil
			}
			return e.recordArchive(ctx, op, p, "", "")
		}
		if p.Archive == a.Loc.String() && p.ArchiveEndpoint == a.Endpoint {
			// The same again: checked again, the records kept.
			return claimBucket(ctx, a, p.ID)
		}
		e.Progress.Title("Checking %s...", a.Loc)
		if err := claimBucket(ctx, a, p.ID); err != nil {
			return err
		}
		return e.recordArchive(ctx, op, p, a.Loc.String(), a.Endpoint)
	})
}

func (e *Engine) recordArchive(ctx context.Context, op *op, p state.Project, url, endpoint string) error {
	if err := op.record(ctx, stepWriteState, subject{Record: "project", ID: p.Name}); err != nil {
		return err
	}
	if err := e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.SetArchive(ctx, p.ID, url, endpoint) }); err != nil {
		return err
	}
	e.refreshIdentities(ctx, p.ID)
	return nil
}

// walKey is the object name of a file of a volume's local archive.
func walKey(volumeID, name string) string { return "wal/" + volumeID + "/" + name }

// ArchiveSummary is what `status` and `project get` say of a project's
// archive in object storage.
type ArchiveSummary struct {
	URL      string
	Endpoint string
	ArchiveCounts
	Warning string
}

// describeArchive sums up p's archive, nil when it has none.
func (e *Engine) describeArchive(ctx context.Context, p state.Project) *ArchiveSummary {
	if p.Archive == "" {
		return nil
	}
	s := &ArchiveSummary{URL: p.Archive, Endpoint: p.ArchiveEndpoint}
	vols, err := e.archiveVolumes(ctx, p)
	if err != nil {
		s.Warning = err.Error()
		return s
	}
	var dirs []string
	for _, v := range vols {
		c, err := e.archiveCounts(ctx, p, v)
		if err != nil {
			s.Warning = err.Error()
			return s
		}
		s.add(c)
		dirs = append(dirs, e.archiveDir(v))
	}
	st, _ := e.Store.Q().UploadStatus(ctx, p.ID)
	s.LastError, s.LastErrorAt, s.LastUploadAt = st.LastError, st.LastErrorAt, st.LastUploadAt
	if len(dirs) > 0 {
		s.Warning = spaceWarning(dirs[0], s.LocalOnlyBytes, s.behind())
	}
	return s
}

// archiveVolumes are the volumes whose local archives p uploads: its
// branches' and those a reset retired (their snapshots still need them).
func (e *Engine) archiveVolumes(ctx context.Context, p state.Project) ([]string, error) {
	bs, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.VolumeID)
	}
	retired, err := e.Store.Q().RetiredVolumes(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return append(out, retired...), nil
}

// quoteErr keeps an upload error to one line for status.
func quoteErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
