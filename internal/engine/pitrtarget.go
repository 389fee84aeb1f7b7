package engine

import (
	"fmt"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
)

// pitrTarget is where a recovery stops: a moment (--pitr TIME, restore
// --to TIME) or a WAL position (an LSN, 0/3000060, as pg_current_wal_lsn()
// shows it).
type pitrTarget struct {
	Time  time.Time
	LSN   pg.LSN
	IsLSN bool
}

// lsn is the target's LSN as Postgres writes it, "" for a time.
func (t pitrTarget) lsn() string {
	if t.IsLSN {
		return t.LSN.String()
	}
	return ""
}

func (t pitrTarget) String() string {
	if t.IsLSN {
		return "LSN " + t.LSN.String()
	}
	return utc(t.Time)
}

// parseTarget reads flag's value: an LSN when it holds a slash (a
// malformed one is refused, never read as a time), else a time as
// ParseTime takes it; a time in the future is refused.
func (e *Engine) parseTarget(flag, s string) (pitrTarget, error) {
	if pg.LooksLikeLSN(s) {
		l, err := pg.ParseLSN(s)
		if err != nil {
			return pitrTarget{}, errdefs.Invalid("%s LSN %s: %v", flag, quote(s), err)
		}
		return pitrTarget{LSN: l, IsLSN: true}, nil
	}
	now := time.Now()
	t, zoned, err := ParseTime(s, now)
	if err != nil {
		return pitrTarget{}, fmt.Errorf("%s: %w", flag, err)
	}
	if t.After(now) {
		return pitrTarget{}, errdefs.Invalid("%s %s is in the future (now is %s)", flag, utc(t), utc(now))
	}
	if !zoned {
		e.Progress.Warn("%s %s has no zone: taken as UTC", flag, s)
	}
	return pitrTarget{Time: t}, nil
}

// settings are the recovery_target_* settings that stop at t. An LSN
// target stops before the first record at or after it: the data is then
// what pg_current_wal_lsn() = LSN saw. A time target includes the commits
// at that moment.
func (t pitrTarget) settings() map[string]string {
	if t.IsLSN {
		return map[string]string{
			"recovery_target_lsn":       t.LSN.String(),
			"recovery_target_timeline":  "current",
			"recovery_target_inclusive": "false",
		}
	}
	return map[string]string{
		"recovery_target_time":      t.Time.UTC().Format("2006-01-02 15:04:05.999999-07"),
		"recovery_target_timeline":  "current",
		"recovery_target_inclusive": "true",
	}
}

// lsnBase is the snapshot a recovery to LSN target starts from: the one
// whose data reaches furthest without passing target (snaps newest
// first); nil if none. Snapshots made before Velo recorded their end LSN
// are not used: nothing says their data is not past target.
func lsnBase(snaps []state.Snapshot, target pg.LSN) *state.Snapshot {
	var best *state.Snapshot
	var bestLSN pg.LSN
	for i := range snaps {
		l, err := pg.ParseLSN(snaps[i].EndLSN)
		if err != nil || l > target {
			continue
		}
		if best == nil || l > bestLSN {
			best, bestLSN = &snaps[i], l
		}
	}
	return best
}

// earliestLSN is the smallest end LSN of snaps; ok is false when none
// has one recorded.
func earliestLSN(snaps []state.Snapshot) (pg.LSN, bool) {
	var min pg.LSN
	ok := false
	for _, s := range snaps {
		if l, err := pg.ParseLSN(s.EndLSN); err == nil && (!ok || l < min) {
			min, ok = l, true
		}
	}
	return min, ok
}

// segmentEnd is the LSN just past an archived segment (16 MB segments,
// as segments() counts them).
func segmentEnd(s Segment) pg.LSN { return pg.LSN((s.Number + 1) << 24) }
