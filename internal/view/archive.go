package view

import (
	"time"

	"github.com/velohq/velo/internal/engine"
)

// Snapshot is one snapshot: snapshot list, snapshot create.
type Snapshot struct {
	ID      string `json:"id"`
	Branch  string `json:"branch,omitempty"` // PROJECT/BRANCH it was taken of; absent once that branch is gone
	Project string `json:"project"`
	Label   string `json:"label,omitempty"`
	// User: made by velo snapshot create (else to originate a branch).
	User           bool      `json:"user"`
	CreatedAt      time.Time `json:"created_at"`
	ExclusiveBytes int64     `json:"exclusive_bytes"`
	// Clones are the branches made from it (PROJECT/BRANCH).
	Clones []string `json:"clones"`
	// PITRBase: the oldest snapshot of its branch's current data, where
	// that branch's point-in-time window begins; kept for it.
	PITRBase bool `json:"pitr_base"`
	// Pushed is what snapshot create --push stored in the bucket.
	Pushed *SnapshotPush `json:"pushed,omitempty"`
}

// SnapshotPush is snapshot push: the snapshot in the project's bucket.
type SnapshotPush struct {
	ID      string `json:"id"`
	Archive string `json:"archive"`
	// Already: it was in the bucket before; nothing was written.
	Already bool  `json:"already"`
	Bytes   int64 `json:"size_bytes"`
	Parts   int   `json:"parts"`
	// WALUploaded counts the WAL files uploaded after it; WALError is why
	// that round stopped, if it did ("" none).
	WALUploaded int    `json:"wal_uploaded"`
	WALError    string `json:"wal_error,omitempty"`
}

// NewSnapshotPush is the view of r.
func NewSnapshotPush(r engine.SnapshotPush) SnapshotPush {
	return SnapshotPush{ID: r.ID, Archive: r.Archive, Already: r.Already, Bytes: r.Size, Parts: r.Parts, WALUploaded: r.WALUploaded, WALError: r.WALError}
}

// Snapshots is snapshot list.
type Snapshots []Snapshot

// NewSnapshot is the view of s.
func NewSnapshot(s engine.SnapshotInfo) Snapshot {
	clones := s.Clones
	if clones == nil {
		clones = []string{}
	}
	return Snapshot{ID: s.ID, Branch: s.Branch, Project: s.Project, Label: s.Label, User: s.User, CreatedAt: s.CreatedAt,
		ExclusiveBytes: s.Exclusive, Clones: clones, PITRBase: s.PITRBase}
}

// NewSnapshots is the view of ss.
func NewSnapshots(ss []engine.SnapshotInfo) Snapshots {
	return each(ss, NewSnapshot)
}

// KeptSnapshot is an old snapshot that cleanup left, and why.
type KeptSnapshot struct {
	Snapshot
	Reason string `json:"reason"`
}

// SnapshotCleanup is snapshot cleanup.
type SnapshotCleanup struct {
	Removed    Snapshots      `json:"removed"`
	Kept       []KeptSnapshot `json:"kept"`
	FreedBytes int64          `json:"freed_bytes"`
	// WindowsShrunk: the point-in-time windows the removal shortens.
	WindowsShrunk []WindowChange `json:"windows_shrunk"`
	DryRun        bool           `json:"dry_run"`
	// In the archive buckets: the pushed snapshots removed, and the old
	// ones kept with the reason.
	RemovedFromBucket []PushedSnapshot `json:"removed_from_bucket,omitempty"`
	KeptInBucket      []PushedSnapshot `json:"kept_in_bucket,omitempty"`
}

// PushedSnapshot is a snapshot in a project's archive bucket.
type PushedSnapshot struct {
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	Branch    string    `json:"branch,omitempty"`
	Archive   string    `json:"archive"`
	CreatedAt time.Time `json:"created_at"`
	SizeBytes int64     `json:"size_bytes"`
	Reason    string    `json:"reason,omitempty"`
}

