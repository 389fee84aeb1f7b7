package engine

import (
	"testing"
	"time"

	"github.com/velohq/velo/internal/state"
)

func TestPITRBasesKeepTheOldestOfLiveVolumes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snaps := []state.Snapshot{ // newest first, as the store lists them
		{ID: "s4", VolumeID: "vdev", CreatedAt: t0.Add(4 * time.Hour)},
		{ID: "s3", VolumeID: "vmain", CreatedAt: t0.Add(3 * time.Hour)},
		{ID: "s2", VolumeID: "vold", CreatedAt: t0.Add(2 * time.Hour)},
		{ID: "s1", VolumeID: "vmain", CreatedAt: t0.Add(time.Hour)},
	}
	got := pitrBases(snaps, liveVolumes([]state.Branch{{VolumeID: "vmain"}, {VolumeID: "vdev"}}))
	if len(got) != 2 || !got["s1"] || !got["s4"] {
		t.Errorf("bases = %v, want s1 (main's oldest) and s4 (dev's only); s2's volume is retired", got)
	}
}

// The earliest bound printed is accepted back, even though the snapshot's
// time has digits below the millisecond; a moment equal to a snapshot's
// time recovers from that snapshot.
func TestPITRBoundIsAccepted(t *testing.T) {
	created := time.Date(2026, 12, 2, 0, 25, 20, 739_612_345, time.UTC)
	snaps := []state.Snapshot{{ID: "s2", CreatedAt: created.Add(time.Hour)}, {ID: "s1", CreatedAt: created}}
	for _, in := range []string{earliestBound(created), utc(created.Add(time.Millisecond))} {
		target, _, err := ParseTime(in, created.Add(2*time.Hour))
		if err != nil {
			t.Fatalf("ParseTime(%q): %v", in, err)
		}
		if b := pitrBase(snaps, target); b == nil || b.ID != "s1" {
			t.Errorf("--pitr %s (the printed bound) finds base %v, want s1", in, b)
		}
	}
	if earliestBound(created) != "2026-12-02T00:25:20.740Z" {
		t.Errorf("earliestBound = %s, want rounded up to .740", earliestBound(created))
	}
	if b := pitrBase(snaps, created); b == nil || b.ID != "s1" {
		t.Errorf("a moment equal to a snapshot's time finds %v, want s1", b)
	}
	if b := pitrBase(snaps, created.Add(-time.Nanosecond)); b != nil {
		t.Errorf("a moment before the oldest snapshot finds %v", b)
	}
	if latestBound(created) != "2026-12-02T00:25:20.739Z" {
		t.Errorf("latestBound = %s, want rounded down", latestBound(created))
	}
}
