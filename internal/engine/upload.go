package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/ui"
)

// archiveFileName is every file archive_command leaves in a local
// archive: segments, a timeline's last .partial segment, .backup labels
// and .history files. basic_archive writes each under a temporary name
// and renames it into place, so a file of such a name is complete.
var archiveFileName = regexp.MustCompile(`^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$`)

// archiveFile is one file of a local archive.
type archiveFile struct {
	Name string
	Size int64
	Time time.Time
}

// archiveFiles lists the files of a local archive to upload, by name
// (so history files first, then segments oldest first).
func archiveFiles(dir string) ([]archiveFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []archiveFile
	for _, en := range entries {
		if !archiveFileName.MatchString(en.Name()) {
			continue
		}
		info, err := en.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out = append(out, archiveFile{Name: en.Name(), Size: info.Size(), Time: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ArchiveCounts is where one archive's files are: only in the local
// archive (not uploaded yet), or in the bucket too.
type ArchiveCounts struct {
	LocalOnly      int
	LocalOnlyBytes int64
	InBucket       int
	InBucketBytes  int64
	// OldestPending is when the oldest file not uploaded yet was archived
	// (zero: none waits); the upload lag is its age.
	OldestPending time.Time
	LastUploadAt  time.Time
	LastError     string
	LastErrorAt   time.Time
}

func (c *ArchiveCounts) add(o ArchiveCounts) {
	c.LocalOnly += o.LocalOnly
	c.LocalOnlyBytes += o.LocalOnlyBytes
	c.InBucket += o.InBucket
	c.InBucketBytes += o.InBucketBytes
	if !o.OldestPending.IsZero() && (c.OldestPending.IsZero() || o.OldestPending.Before(c.OldestPending)) {
		c.OldestPending = o.OldestPending
	}
}

// Lag is the age of the oldest file not uploaded yet; 0 when none waits.
func (c ArchiveCounts) Lag(now time.Time) time.Duration {
	if c.OldestPending.IsZero() {
		return 0
	}
	return now.Sub(c.OldestPending)
}

// behindAfter is how long a file may wait before uploads count as behind
// even without an error (velo serve not running).
const behindAfter = 5 * time.Minute

// Behind: files wait and the last upload failed, or they wait too long.
func (c ArchiveCounts) Behind(now time.Time) bool {
	return c.LocalOnly > 0 && (c.LastError != "" || c.Lag(now) > behindAfter)
}

func (c ArchiveCounts) behind() bool { return c.Behind(time.Now()) }

// archiveCounts counts one volume's archive against the upload records.
func (e *Engine) archiveCounts(ctx context.Context, p state.Project, volumeID string) (ArchiveCounts, error) {
	var c ArchiveCounts
	files, err := archiveFiles(e.archiveDir(volumeID))
	if err != nil {
		return c, err
	}
	recs, err := e.Store.Q().ArchiveObjects(ctx, p.ID, volumeID)
	if err != nil {
		return c, err
	}
	up := map[string]bool{}
	for _, r := range recs {
		up[r.Name] = true
		c.InBucket++
		c.InBucketBytes += r.Size
	}
	for _, f := range files {
		if up[f.Name] {
			continue
		}
		c.LocalOnly++
		c.LocalOnlyBytes += f.Size
		if c.OldestPending.IsZero() || f.Time.Before(c.OldestPending) {
			c.OldestPending = f.Time
		}
	}
	return c, nil
}

// spaceWarning warns when the local archive's filesystem is getting full
// while uploads are behind: Postgres keeps every WAL segment it cannot
// archive, and stops when its disk is full.
func spaceWarning(dir string, pending int64, behind bool) string {
	if !behind {
		return ""
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return ""
	}
	return spaceWarningFor(dir, fs.Bavail*uint64(fs.Bsize), fs.Blocks*uint64(fs.Bsize), pending)
}

// lowSpace is the free space under which spaceWarningFor warns, besides
// a tenth of the filesystem.
const lowSpace = 1 << 30

func spaceWarningFor(dir string, free, total uint64, pending int64) string {
	if free >= lowSpace && free >= total/10 {
		return ""
	}
	return fmt.Sprintf("uploads are behind (%s waiting) and %s has only %s free: when it fills, Postgres stops; bring the object store back (velo wal push) or free space",
		ui.Bytes(pending), dir, ui.Bytes(int64(free)))
}

// PushResult is what one project's upload round did.
type PushResult struct {
	Project  string
	Archive  string
	Uploaded int
	Bytes    int64
	Already  int // files uploaded before
	Errors   []string
	ArchiveCounts
}

// PushWAL uploads every file of the local archives of one project ("" for
// every project with an archive) that is not in the bucket yet, verifies
// each by checksum and records it. It runs beside archive_command and
// velo serve's uploader, without the lock: each file is written once
// (objstore) and recorded only while the project's archive is the same.
func (e *Engine) PushWAL(ctx context.Context, project string) ([]PushResult, error) {
	var ps []state.Project
	if project != "" {
		if err := ValidateName("project", project); err != nil {
			return nil, err
		}
		p, err := e.project(ctx, project)
		if err != nil {
			return nil, err
		}
		if p.Archive == "" {
			return nil, errdefs.FailedPrecondition("project %s has no archive in object storage; set one with velo project set %s --archive s3://BUCKET/PREFIX", p.Name, p.Name)
		}
		ps = append(ps, p)
	} else {
		all, err := e.Store.Q().Projects(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range all {
			if p.Archive != "" {
				ps = append(ps, p)
			}
		}
	}
	out := []PushResult{}
	failed := 0
	for _, p := range ps {
		e.Progress.Title("Uploading the WAL archive of %s to %s...", p.Name, p.Archive)
		r := e.pushProject(ctx, p)
		failed += len(r.Errors)
		out = append(out, r)
	}
	if failed > 0 {
		return out, fmt.Errorf("%d upload(s) failed; the files stay in the local archive and are uploaded at the next velo wal push or by velo serve", failed)
	}
	return out, nil
}

// pushProject runs one upload round of p, recording how it ended.
func (e *Engine) pushProject(ctx context.Context, p state.Project) PushResult {
	r := PushResult{Project: p.Name, Archive: p.Archive, Errors: []string{}}
	err := e.upload(ctx, p, &r)
	if err != nil {
		r.Errors = append(r.Errors, quoteErr(err))
	}
	msg := ""
	if len(r.Errors) > 0 {
		msg = r.Errors[0]
	}
	rctx := context.WithoutCancel(ctx)
	_ = e.Store.Q().RecordUploadRound(rctx, p.ID, time.Now(), msg)
	if d := e.describeArchive(rctx, p); d != nil {
		r.ArchiveCounts = d.ArchiveCounts
	}
	return r
}

// upload copies p's files that are not in the bucket; a conflict (an
// object there with other content) is reported and the others go on, any
// other error (the store down) ends the round.
func (e *Engine) upload(ctx context.Context, p state.Project, r *PushResult) error {
	st, err := openArchive(ctx, p)
	if err != nil {
		return err
	}
	vols, err := e.archiveVolumes(ctx, p)
	if err != nil {
		return err
	}
	for _, v := range vols {
		dir := e.archiveDir(v)
		files, err := archiveFiles(dir)
		if err != nil {
			return err
		}
		recs, err := e.Store.Q().ArchiveObjects(ctx, p.ID, v)
		if err != nil {
			return err
		}
		done := map[string]int64{}
		for _, rec := range recs {
			done[rec.Name] = rec.Size
		}
		for _, f := range files {
			if size, ok := done[f.Name]; ok && size == f.Size {
				r.Already++
				continue
			}
			obj, err := st.PutFile(ctx, walKey(v, f.Name), filepath.Join(dir, f.Name))
			if errors.Is(err, objstore.ErrConflict) {
				r.Errors = append(r.Errors, quoteErr(err))
				continue
			}
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile (wal cleanup of a file uploaded by another pusher)
			}
			if err != nil {
				return err
			}
			ok, err := e.Store.Q().RecordUpload(ctx, p.ID, p.Archive, state.ArchiveObject{VolumeID: v, Name: f.Name, Size: obj.Size, SHA256: obj.SHA256, ArchivedAt: f.Time, UploadedAt: time.Now()})
			if err != nil {
				return err
			}
			if !ok {
				return errdefs.FailedPrecondition("project %s's archive changed while uploading; the upload stopped", p.Name)
			}
			r.Uploaded++
			r.Bytes += obj.Size
		}
	}
	return nil
}

// maxBackoff bounds the wait between upload rounds while the store fails.
const maxBackoff = 5 * time.Minute

// UploadLoop is velo serve's uploader: one goroutine per project with an
// archive, each running an upload round every interval, and backing off
// (doubling up to maxBackoff) while the store fails. It never holds the
// lock, and archive_command never waits for it: Postgres archives into
// the local archive whatever the store does. It returns when ctx ends.
func (e *Engine) UploadLoop(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	workers := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range workers {
			cancel()
		}
	}()
	for {
		ps, err := e.Store.Q().Projects(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("uploader: reading the projects", "err", err)
		}
		want := map[string]bool{}
		for _, p := range ps {
			if p.Archive == "" {
				continue
			}
			want[p.ID] = true
			if workers[p.ID] == nil {
				wctx, cancel := context.WithCancel(ctx)
				workers[p.ID] = cancel
				go e.uploadWorker(wctx, p.ID, interval, log)
			}
		}
		for id, cancel := range workers {
			if !want[id] {
				cancel()
				delete(workers, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func (e *Engine) uploadWorker(ctx context.Context, projectID string, interval time.Duration, log *slog.Logger) {
	wait := interval
	for ctx.Err() == nil {
		p, err := e.Store.Q().ProjectByID(ctx, projectID)
		if err != nil || p.Archive == "" {
			return
		}
		r := e.pushProject(ctx, p)
		switch {
		case ctx.Err() != nil:
			return
		case len(r.Errors) > 0:
			wait = min(wait*2, maxBackoff)
			log.Warn("uploader: uploads failed; retrying", "project", p.Name, "archive", p.Archive, "waiting", r.LocalOnly, "retry_in", wait.String(), "err", r.Errors[0])
		default:
			wait = interval
			if r.Uploaded > 0 {
				log.Info("uploader: uploaded", "project", p.Name, "files", r.Uploaded, "bytes", r.Bytes)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
