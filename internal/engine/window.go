package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/velohq/velo/internal/state"
)

// A branch's point-in-time window runs from the oldest snapshot of its
// current volume to now: recovery starts from a snapshot taken before the
// target and replays the volume's archive, which is kept from the oldest
// snapshot's start on. Newer snapshots only shorten the replay; the oldest
// is what makes the window, so nothing destroys it on the side (a reset or
// a delete that no longer needs it as an origin): only snapshot delete and
// snapshot cleanup do, and they say how the window shrank.

// pitrBases returns the IDs of the snapshots that open a window: for each
// volume in live (the current volumes of branches), its oldest snapshot.
func pitrBases(snaps []state.Snapshot, live map[string]bool) map[string]bool {
	oldest := map[string]state.Snapshot{}
	for _, s := range snaps {
		if !live[s.VolumeID] {
			continue
		}
		if o, ok := oldest[s.VolumeID]; !ok || s.CreatedAt.Before(o.CreatedAt) || (s.CreatedAt.Equal(o.CreatedAt) && s.ID < o.ID) {
			oldest[s.VolumeID] = s
		}
	}
	out := map[string]bool{}
	for _, s := range oldest {
		out[s.ID] = true
	}
	return out
}

// liveVolumes is the set of the branches' current volumes.
func liveVolumes(bs []state.Branch) map[string]bool {
	out := map[string]bool{}
	for _, b := range bs {
		out[b.VolumeID] = true
	}
	return out
}

// WindowChange is a branch's earliest reachable moment moved by removing
// snapshots: To is nil when no snapshot of its volume is left, so no
// point-in-time branch of it can be made until the next snapshot.
type WindowChange struct {
	Branch string // PROJECT/BRANCH
	From   time.Time
	To     *time.Time
}

func (w WindowChange) String() string {
	if w.To == nil {
		return fmt.Sprintf("%s has no snapshot left to recover from (its earliest reachable moment was %s): no point-in-time branch of it until the next velo snapshot create %s", w.Branch, earliestBound(w.From), w.Branch)
	}
	return fmt.Sprintf("the earliest reachable moment of %s moves from %s to %s", w.Branch, earliestBound(w.From), earliestBound(*w.To))
}

// windowChanges says how removing the snapshots in gone moves the
// windows of p's branches.
func (e *Engine) windowChanges(ctx context.Context, p state.Project, gone map[string]bool) ([]WindowChange, error) {
	snaps, err := e.Store.Q().Snapshots(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	bs, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var out []WindowChange
	for _, b := range bs {
		var before, after *time.Time
		for _, s := range snaps { // newest first: the last seen is the oldest
			if s.VolumeID != b.VolumeID {
				continue
			}
			t := s.CreatedAt
			before = &t
			if !gone[s.ID] {
				after = &t
			}
		}
		if before != nil && (after == nil || !after.Equal(*before)) {
			out = append(out, WindowChange{Branch: p.Name + "/" + b.Name, From: *before, To: after})
		}
	}
	return out, nil
}
