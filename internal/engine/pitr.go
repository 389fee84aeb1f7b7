package engine

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// utc formats a moment for messages: always UTC, and saying so.
func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") }

// earliestBound and latestBound print a bound of the reachable moments
// as --pitr takes it back (RFC 3339, to the millisecond), rounded
// inwards: the earliest up, the latest down, so that the moment printed is
// one that is accepted.
func earliestBound(t time.Time) string {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r.UTC().Format("2006-01-02T15:04:05.000Z")
}

func latestBound(t time.Time) string {
	return t.Truncate(time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z")
}

// pitrBase is the snapshot a recovery to target starts from: the newest
// taken at or before target (snaps newest first), nil if none. A
// snapshot's time is when it was complete, so a target equal to it needs
// no WAL before it.
func pitrBase(snaps []state.Snapshot, target time.Time) *state.Snapshot {
	for i := range snaps {
		if !snaps[i].CreatedAt.After(target) {
			return &snaps[i]
		}
	}
	return nil
}

// createPITR makes b as parent was at target: it clones the newest
// snapshot of parent's volume taken before target and replays the
// parent's archive up to target, then promotes.
func (e *Engine) createPITR(ctx context.Context, op *op, p state.Project, d storage.Driver, parent state.Branch, b *state.Branch, target pitrTarget) error {
	e.Progress.Title("Recovering %s/%s as %s/%s was at %s...", p.Name, b.Name, p.Name, parent.Name, target)
	rc, err := e.preparePITR(ctx, op, p, d, parent, *b, "--pitr", target)
	if err != nil {
		return err
	}
	if err := e.replay(ctx, op, p, *b, rc, parent.Password); err != nil {
		return err
	}
	if err := op.record(ctx, stepWriteState, subject{Record: "branch", ID: p.Name + "/" + b.Name}); err != nil {
		return err
	}
	b.OriginSnapshotID = rc.base.ID
	if target.IsLSN {
		b.PITRLSN = target.LSN.String()
	} else {
		b.PITRTarget = target.Time
	}
	return e.Store.Q().InsertBranch(ctx, *b)
}

// recoveryClone is a clone of a snapshot set up to recover to a moment,
// not yet started (preparePITR); replay starts it.
type recoveryClone struct {
	spec   runtime.Spec
	base   state.Snapshot
	target pitrTarget
}

// preparePITR clones the newest snapshot of parent's volume taken before
// target into b's volume, with the settings that make its first start
// replay parent's archive up to target and promote. parent is the branch
// whose history is read: a new branch's parent, or the branch itself for
// a restore in place. The clone is not started.
func (e *Engine) preparePITR(ctx context.Context, op *op, p state.Project, d storage.Driver, parent, b state.Branch, flag string, target pitrTarget) (recoveryClone, error) {
	now := time.Now()
	if !target.IsLSN && target.Time.After(now) {
		return recoveryClone{}, errdefs.Invalid("%s %s is in the future (now is %s)", flag, utc(target.Time), utc(now))
	}
	snaps, err := e.volumeSnapshots(ctx, p, parent.VolumeID)
	if err != nil {
		return recoveryClone{}, err
	}
	if len(snaps) == 0 {
		return recoveryClone{}, errdefs.FailedPrecondition("%s/%s has no snapshot to recover from; make one with velo snapshot create %s/%s (recovery reaches moments after it)", p.Name, parent.Name, p.Name, parent.Name)
	}
	parentSpec, err := e.spec(ctx, p, parent)
	if err != nil {
		return recoveryClone{}, err
	}
	st, err := e.Runtime.Status(ctx, parentSpec)
	if err != nil {
		return recoveryClone{}, err
	}
	archive := e.archiveDir(parent.VolumeID)
	running := st.State == runtime.Running
	var segs []Segment
	if !running {
		segs, _ = segments(archive)
		if len(segs) == 0 {
			return recoveryClone{}, errdefs.FailedPrecondition("%s/%s's WAL archive %s is empty: no moment after its snapshot is reachable", p.Name, parent.Name, archive)
		}
	}
	var base *state.Snapshot
	if target.IsLSN {
		base, err = e.reachLSN(ctx, p, parent, snaps, segs, running, flag, target.LSN)
	} else {
		base, err = reachTime(p, parent, snaps, segs, running, flag, target.Time, now)
	}
	if err != nil {
		return recoveryClone{}, err
	}
	if err := e.requireSpace(ctx, p, d, "a WAL switch of "+p.Name+"/"+parent.Name+" and a new server"); err != nil {
		return recoveryClone{}, err
	}
	e.Progress.Note("recovering from snapshot %s of %s/%s", base.ID, p.Name, parent.Name)
	standby := running && following(p, parent)
	if standby {
		// A standby cannot switch WAL: what it received since its last
		// archived segment is copied from its pg_wal into the clone.
		e.Progress.Note("%s/%s follows its source: moments up to what it has received are reachable", p.Name, parent.Name)
	} else if running {
		// Close the current segment so that a moment a second ago is in the archive.
		if err := e.Progress.Step("Archive current WAL", func() error {
			return switchAndArchive(ctx, parent.Port, parent.Password, 30*time.Second)
		}); err != nil {
			return recoveryClone{}, err
		}
	}
	recovery := recoveryFrom(archive, target.settings())
	spec, err := e.cloneSnapshot(ctx, op, p, d, *base, b, func(spec runtime.Spec) error {
		f, err := os.OpenFile(filepath.Join(spec.DataDir, "recovery.signal"), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
		if err := pg.Chown(filepath.Join(spec.DataDir, "recovery.signal"), spec.RunAs); err != nil {
			return err
		}
		if standby {
			return pg.CopyWALAfter(parentSpec.DataDir, spec.DataDir, newestSegment(archive), spec.RunAs)
		}
		return nil
	}, recovery)
	if err != nil {
		return recoveryClone{}, err
	}
	return recoveryClone{spec: spec, base: *base, target: target}, nil
}

// reachTime is the snapshot a recovery to the moment target starts from,
// or the refusal that names the reachable moments: from the oldest
// snapshot of the volume to now (a running server's current WAL is
// archived before the recovery), or to the newest archived WAL (segs) of
// a stopped one.
func reachTime(p state.Project, parent state.Branch, snaps []state.Snapshot, segs []Segment, running bool, flag string, target, now time.Time) (*state.Snapshot, error) {
	earliest, latest := snaps[len(snaps)-1].CreatedAt, now
	if !running {
		latest = segs[len(segs)-1].Time
	}
	reach := fmt.Sprintf("the earliest reachable moment is %s and the latest reachable moment %s", earliestBound(earliest), latestBound(latest))
	reach += reachWhy(running)
	base := pitrBase(snaps, target)
	if base == nil {
		return nil, errdefs.FailedPrecondition("%s %s is before the oldest snapshot of %s/%s; %s", flag, utc(target), p.Name, parent.Name, reach)
	}
	if target.After(latest) {
		return nil, errdefs.FailedPrecondition("%s %s is after the newest archived WAL of %s/%s; %s", flag, utc(target), p.Name, parent.Name, reach)
	}
	return base, nil
}

// reachLSN is reachTime for an LSN: from the smallest end LSN recorded of
// the volume's snapshots to the running server's WAL position now, or to
// the end of the newest archived segment of a stopped one.
func (e *Engine) reachLSN(ctx context.Context, p state.Project, parent state.Branch, snaps []state.Snapshot, segs []Segment, running bool, flag string, target pg.LSN) (*state.Snapshot, error) {
	earliest, ok := earliestLSN(snaps)
	if !ok {
		return nil, errdefs.FailedPrecondition("%s LSN %s: no snapshot of %s/%s records the WAL position its data reaches (they were made by an older velo); make one with velo snapshot create %s/%s (LSNs after it are then reachable), or give a time",
			flag, target, p.Name, parent.Name, p.Name, parent.Name)
	}
	var latest pg.LSN
	if running {
		c, err := e.dial(ctx, p, parent)
		if err != nil {
			return nil, err
		}
		pos, err := walPosition(ctx, c)
		c.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		if latest, err = pg.ParseLSN(pos); err != nil {
			return nil, err
		}
	} else {
		latest = segmentEnd(segs[len(segs)-1])
	}
	reach := fmt.Sprintf("the earliest reachable LSN is %s and the latest reachable LSN %s", earliest, latest) + reachWhy(running)
	base := lsnBase(snaps, target)
	if base == nil {
		return nil, errdefs.FailedPrecondition("%s LSN %s is before the oldest snapshot of %s/%s; %s", flag, target, p.Name, parent.Name, reach)
	}
	if target > latest {
		return nil, errdefs.FailedPrecondition("%s LSN %s is after the newest WAL of %s/%s; %s", flag, target, p.Name, parent.Name, reach)
	}
	return base, nil
}

func reachWhy(running bool) string {
	if running {
		return " (now)"
	}
	return " (its newest archived WAL: it is stopped)"
}

// replay starts the recovery clone rc as branch b: the start replays the
// WAL to the target and promotes. inData is the password the cloned data
// holds; a branch with another gets it before any TCP login.
func (e *Engine) replay(ctx context.Context, op *op, p state.Project, b state.Branch, rc recoveryClone, inData string) error {
	spec, target := rc.spec, rc.target
	// --new-password: no TCP login until the branch has its own (newpassword.go).
	own := b.Password != inData && !imported(p)
	if own {
		if err := lockToSocket(spec); err != nil {
			return err
		}
	}
	if err := op.record(ctx, stepStartServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	replayCtx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	err := e.Progress.Step("Replay WAL to "+target.String(), func() error {
		_, err := e.Runtime.Start(replayCtx, spec)
		return err
	})
	if err != nil {
		_ = e.Runtime.Stop(context.WithoutCancel(ctx), spec, 5*time.Second)
		return fmt.Errorf("recovery of %s/%s failed: %w", p.Name, b.Name, err)
	}
	op.onFail(func(ctx context.Context) error { return e.Runtime.Stop(ctx, spec, 5*time.Second) })
	if own {
		if err := e.ownPassword(ctx, spec, inData); err != nil {
			return err
		}
	}
	// The recovery settings were for this start only.
	if err := e.configure(p, b, spec, nil); err != nil {
		return err
	}
	if imported(p) {
		return e.adoptCopy(ctx, p, b)
	}
	return nil
}

// recoveryFrom is the settings of a recovery that reads archive up to
// target (recovery_target_* settings), then promotes.
func recoveryFrom(archive string, target map[string]string) map[string]string {
	out := map[string]string{
		// Reads the archive, never writes to it. Postgres runs
		// restore_command itself; the paths are Velo's own IDs.
		"restore_command":        fmt.Sprintf("cp '%s/%%f' '%%p'", archive),
		"recovery_target_action": "promote",
		// No connections until promoted: ready means recovered.
		"hot_standby": "off",
	}
	maps.Copy(out, target)
	return out
}
