package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// SnapshotInfo is what the snapshot commands show.
type SnapshotInfo struct {
	ID        string
	Branch    string // project/branch it was taken of; "" once deleted
	Project   string
	Label     string
	User      bool // made by velo snapshot create (else to originate a branch)
	CreatedAt time.Time
	Exclusive int64
	// Clones names the branches made from it.
	Clones []string
	// PITRBase: the oldest snapshot of its branch's current volume, where
	// that branch's point-in-time window begins (window.go).
	PITRBase bool
}

// ValidateLabel checks a snapshot label: printable text up to 100 characters.
func ValidateLabel(l string) error {
	if !utf8.ValidString(l) || utf8.RuneCountInString(l) > 100 {
		return errdefs.Invalid("label %s: labels are printable text of at most 100 characters", quote(l))
	}
	for _, r := range l {
		if !unicode.IsPrint(r) {
			return errdefs.Invalid("label %s holds a control character: labels are printable text of at most 100 characters", quote(l))
		}
	}
	return nil
}

// CreateSnapshot keeps a labelled, consistent snapshot of a branch.
func (e *Engine) CreateSnapshot(ctx context.Context, ref, label string) (SnapshotInfo, error) {
	if _, _, err := ParseRef(ref); err != nil {
		return SnapshotInfo{}, err
	}
	if err := ValidateLabel(label); err != nil {
		return SnapshotInfo{}, err
	}
	var info SnapshotInfo
	err := e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		e.Progress.Title("Snapshotting %s/%s...", p.Name, b.Name)
		snap, _, err := e.takeSnapshot(ctx, op, p, d, b, label, true)
		if err != nil {
			return err
		}
		op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroySnapshot(ctx, snap.ID)) })
		if err := op.record(ctx, stepWriteState, subject{Record: "snapshot", ID: snap.ID}); err != nil {
			return err
		}
		if err := e.Store.Q().InsertSnapshot(ctx, p.ID, snap); err != nil {
			return err
		}
		op.commit()
		info = SnapshotInfo{ID: snap.ID, Branch: p.Name + "/" + b.Name, Project: p.Name, Label: label, User: true, CreatedAt: snap.CreatedAt, Clones: []string{}}
		return nil
	})
	return info, err
}

