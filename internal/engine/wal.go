package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// archiveDir is the continuous WAL archive of one volume. It is keyed by
// volume, not branch: a reset gives a branch a new history, which must
// not meet the old one's segment names.
func (e *Engine) archiveDir(volumeID string) string {
	base := filepath.Join(e.Home, "wal")
	if !e.homeReachable() {
		base = "/var/lib/velo/wal"
	}
	return filepath.Join(base, volumeID)
}

var segmentName = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$`)

// Segment is one archived WAL segment file.
type Segment struct {
	Name     string
	Timeline uint64
	Number   uint64 // position on its timeline, in segments
	Size     int64
	Time     time.Time // when it was archived
}

// segments lists the WAL segments in an archive, oldest first.
func segments(dir string) ([]Segment, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, en := range entries {
		m := segmentName.FindStringSubmatch(en.Name())
		if m == nil {
			continue
		}
		info, err := en.Info()
		if err != nil {
			continue
		}
		tli, _ := strconv.ParseUint(m[1], 16, 32)
		log, _ := strconv.ParseUint(m[2], 16, 32)
		seg, _ := strconv.ParseUint(m[3], 16, 32)
		// With 16 MB segments there are 0x100 to a log file.
		out = append(out, Segment{Name: en.Name(), Timeline: tli, Number: log*0x100 + seg, Size: info.Size(), Time: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func newestSegment(dir string) string {
	segs, _ := segments(dir)
	if len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1].Name
}

// gaps reports missing segments: on each timeline, numbers must follow
// one another from the first archived to the last.
func gaps(segs []Segment) []string {
	var out []string
	last := map[uint64]uint64{}
	seen := map[uint64]bool{}
	for _, s := range segs {
		if seen[s.Timeline] && s.Number != last[s.Timeline]+1 {
			out = append(out, fmt.Sprintf("timeline %d: segments missing between %08X%08X%08X and %s",
				s.Timeline, s.Timeline, last[s.Timeline]/0x100, last[s.Timeline]%0x100, s.Name))
		}
		seen[s.Timeline], last[s.Timeline] = true, s.Number
	}
	return out
}

// checkpointOn runs CHECKPOINT on c and returns the WAL segment its redo
// starts in. On a hot standby CHECKPOINT makes a restartpoint, which a
// snapshot's crash recovery then starts from.
func checkpointOn(ctx context.Context, c *pgx.Conn) (string, error) {
	if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	var redo string
	if err := c.QueryRow(ctx, "SELECT redo_lsn::text FROM pg_control_checkpoint()").Scan(&redo); err != nil {
		return "", err
	}
	return pg.WALFileName(ctx, c, redo)
}

// walPosition is the server's WAL position: on a primary what it has
// written, on a standby what it has replayed. Everything a copy of its
// data directory taken before holds is at or before it.
func walPosition(ctx context.Context, c *pgx.Conn) (string, error) {
	var lsn string
	err := c.QueryRow(ctx, "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text").Scan(&lsn)
	return lsn, err
}

// switchAndArchive closes the current WAL segment and waits until the
// archiver has it, so that every commit made so far is in the archive.
func switchAndArchive(ctx context.Context, port int, password string, timeout time.Duration) error {
	c, err := pg.Connect(ctx, port, password)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// Recovery to a time stops at the first commit after it, and fails if
	// the WAL ends first: a commit made now (txid_current assigns an xid,
	// so its commit is logged) lets every moment up to now be reached.
	if _, err := c.Exec(ctx, "SELECT txid_current()"); err != nil {
		return fmt.Errorf("mark WAL: %w", err)
	}
	var target string
	if err := c.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&target); err != nil {
		return fmt.Errorf("switch WAL: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var last, failed string
		if err := c.QueryRow(ctx, "SELECT COALESCE(last_archived_wal, ''), COALESCE(last_failed_wal, '') FROM pg_stat_archiver").Scan(&last, &failed); err != nil {
			return err
		}
		if last != "" && last >= target {
			return nil
		}
		if time.Now().After(deadline) {
			reason := ""
			if failed != "" {
				reason = fmt.Sprintf("; archiving %s failed, see the server's log", failed)
			}
			return fmt.Errorf("WAL segment %s was not archived within %s%s", target, timeout, reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// maxBack is how far back a relative --pitr time may reach.
const maxBack = 36500 * 24 * time.Hour

var relativeTime = regexp.MustCompile(`^(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)(\s+ago)?$`)

// ParseTime reads a --pitr TIME: RFC 3339 (offsets honoured), a date and
// time without a zone (taken as UTC), or a relative time ("2 hours ago",
// "30m ago", "1d"). zoned is false when the input named no zone.
func ParseTime(s string, now time.Time) (t time.Time, zoned bool, err error) {
	in := strings.TrimSpace(strings.ToLower(s))
	if m := relativeTime.FindStringSubmatch(in); m != nil {
		unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[m[2][0]]
		// Bounded per unit: n weeks must not overflow into the future.
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(maxBack/unit) {
			return time.Time{}, true, errdefs.Invalid("time %s is too far back: relative times reach back at most 100 years (36500 days)", quote(s))
		}
		return now.Add(-time.Duration(n) * unit), true, nil
	}
	// Velo's own messages say "2025-10-07 14:30:00.000 UTC".
	if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999 MST", strings.TrimSpace(s), time.UTC); err == nil && strings.HasSuffix(strings.TrimSpace(s), " UTC") {
		return t, true, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999Z07"} {
		if t, err := time.Parse(layout, strings.ToUpper(strings.TrimSpace(s))); err == nil {
			return t, true, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, strings.TrimSpace(s), time.UTC); err == nil {
			return t, false, nil
		}
	}
	return time.Time{}, false, errdefs.Invalid("time %s: use RFC 3339 (2025-10-07T14:30:00Z, offsets honoured; no zone means UTC) or a relative time (2 hours ago, 30m ago, 1d)", quote(s))
}

// WALInfo describes one branch's archive.
type WALInfo struct {
	Branch     string
	Directory  string
	Segments   int
	Bytes      int64
	Oldest     *Segment
	Newest     *Segment
	Gaps       []string
	Continuous bool
	// Earliest and Latest bound the moments a point-in-time branch of this
	// branch can reach: its oldest snapshot, and the newest archived WAL
	// (now, for a running server, which switches WAL first).
	Earliest *time.Time
	Latest   *time.Time
	Running  bool
	// Archive is the branch's part of its project's archive in object
	// storage (nil: the project has none).
	Archive *ArchiveSummary
}

// WAL describes the archives of one branch (ref "P/B"), of a project's
// branches (ref "P") or of all branches (ref "").
func (e *Engine) WAL(ctx context.Context, ref string) ([]WALInfo, error) {
	var pbs []projectBranch
	switch {
	case strings.Contains(ref, "/"):
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return nil, err
		}
		pbs = append(pbs, projectBranch{p, b})
	default:
		bs, err := e.Branches(ctx, ref, false)
		if err != nil {
			return nil, err
		}
		for _, bi := range bs {
			p, b, err := e.ref(ctx, bi.Name)
			if err != nil {
				return nil, err
			}
			pbs = append(pbs, projectBranch{p, b})
		}
	}
	out := []WALInfo{}
	for _, x := range pbs {
		info, err := e.walInfo(ctx, x.p, x.b)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (e *Engine) walInfo(ctx context.Context, p state.Project, b state.Branch) (WALInfo, error) {
	dir := e.archiveDir(b.VolumeID)
	info := WALInfo{Branch: p.Name + "/" + b.Name, Directory: dir, Gaps: []string{}}
	segs, err := segments(dir)
	if err != nil {
		return info, err
	}
	info.Segments = len(segs)
	for _, s := range segs {
		info.Bytes += s.Size
	}
	if len(segs) > 0 {
		info.Oldest, info.Newest = &segs[0], &segs[len(segs)-1]
		info.Latest = &segs[len(segs)-1].Time
	}
	info.Gaps = append(info.Gaps, gaps(segs)...)
	info.Continuous = len(info.Gaps) == 0
	if spec, err := e.observeSpec(ctx, p, b); err == nil {
		if st, err := e.Runtime.Status(ctx, spec); err == nil && st.State == runtime.Running {
			info.Running = true
			now := time.Now()
			info.Latest = &now
		}
	}
	snaps, err := e.volumeSnapshots(ctx, p, b.VolumeID)
	if err != nil {
		return info, err
	}
	if len(snaps) > 0 {
		t := snaps[len(snaps)-1].CreatedAt
		info.Earliest = &t
	}
	if p.Archive != "" {
		c, err := e.archiveCounts(ctx, p, b.VolumeID)
		if err != nil {
			return info, err
		}
		st, _ := e.Store.Q().UploadStatus(ctx, p.ID)
		c.LastError, c.LastErrorAt, c.LastUploadAt = st.LastError, st.LastErrorAt, st.LastUploadAt
		info.Archive = &ArchiveSummary{URL: p.Archive, Endpoint: p.ArchiveEndpoint, ArchiveCounts: c, Warning: spaceWarning(dir, c.LocalOnlyBytes, c.behind())}
	}
	return info, nil
}

// volumeSnapshots lists the snapshots of one volume, newest first.
func (e *Engine) volumeSnapshots(ctx context.Context, p state.Project, volumeID string) ([]state.Snapshot, error) {
	all, err := e.Store.Q().Snapshots(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var out []state.Snapshot
	for _, s := range all {
		if s.VolumeID == volumeID {
			out = append(out, s)
		}
	}
	return out, nil
}

// WALCleanupResult is what wal cleanup did or would do.
type WALCleanupResult struct {
	Branch  string
	Removed []string
	Bytes   int64
	// KeptFrom is the oldest segment a kept snapshot still needs.
	KeptFrom string
	DryRun   bool
	// With an archive in object storage: the segments removed from the
	// bucket, and those old enough to go that stay in the local archive
	// because they are not in the bucket yet.
	Archive       string
	RemovedRemote []string
	NotUploaded   []string
	// PushedKeptFrom is the oldest segment a snapshot pushed to the bucket
	// (velo snapshot push) needs, kept in the bucket for as long as the
	// pushed snapshot is there, even when its local snapshot is gone.
	PushedKeptFrom string
}

// CleanupWAL removes archived segments older than days, but never one a
// snapshot of the branch still needs to reach later moments. With an
// archive in object storage the same rule applies in the bucket, and a
// segment leaves the local archive only once it is in the bucket.
func (e *Engine) CleanupWAL(ctx context.Context, ref string, days int, dryRun bool) (WALCleanupResult, error) {
	res := WALCleanupResult{Branch: ref, Removed: []string{}, RemovedRemote: []string{}, NotUploaded: []string{}, DryRun: dryRun}
	if _, _, err := ParseRef(ref); err != nil {
		return res, err
	}
	if days < 0 || days > 36500 {
		return res, errdefs.Invalid("--days %d must be between 0 and 36500", days)
	}
	cutoff := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
	err := e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		dir := e.archiveDir(b.VolumeID)
		snaps, err := e.volumeSnapshots(ctx, p, b.VolumeID)
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if s.WALStart != "" && (res.KeptFrom == "" || s.WALStart[8:] < res.KeptFrom[8:]) {
				res.KeptFrom = s.WALStart
			}
		}
		// Compare positions without the timeline: a snapshot needs every
		// segment from its start on, whatever timeline follows.
		expired := func(name string, at time.Time) bool {
			return segmentName.MatchString(name) && at.Before(cutoff) && (res.KeptFrom == "" || name[8:] < res.KeptFrom[8:])
		}
		segs, err := segments(dir)
		if err != nil {
			return err
		}
		uploaded := map[string]int64{}
		var recs []state.ArchiveObject
		if p.Archive != "" {
			res.Archive = p.Archive
			if recs, err = e.Store.Q().ArchiveObjects(ctx, p.ID, b.VolumeID); err != nil {
				return err
			}
			for _, r := range recs {
				uploaded[r.Name] = r.Size
			}
		}
		for _, s := range segs {
			if !expired(s.Name, s.Time) {
				continue
			}
			if size, ok := uploaded[s.Name]; p.Archive != "" && (!ok || size != s.Size) {
				res.NotUploaded = append(res.NotUploaded, s.Name)
				continue
			}
			res.Removed = append(res.Removed, s.Name)
			res.Bytes += s.Size
		}
		for _, r := range recs {
			if expired(r.Name, r.ArchivedAt) {
				res.RemovedRemote = append(res.RemovedRemote, r.Name)
			}
		}
		// The bucket keeps, besides, what its pushed snapshots need: a
		// second host restores them and replays from there.
		var st *objstore.Store
		var pushedErr error
		if len(res.RemovedRemote) > 0 {
			if st, pushedErr = openArchive(ctx, p); pushedErr == nil {
				res.PushedKeptFrom, pushedErr = e.pushedNeeds(ctx, st, b.VolumeID)
			}
			if pushedErr != nil && dryRun {
				e.Progress.Note("the bucket's list leaves out what pushed snapshots need: they could not be read (%v)", pushedErr)
			}
			if from := res.PushedKeptFrom; from != "" {
				res.RemovedRemote = slices.DeleteFunc(res.RemovedRemote, func(name string) bool { return name[8:] >= from[8:] })
			}
		}
		if dryRun {
			return nil
		}
		if err := op.record(ctx, stepWALCleanup, subject{Path: dir}); err != nil {
			return err
		}
		for _, name := range res.Removed {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(res.RemovedRemote) == 0 {
			return nil
		}
		// Local files first: a kill here leaves objects and their records,
		// which the next cleanup removes.
		if pushedErr != nil {
			return fmt.Errorf("the local segments were removed, not those in the bucket: reading what its pushed snapshots need from the bucket: %w", pushedErr)
		}
		for _, name := range res.RemovedRemote {
			if err := st.Delete(ctx, walKey(b.VolumeID, name)); err != nil {
				return fmt.Errorf("the local segments were removed; removing %s from the bucket: %w", name, err)
			}
			if err := e.Store.Q().ForgetUpload(ctx, p.ID, b.VolumeID, name); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// pushedNeeds is the oldest segment that a snapshot of volume pushed to
// st needs ("" if none is there): the bucket's WAL from it on is what a
// restore from the snapshot replays.
func (e *Engine) pushedNeeds(ctx context.Context, st *objstore.Store, volume string) (string, error) {
	ms, skipped, err := e.readManifests(ctx, st)
	if err != nil {
		return "", err
	}
	if len(skipped) > 0 {
		// What it needs cannot be known: nothing is removed for it.
		return "", fmt.Errorf("%s cannot be read by this velo, so what it needs is not known", strings.Join(skipped, ", "))
	}
	from := ""
	for _, m := range ms {
		if m.Volume == volume && segmentName.MatchString(m.StartSegment) && (from == "" || m.StartSegment[8:] < from[8:]) {
			from = m.StartSegment
		}
	}
	return from, nil
}