func newPushedSnapshot(s engine.PushedSnapshot) PushedSnapshot {
	return PushedSnapshot{ID: s.ID, Project: s.Project, Branch: s.Branch, Archive: s.Archive, CreatedAt: s.CreatedAt, SizeBytes: s.Size, Reason: s.Reason}
}

// WindowChange is a branch's earliest reachable moment moved by removing
// snapshots; To is absent when no snapshot of its data is left.
type WindowChange struct {
	Branch  string     `json:"branch"`
	From    time.Time  `json:"from"`
	To      *time.Time `json:"to,omitempty"`
	Message string     `json:"message"`
}

// NewSnapshotCleanup is the view of r.
func NewSnapshotCleanup(r engine.CleanupResult) SnapshotCleanup {
	v := SnapshotCleanup{Removed: NewSnapshots(r.Removed), Kept: []KeptSnapshot{}, WindowsShrunk: []WindowChange{}, FreedBytes: r.Freed, DryRun: r.DryRun}
	for _, w := range r.Shrunk {
		v.WindowsShrunk = append(v.WindowsShrunk, WindowChange{Branch: w.Branch, From: w.From, To: w.To, Message: w.String()})
	}
	for _, k := range r.Kept {
		v.Kept = append(v.Kept, KeptSnapshot{Snapshot: NewSnapshot(k.SnapshotInfo), Reason: k.Reason})
	}
	v.RemovedFromBucket, v.KeptInBucket = each(r.RemovedPushed, newPushedSnapshot), each(r.KeptPushed, newPushedSnapshot)
	return v
}

// Segment is one archived WAL segment.
type Segment struct {
	Name       string    `json:"name"`
	Timeline   uint64    `json:"timeline"`
	Number     uint64    `json:"number"` // position on its timeline, in segments
	SizeBytes  int64     `json:"size_bytes"`
	ArchivedAt time.Time `json:"archived_at"`
}

func newSegment(s *engine.Segment) *Segment {
	if s == nil {
		return nil
	}
	return &Segment{Name: s.Name, Timeline: s.Timeline, Number: s.Number, SizeBytes: s.Size, ArchivedAt: s.Time}
}

// WAL is one branch's archive: wal info.
type WAL struct {
	Branch     string   `json:"branch"` // PROJECT/BRANCH
	Directory  string   `json:"directory"`
	Segments   int      `json:"segments"` // how many
	SizeBytes  int64    `json:"size_bytes"`
	Oldest     *Segment `json:"oldest,omitempty"`
	Newest     *Segment `json:"newest,omitempty"`
	Gaps       []string `json:"gaps"`
	Continuous bool     `json:"continuous"`
	// The moments a point-in-time branch of this branch can reach.
	EarliestPITR *time.Time `json:"earliest_pitr,omitempty"`
	LatestPITR   *time.Time `json:"latest_pitr,omitempty"`
	Running      bool       `json:"running"`
	// Archive is the branch's part of its project's archive in object
	// storage.
	Archive *ObjectArchive `json:"archive,omitempty"`
}

// WALs is wal info.
type WALs []WAL

// NewWALs is the view of ws.
func NewWALs(ws []engine.WALInfo) WALs {
	out := WALs{}
	for _, w := range ws {
		gaps := w.Gaps
		if gaps == nil {
			gaps = []string{}
		}
		out = append(out, WAL{Branch: w.Branch, Directory: w.Directory, Segments: w.Segments, SizeBytes: w.Bytes,
			Oldest: newSegment(w.Oldest), Newest: newSegment(w.Newest), Gaps: gaps, Continuous: w.Continuous,
			EarliestPITR: w.Earliest, LatestPITR: w.Latest, Running: w.Running, Archive: newObjectArchive(w.Archive)})
	}
	return out
}

