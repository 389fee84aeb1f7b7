package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Wake on connect and idle suspend.
//
// The router counts its sessions per branch. A connection whose branch's
// server refuses it (nothing listens on its port) asks the Resolver to
// wake the branch, which starts its server under the CLI's lock and
// journal; the connections that arrive meanwhile wait for that one start
// (a per-branch lock), then connect. A branch with an idle timeout and no
// session for that long is suspended through the Resolver, which stops
// its server unless the server has clients of its own port; the
// per-branch lock makes a connection that arrives during the stop wait,
// then wake the branch again.

// Idle is a branch velo serve may suspend.
type Idle struct {
	Project, Branch string
	// Timeout is how long the branch may run without a session.
	Timeout time.Duration
	// StartedAt is when its server started; zero when it is not running.
	StartedAt time.Time
}

// ErrBusy is what Suspend returns (wrapped) for a branch whose server has
// clients the router did not route.
var ErrBusy = errors.New("the branch's server has clients of its own port")

// branch is the router's view of one branch.
type branch struct {
	// gate is held shared while a session dials the branch's server and
	// exclusively while the branch is woken or suspended.
	gate sync.RWMutex
	// sessions and idleSince are guarded by tracker.mu.
	sessions  int
	idleSince time.Time
}

// tracker holds the router's view of every branch it has seen.
type tracker struct {
	mu       sync.Mutex
	branches map[string]*branch
	started  time.Time
}

func newTracker() *tracker {
	return &tracker{branches: map[string]*branch{}, started: time.Now()}
}

func (t *tracker) get(ref string) *branch {
	b := t.branches[ref]
	if b == nil {
		b = &branch{idleSince: time.Now()}
		t.branches[ref] = b
	}
	return b
}

// forget drops the branches without a session that have no idle timeout
// (gone, never suspended, or names of no branch that clients tried), so
// that the map holds only what is in use or watched.
func (t *tracker) forget(watched []Idle) {
	keep := map[string]bool{}
	for _, w := range watched {
		keep[w.Project+"/"+w.Branch] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for ref, b := range t.branches {
		if b.sessions == 0 && !keep[ref] {
			delete(t.branches, ref)
		}
	}
}

// open counts a session of ref; close, returned, ends it.
func (t *tracker) open(ref string) (*branch, func()) {
	t.mu.Lock()
	b := t.get(ref)
	b.sessions++
	t.mu.Unlock()
	return b, func() {
		t.mu.Lock()
		b.sessions--
		if b.sessions == 0 {
			b.idleSince = time.Now()
		}
		t.mu.Unlock()
	}
}

// refused tells a server that is not running: nothing listens on its port.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// dialBranch connects to t's server, waking the branch when nothing
// listens on its port. Its errors are shown to the client.
func (r *Router) dialBranch(ctx context.Context, t Target, b *branch) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	b.gate.RLock()
	rctx, cancel := context.WithTimeout(ctx, dialTimeout)
	addr, err := r.Resolver.Resolve(rctx, t.Project, t.Branch)
	cancel()
	if err != nil {
		b.gate.RUnlock()
		return nil, errStartup{"3D000", err.Error()}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	b.gate.RUnlock()
	if err == nil || !refused(err) {
		return c, err
	}
	// One session wakes the branch; the others wait here, then find it up.
	b.gate.Lock()
	defer b.gate.Unlock()
	if c, err := d.DialContext(ctx, "tcp", addr); err == nil || !refused(err) {
		return c, err
	}
	addr, err = r.Resolver.Wake(ctx, t.Project, t.Branch)
	if err != nil {
		return nil, errStartup{"57P03", err.Error()}
	}
	r.log().Info("woke", "branch", t.Ref())
	return d.DialContext(ctx, "tcp", addr)
}

// suspendIdle suspends, every interval until ctx ends, the branches that
// have had no session for their idle timeout.
func (r *Router) suspendIdle(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		idle, err := r.Resolver.IdleBranches(ctx)
		if err != nil {
			r.log().Warn("idle branches", "err", err)
			continue
		}
		r.tracker.forget(idle)
		for _, w := range idle {
			if ctx.Err() != nil {
				return
			}
			r.maybeSuspend(ctx, w)
		}
	}
}

// maybeSuspend suspends w if it runs and has had no session for its
// timeout, counted from its server's start, the daemon's start or its
// last session, whichever is latest.
func (r *Router) maybeSuspend(ctx context.Context, w Idle) {
	if w.StartedAt.IsZero() || w.Timeout <= 0 {
		return
	}
	ref := w.Project + "/" + w.Branch
	due := func(b *branch) bool {
		since := latest(b.idleSince, w.StartedAt, r.tracker.started)
		return b.sessions == 0 && time.Since(since) >= w.Timeout
	}
	r.tracker.mu.Lock()
	b := r.tracker.get(ref)
	ok := due(b)
	r.tracker.mu.Unlock()
	if !ok {
		return
	}
	b.gate.Lock()
	defer b.gate.Unlock()
	// A session that came meanwhile counted itself before it waited here.
	r.tracker.mu.Lock()
	ok = due(b)
	r.tracker.mu.Unlock()
	if !ok {
		return
	}
	stopped, err := r.Resolver.Suspend(ctx, w.Project, w.Branch)
	r.tracker.mu.Lock()
	b.idleSince = time.Now() // not again before another full timeout
	r.tracker.mu.Unlock()
	switch {
	case errors.Is(err, ErrBusy):
		r.log().Debug("not suspended: clients of its own port", "branch", ref, "err", err)
	case err != nil:
		r.log().Warn("suspend", "branch", ref, "err", err)
	case stopped:
		r.log().Info("suspended", "branch", ref, "idle", w.Timeout)
	}
}

func (r *Router) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