// Snapshots lists snapshots, newest first: of one branch (ref "P/B"), or all.
func (e *Engine) Snapshots(ctx context.Context, ref string) ([]SnapshotInfo, error) {
	var only state.Branch
	var projects []state.Project
	if ref != "" {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return nil, err
		}
		only, projects = b, []state.Project{p}
	} else {
		ps, err := e.Store.Q().Projects(ctx)
		if err != nil {
			return nil, err
		}
		projects = ps
	}
	out := []SnapshotInfo{}
	for _, p := range projects {
		infos, err := e.projectSnapshots(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if only.ID == "" || in.Branch == p.Name+"/"+only.Name {
				out = append(out, in)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

func (e *Engine) projectSnapshots(ctx context.Context, p state.Project) ([]SnapshotInfo, error) {
	snaps, err := e.Store.Q().Snapshots(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	branches, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	name := map[string]string{}
	clones := map[string][]string{}
	for _, b := range branches {
		name[b.ID] = p.Name + "/" + b.Name
		if b.OriginSnapshotID != "" {
			clones[b.OriginSnapshotID] = append(clones[b.OriginSnapshotID], p.Name+"/"+b.Name)
		}
	}
	bases := pitrBases(snaps, liveVolumes(branches))
	d, derr := e.driver(ctx, p)
	var out []SnapshotInfo
	for _, s := range snaps {
		in := SnapshotInfo{ID: s.ID, Branch: name[s.BranchID], Project: p.Name, Label: s.Label, User: s.User, CreatedAt: s.CreatedAt, Clones: clones[s.ID], PITRBase: bases[s.ID]}
		if in.Clones == nil {
			in.Clones = []string{}
		}
		if derr == nil {
			if u, err := d.Usage(ctx, s.ID); err == nil {
				in.Exclusive = u.Exclusive
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// clonesOf names what was made from snapshot id: the branches whose record
// says so, and the volumes the storage lists as its clones (by their
// branch's name, or as a volume when no branch has it). One listing, where
// projectSnapshots reads the usage of every snapshot.
func (e *Engine) clonesOf(ctx context.Context, p state.Project, d storage.Driver, id string) ([]string, error) {
	branches, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	entries, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	byVolume := map[string]string{}
	var out []string
	for _, b := range branches {
		byVolume[b.VolumeID] = p.Name + "/" + b.Name
		if b.OriginSnapshotID == id {
			out = append(out, p.Name+"/"+b.Name)
		}
	}
	for _, en := range entries {
		if en.Kind != storage.KindVolume || en.Origin != id {
			continue
		}
		name, ok := byVolume[en.ID]
		if !ok {
			name = "volume " + en.ID + " (no branch has it; see velo doctor)"
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// madeFrom says that clones were made from a snapshot: "branch demo/a was
// made from it", "branches demo/a, demo/b were made from it".
func madeFrom(clones []string) string {
	n := len(clones)
	return form(n, "branch ", "branches ") + strings.Join(clones, ", ") + form(n, " was", " were") + " made from it"
}

// ValidateSnapshotPrefix checks what names a snapshot: its ID or a prefix
// of it, 4 to 64 characters of a-z and 0-9.
func ValidateSnapshotPrefix(prefix string) error {
	if len(prefix) < 4 || len(prefix) > 64 || strings.IndexFunc(prefix, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) >= 0 {
		return errdefs.Invalid("snapshot ID %s: give the ID or a unique prefix of at least 4 characters (a-z, 0-9), as velo snapshot list shows", quote(prefix))
	}
	return nil
}

// resolveSnapshot finds a snapshot by its ID or a unique prefix of at
// least 4 characters, as git does with commits.
func (e *Engine) resolveSnapshot(ctx context.Context, prefix string) (state.Snapshot, error) {
	if err := ValidateSnapshotPrefix(prefix); err != nil {
		return state.Snapshot{}, err
	}
	all, err := e.Store.Q().AllSnapshots(ctx)
	if err != nil {
		return state.Snapshot{}, err
	}
	return pickSnapshot(all, prefix)
}

// pickSnapshot is the one snapshot of all whose ID starts with prefix.
func pickSnapshot(all []state.Snapshot, prefix string) (state.Snapshot, error) {
	if err := ValidateSnapshotPrefix(prefix); err != nil {
		return state.Snapshot{}, err
	}
	var found []state.Snapshot
	for _, s := range all {
		if strings.HasPrefix(s.ID, prefix) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return state.Snapshot{}, errdefs.NotFound("no snapshot has an ID starting with %s; see velo snapshot list", prefix)
	case 1:
		return found[0], nil
	}
	var ids []string
	for _, s := range found {
		ids = append(ids, s.ID)
	}
	return state.Snapshot{}, errdefs.Invalid("%s is the start of %d snapshot IDs (%s); give more characters", prefix, len(found), strings.Join(ids, ", "))
}

// DeleteSnapshot destroys a snapshot no branch was cloned from.
func (e *Engine) DeleteSnapshot(ctx context.Context, prefix string) (string, error) {
	if err := ValidateSnapshotPrefix(prefix); err != nil {
		return "", err
	}
	var id string
	err := e.mutate(ctx, func(op *op) error {
		s, err := e.resolveSnapshot(ctx, prefix)
		if err != nil {
			return err
		}
		id = s.ID
		pid, err := e.Store.Q().SnapshotProject(ctx, s.ID)
		if err != nil {
			return err
		}
		p, err := e.Store.Q().ProjectByID(ctx, pid)
		if err != nil {
			return err
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		clones, err := e.clonesOf(ctx, p, d, s.ID)
		if err != nil {
			return err
		}
		if len(clones) > 0 {
			return errdefs.FailedPrecondition("snapshot %s is where %s %s made from; delete %s first",
				s.ID, strings.Join(clones, ", "), form(len(clones), "was", "were"), form(len(clones), "that branch", "those branches"))
		}
		shrunk, err := e.windowChanges(ctx, p, map[string]bool{s.ID: true})
		if err != nil {
			return err
		}
		if err := e.destroySnapshot(ctx, op, p, d, s); err != nil {
			return err
		}
		for _, w := range shrunk {
			e.Progress.Note("%s", w)
		}
		return nil
	})
	return id, err
}

// destroySnapshot destroys one snapshot, storage first, then its record,
// then whatever it kept alive.
func (e *Engine) destroySnapshot(ctx context.Context, op *op, p state.Project, d storage.Driver, s state.Snapshot) error {
	if err := op.record(ctx, stepDestroySnapshot, subject{ID: s.ID}); err != nil {
		return err
	}
	if err := e.Progress.Step("Destroy snapshot "+s.ID, func() error { return ignoreNotFound(d.DestroySnapshot(ctx, s.ID)) }); err != nil {
		return err
	}
	if err := e.Store.Q().DeleteSnapshot(ctx, s.ID); err != nil {
		return err
	}
	return e.gc(ctx, op, p, d)
}

// CleanupResult is what snapshot cleanup did or would do.
type CleanupResult struct {
	Removed []SnapshotInfo
	Kept    []KeptSnapshot
	Freed   int64
	// Shrunk: the point-in-time windows the removal makes shorter, when
	// it removes the oldest snapshot of a branch's volume.
	Shrunk []WindowChange
	DryRun bool
	// In the archive buckets of the projects in scope: the pushed
	// snapshots removed, and the old ones kept, with why.
	RemovedPushed []PushedSnapshot
	KeptPushed    []PushedSnapshot
}

// KeptSnapshot is an old snapshot cleanup left, and why.
type KeptSnapshot struct {
	SnapshotInfo
	Reason string
}

// CheckCleanupScope refuses a snapshot cleanup that names neither a branch
// nor --all, or both.
func CheckCleanupScope(ref string, all bool) error {
	switch {
	case ref == "" && !all:
		return errdefs.Invalid("name the branch whose snapshots to clean up (velo snapshot cleanup P/B --days N), or give --all for every branch")
	case ref != "" && all:
		return errdefs.Invalid("name a branch (velo snapshot cleanup P/B --days N) or give --all, not both")
	}
	return nil
}

// CleanupSnapshots destroys the snapshots older than days that nothing
// depends on, of one branch or of all (ref ""); dryRun only lists them.
// In a project's archive bucket the same rule applies to the snapshots
// pushed there (cleanupPushed).
func (e *Engine) CleanupSnapshots(ctx context.Context, ref string, all bool, days int, dryRun bool) (CleanupResult, error) {
	res := CleanupResult{Removed: []SnapshotInfo{}, Kept: []KeptSnapshot{}, Shrunk: []WindowChange{}, DryRun: dryRun}
	if err := CheckCleanupScope(ref, all); err != nil {
		return res, err
	}
	if days < 0 || days > 36500 {
		return res, errdefs.Invalid("--days %d must be between 0 and 36500", days)
	}
	if ref != "" {
		if _, _, err := ParseRef(ref); err != nil {
			return res, err
		}
	}
	cutoff := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
	// The bucket's part fails alone: what was destroyed here stays
	// recorded as destroyed (the journal closed, the state backed up).
	var bucketErr error
	err := e.mutate(ctx, func(op *op) error {
		infos, err := e.Snapshots(ctx, ref)
		if err != nil {
			return err
		}
		for _, in := range infos {
			if !in.CreatedAt.Before(cutoff) {
				continue
			}
			if len(in.Clones) > 0 {
				res.Kept = append(res.Kept, KeptSnapshot{in, madeFrom(in.Clones)})
				continue
			}
			res.Removed = append(res.Removed, in)
			res.Freed += in.Exclusive
		}
		gone := map[string]map[string]bool{} // project → snapshot IDs
		for _, in := range res.Removed {
			if gone[in.Project] == nil {
				gone[in.Project] = map[string]bool{}
			}
			gone[in.Project][in.ID] = true
		}
		for name, ids := range gone {
			p, err := e.project(ctx, name)
			if err != nil {
				return err
			}
			w, err := e.windowChanges(ctx, p, ids)
			if err != nil {
				return err
			}
			res.Shrunk = append(res.Shrunk, w...)
		}
		sort.Slice(res.Shrunk, func(i, j int) bool { return res.Shrunk[i].Branch < res.Shrunk[j].Branch })
		if dryRun {
			bucketErr = e.cleanupPushed(ctx, ref, cutoff, true, &res)
			return nil
		}
		for _, in := range res.Removed {
			p, err := e.project(ctx, in.Project)
			if err != nil {
				return err
			}
			d, err := e.driver(ctx, p)
			if err != nil {
				return err
			}
			s, err := e.Store.Q().Snapshot(ctx, in.ID)
			if err != nil {
				return err
			}
			if err := e.destroySnapshot(ctx, op, p, d, s); err != nil {
				return err
			}
		}
		bucketErr = e.cleanupPushed(ctx, ref, cutoff, false, &res)
		return nil
	})
	if err == nil {
		err = bucketErr
	}
	return res, err
}