// WALCleanup is wal cleanup.
type WALCleanup struct {
	Branch     string   `json:"branch"` // PROJECT/BRANCH
	Removed    []string `json:"removed"`
	FreedBytes int64    `json:"freed_bytes"`
	// KeptFrom is the oldest segment a kept snapshot still needs.
	KeptFrom string `json:"kept_from,omitempty"`
	DryRun   bool   `json:"dry_run"`
	// With an archive in object storage: the segments removed from the
	// bucket, and those old enough that stay local until uploaded.
	Archive       string   `json:"archive,omitempty"`
	RemovedRemote []string `json:"removed_from_bucket,omitempty"`
	NotUploaded   []string `json:"kept_not_uploaded,omitempty"`
	// PushedKeptFrom is the oldest segment kept in the bucket for a
	// snapshot pushed there (velo snapshot push).
	PushedKeptFrom string `json:"kept_in_bucket_from,omitempty"`
}

// NewWALCleanup is the view of r.
func NewWALCleanup(r engine.WALCleanupResult) WALCleanup {
	removed := r.Removed
	if removed == nil {
		removed = []string{}
	}
	v := WALCleanup{Branch: r.Branch, Removed: removed, FreedBytes: r.Bytes, KeptFrom: r.KeptFrom, DryRun: r.DryRun, Archive: r.Archive}
	if r.Archive != "" {
		v.RemovedRemote, v.NotUploaded = nonNil(r.RemovedRemote), nonNil(r.NotUploaded)
		v.PushedKeptFrom = r.PushedKeptFrom
	}
	return v
}

func (Snapshot) JSONDocument()        {}
func (Snapshots) JSONDocument()       {}
func (SnapshotCleanup) JSONDocument() {}
func (SnapshotPush) JSONDocument()    {}
func (WALs) JSONDocument()            {}
func (WALCleanup) JSONDocument()      {}

// ObjectArchive is a project's (or one branch's part of its) WAL archive
// in object storage: status, project get, wal info.
type ObjectArchive struct {
	URL      string `json:"url"` // s3://BUCKET/PREFIX
	Endpoint string `json:"endpoint,omitempty"`
	// LocalOnly are the files only in the local archive (not uploaded
	// yet); InBucket those uploaded and verified by checksum.
	LocalOnly      int   `json:"local_only"`
	LocalOnlyBytes int64 `json:"local_only_bytes"`
	InBucket       int   `json:"in_bucket"`
	InBucketBytes  int64 `json:"in_bucket_bytes"`
	// LagSeconds is the age of the oldest file not uploaded yet (0: none
	// waits); Behind says uploads fail or lag more than five minutes.
	LagSeconds   float64    `json:"lag_seconds"`
	Behind       bool       `json:"behind"`
	LastUploadAt *time.Time `json:"last_upload_at,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
	Warning      string     `json:"warning,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func newObjectArchive(a *engine.ArchiveSummary) *ObjectArchive {
	if a == nil {
		return nil
	}
	now := time.Now()
	return &ObjectArchive{URL: a.URL, Endpoint: a.Endpoint, LocalOnly: a.LocalOnly, LocalOnlyBytes: a.LocalOnlyBytes,
		InBucket: a.InBucket, InBucketBytes: a.InBucketBytes, LagSeconds: a.Lag(now).Seconds(), Behind: a.Behind(now),
		LastUploadAt: optTime(a.LastUploadAt), LastError: a.LastError, LastErrorAt: optTime(a.LastErrorAt), Warning: a.Warning}
}

// Push is wal push: each project's upload round.
type Push []PushProject

// PushProject is one project's upload round.
type PushProject struct {
	Project       string   `json:"project"`
	Uploaded      int      `json:"uploaded"`
	UploadedBytes int64    `json:"uploaded_bytes"`
	Already       int      `json:"already_uploaded"`
	Errors        []string `json:"errors"`
	ObjectArchive
}

// NewPush is the view of rs.
func NewPush(rs []engine.PushResult) Push {
	out := Push{}
	for _, r := range rs {
		a := engine.ArchiveSummary{URL: r.Archive, ArchiveCounts: r.ArchiveCounts}
		out = append(out, PushProject{Project: r.Project, Uploaded: r.Uploaded, UploadedBytes: r.Bytes, Already: r.Already, Errors: r.Errors, ObjectArchive: *newObjectArchive(&a)})
	}
	return out
}

func (Push) JSONDocument() {}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
