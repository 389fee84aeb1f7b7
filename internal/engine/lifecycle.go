package engine

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// Branch lifecycle: protection (a branch nothing deletes by accident) and
// expiry (a branch that goes by itself, deleted by velo prune).

// errProtected refuses what would destroy or replace a protected branch's
// data. --force never overrides it: the user unprotects first, on purpose.
func errProtected(p state.Project, b state.Branch, what string) error {
	return errdefs.FailedPrecondition("branch %s/%s is protected: it cannot be %s, with --force or without; unprotect it first with velo branch unprotect %s/%s",
		p.Name, b.Name, what, p.Name, b.Name)
}

// refuseProtected is errProtected for the first protected branch of bs.
func refuseProtected(p state.Project, bs []state.Branch, what string) error {
	for _, b := range bs {
		if b.Protected {
			return errProtected(p, b, what)
		}
	}
	return nil
}

// ProtectBranch protects (or unprotects) a branch.
func (e *Engine) ProtectBranch(ctx context.Context, ref string, protect bool) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if protect && !b.ExpiresAt.IsZero() {
			return errdefs.FailedPrecondition("branch %s/%s expires at %s: a protected branch never expires; remove the expiry first with velo branch set %s/%s --no-expiry",
				p.Name, b.Name, b.ExpiresAt.UTC().Format(time.RFC3339), p.Name, b.Name)
		}
		if b.Protected == protect {
			return nil
		}
		if err := e.Store.Q().SetProtected(ctx, b.ID, protect); err != nil {
			return err
		}
		// The volume says so too: a rebuild of the records keeps it.
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}

// ExpiryOptions are how a branch's expiry is given: --ttl D, --expires-at
// T, or --no-expiry (Never); at most one.
type ExpiryOptions struct {
	TTL, ExpiresAt string
	Never          bool
}

// Given reports whether any expiry was asked for.
func (o ExpiryOptions) Given() bool { return o.TTL != "" || o.ExpiresAt != "" || o.Never }

// maxTTL bounds --ttl and --expires-at, as relative --pitr times are.
const maxTTL = maxBack

// ParseExpiry reads an expiry: the moment it names, zero for never.
func ParseExpiry(o ExpiryOptions, now time.Time) (time.Time, error) {
	n := 0
	for _, given := range []bool{o.TTL != "", o.ExpiresAt != "", o.Never} {
		if given {
			n++
		}
	}
	if n > 1 {
		return time.Time{}, errdefs.Invalid("give one of --ttl, --expires-at and --no-expiry")
	}
	switch {
	case o.TTL != "":
		d, err := ParseTTL(o.TTL)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(d).UTC(), nil
	case o.ExpiresAt != "":
		t, _, err := ParseTime(o.ExpiresAt, now)
		if err != nil {
			return time.Time{}, errdefsPrefix("--expires-at", err)
		}
		if !t.After(now) {
			return time.Time{}, errdefs.Invalid("--expires-at %s is not in the future; give a later time, or --ttl 2h for a time from now", quote(o.ExpiresAt))
		}
		if t.Sub(now) > maxTTL {
			return time.Time{}, errdefs.Invalid("--expires-at %s is too far ahead: at most 100 years (36500 days) from now", quote(o.ExpiresAt))
		}
		return t.UTC(), nil
	}
	return time.Time{}, nil
}

// ParseTTL reads a --ttl: a positive count and a unit, as relative --pitr
// times are written without "ago" (90s, 30m, 2h, 1d, 2w).
func ParseTTL(s string) (time.Duration, error) {
	in := strings.TrimSpace(strings.ToLower(s))
	m := relativeTime.FindStringSubmatch(in)
	if m == nil || m[3] != "" {
		return 0, errdefs.Invalid("--ttl %s is not a time to live: give a count and a unit such as 90s, 30m, 2h, 1d or 2w", quote(s))
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[m[2][0]]
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > int64(maxTTL/unit) {
		return 0, errdefs.Invalid("--ttl %s is too long: at most 100 years (36500 days)", quote(s))
	}
	if n == 0 {
		return 0, errdefs.Invalid("--ttl %s is not a time to live: give a count above 0, such as 2h", quote(s))
	}
	return time.Duration(n) * unit, nil
}

// errdefsPrefix puts the flag's name before a parser's message.
func errdefsPrefix(flag string, err error) error {
	return errdefs.Invalid("%s: %s", flag, err.Error())
}

// checkExpiry refuses an expiry on main (it goes only with its project)
// and on a protected branch.
func checkExpiry(p state.Project, b state.Branch) error {
	if b.Name == MainBranch {
		return errdefs.FailedPrecondition("%s/main is the project's main branch and goes only with the project: it cannot expire", p.Name)
	}
	if b.Protected {
		return errProtected(p, b, "given an expiry (it would be deleted when it expires)")
	}
	return nil
}

// BranchSettings are what velo branch set changes: the expiry, and the
// idle timeout under velo serve (--idle D|never; "" unchanged).
type BranchSettings struct {
	Expiry ExpiryOptions
	Idle   string
}

// SetBranch changes a branch's settings: its expiry, its idle timeout.
func (e *Engine) SetBranch(ctx context.Context, ref string, o BranchSettings) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	if !o.Expiry.Given() && o.Idle == "" {
		return errdefs.Invalid("nothing to set: give --ttl D, --expires-at TIME, --no-expiry or --idle D|never")
	}
	at, err := ParseExpiry(o.Expiry, time.Now())
	if err != nil {
		return err
	}
	idle := 0
	if o.Idle != "" {
		if idle, err = ParseIdle(o.Idle); err != nil {
			return err
		}
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if o.Expiry.Given() && !o.Expiry.Never {
			if err := checkExpiry(p, b); err != nil {
				return err
			}
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
			if o.Expiry.Given() {
				if err := tx.SetExpiry(ctx, b.ID, at); err != nil {
					return err
				}
			}
			if o.Idle != "" {
				return tx.SetBranchIdle(ctx, b.ID, idle)
			}
			return nil
		}); err != nil {
			return err
		}
		if o.Expiry.Given() || o.Idle != "" {
			e.refreshIdentities(ctx, p.ID)
		}
		return nil
	})
}

// PruneResult is what velo prune deleted (or, dry, would delete) and the
// expired branches it kept, with why.
type PruneResult struct {
	DryRun  bool
	Deleted []PrunedBranch
	Kept    []PrunedBranch
}

// PrunedBranch is one expired branch prune looked at.
type PrunedBranch struct {
	Branch    string // PROJECT/BRANCH
	ExpiresAt time.Time
	Reason    string // why it was kept; "" when deleted
}

// Prune deletes every expired branch. A branch with descendants expires
// only with them: it is deleted when every descendant has expired too
// (they go with it, leaves first), else kept, and the result says so.
func (e *Engine) Prune(ctx context.Context, dryRun bool) (PruneResult, error) {
	res := PruneResult{DryRun: dryRun, Deleted: []PrunedBranch{}, Kept: []PrunedBranch{}}
	err := e.mutate(ctx, func(op *op) error {
		now := time.Now()
		ps, err := e.Store.Q().Projects(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			all, err := e.Store.Q().Branches(ctx, p.ID)
			if err != nil {
				return err
			}
			expired := func(b state.Branch) bool {
				return !b.ExpiresAt.IsZero() && !b.ExpiresAt.After(now) && !b.Protected && b.Name != MainBranch
			}
			deletable := map[string]bool{}
			for _, b := range all {
				if !expired(b) {
					continue
				}
				var waiting []state.Branch
				for _, d := range descendants(all, b.ID) {
					if !expired(d) {
						waiting = append(waiting, d)
					}
				}
				if len(waiting) > 0 {
					res.Kept = append(res.Kept, PrunedBranch{Branch: p.Name + "/" + b.Name, ExpiresAt: b.ExpiresAt,
						Reason: "expired, but a branch expires only with its descendants, and " + names(p, waiting) + " have not"})
					continue
				}
				deletable[b.ID] = true
			}
			for _, b := range all {
				// A descendant of a deletable branch goes with it.
				if !deletable[b.ID] || deletable[b.ParentID] {
					continue
				}
				group := append(leavesFirst(descendants(all, b.ID)), b)
				for _, x := range group {
					res.Deleted = append(res.Deleted, PrunedBranch{Branch: p.Name + "/" + x.Name, ExpiresAt: x.ExpiresAt})
				}
				if dryRun {
					continue
				}
				drv, err := e.driver(ctx, p)
				if err != nil {
					return err
				}
				e.Progress.Title("Deleting %s/%s (expired %s)...", p.Name, b.Name, b.ExpiresAt.UTC().Format(time.RFC3339))
				for _, x := range group {
					if err := e.deleteBranch(ctx, op, p, drv, x); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	return res, err
}
