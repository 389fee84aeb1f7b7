package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// Wake and suspend: velo serve starts a branch's server when a client
// connects to it and stops it when no client has for its idle timeout.
//
// A suspended branch is one velo serve stopped for want of clients; it
// wants to run (WantRunning) and has SuspendedAt set. A branch the user
// stopped (velo branch stop) has WantRunning false and is never woken:
// its clients are told how to start it. A branch that wants to run but
// does not (after a reboot, a crash) is woken like a suspended one.

// ErrBusy is Suspend's answer for a branch that has clients velo serve
// did not route (connected to its own port).
var ErrBusy = errors.New("the branch has clients of its own port")

// Wake starts a branch's server for velo serve unless it runs, under the
// lock, and returns its address. A branch stopped by the user is refused
// with the command that starts it.
func (e *Engine) Wake(ctx context.Context, project, branch string) (string, error) {
	ref := project + "/" + branch
	var addr string
	err := e.lockedServer(ctx, ref, true, func(x projectBranch) error {
		addr = serverAddr(x.b)
		if !x.b.WantRunning {
			return errdefs.FailedPrecondition("branch %s was stopped with velo branch stop, so velo serve does not start it; start it with: velo branch start %s", ref, ref)
		}
		if _, err := e.startServer(ctx, x.p, x.b); err != nil {
			return fmt.Errorf("branch %s did not start: %w", ref, err)
		}
		return nil
	})
	return addr, err
}

// Suspend stops a branch's running server for velo serve (a fast
// shutdown, its WAL archived first) and marks it suspended, unless the
// user stopped it or its server has clients velo serve cannot see: those
// of its own port, found in pg_stat_activity (ErrBusy). It reports
// whether it stopped the server.
func (e *Engine) Suspend(ctx context.Context, project, branch string) (bool, error) {
	ref := project + "/" + branch
	stopped := false
	err := e.lockedServer(ctx, ref, true, func(x projectBranch) error {
		if !x.b.WantRunning {
			return nil
		}
		spec, err := e.observeSpec(ctx, x.p, x.b)
		if err != nil {
			return err
		}
		if dataGone(spec.DataDir) {
			return nil
		}
		st, err := e.Runtime.Status(ctx, spec)
		if err != nil || st.State != runtime.Running {
			return err
		}
		n, err := otherClients(ctx, x.b)
		if err != nil {
			return fmt.Errorf("branch %s: counting its clients: %w", ref, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: %d", ErrBusy, n)
		}
		// Marked first: a suspend killed during the stop leaves a
		// suspended branch (running or not), which doctor does not start
		// and velo serve wakes.
		if err := e.Store.Q().SetSuspended(ctx, x.b.ID, time.Now()); err != nil {
			return err
		}
		if err := e.shutdown(ctx, x.p, x.b, spec); err != nil {
			return err
		}
		stopped = true
		return nil
	})
	return stopped, err
}

// otherClients counts the sessions of b's server other than this one:
// client backends and WAL senders.
func otherClients(ctx context.Context, b state.Branch) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pg.Connect(ctx, b.Port, b.Password)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var n int
	err = c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('client backend', 'walsender') AND pid <> pg_backend_pid()`).Scan(&n)
	return n, err
}

func serverAddr(b state.Branch) string {
	return net.JoinHostPort(pg.LocalHost, strconv.Itoa(b.Port))
}

// Watched is a branch velo serve may suspend: one with an idle timeout.
type Watched struct {
	Project, Branch string
	Idle            time.Duration
	// StartedAt is when its server started; zero when it does not run.
	StartedAt time.Time
}

// IdleBranches lists the branches with an idle timeout that the user
// has not stopped, for velo serve's suspender, each with its server's
// start (read from the process, without the lock).
func (e *Engine) IdleBranches(ctx context.Context) ([]Watched, error) {
	ps, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return nil, err
	}
	var out []Watched
	for _, p := range ps {
		bs, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			d, _ := idleTimeout(p, b)
			if d <= 0 || !b.WantRunning {
				continue
			}
			w := Watched{Project: p.Name, Branch: b.Name, Idle: d}
			if spec, err := e.observeSpec(ctx, p, b); err == nil && !dataGone(spec.DataDir) {
				if st, err := e.Runtime.Peek(ctx, spec); err == nil && st.State == runtime.Running {
					w.StartedAt = st.StartedAt
				}
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// Where a branch's idle timeout comes from.
const (
	IdleFromBranch  = "branch"
	IdleFromProject = "project"
	IdleFromMain    = "main" // main is never suspended unless set on it
)

// idleTimeout is how long b may run without clients under velo serve (0:
// never), and where that comes from: its own setting, else its project's
// default, which main does not take.
func idleTimeout(p state.Project, b state.Branch) (time.Duration, string) {
	switch {
	case b.IdleSeconds == state.IdleNever:
		return 0, IdleFromBranch
	case b.IdleSeconds > 0:
		return time.Duration(b.IdleSeconds) * time.Second, IdleFromBranch
	case b.Name == MainBranch:
		return 0, IdleFromMain
	}
	return time.Duration(p.IdleSeconds) * time.Second, IdleFromProject
}

// maxIdle bounds --idle.
const maxIdle = 365 * 24 * time.Hour

// ParseIdle reads --idle: a duration of whole seconds from 1s to a year
// (3s, 10m, 2h, 1d, 1h30m) or never. It returns the seconds to record,
// state.IdleNever for never.
func ParseIdle(s string) (int, error) {
	in := strings.TrimSpace(strings.ToLower(s))
	if in == "never" {
		return state.IdleNever, nil
	}
	d, err := time.ParseDuration(in)
	if err != nil {
		// 1d and 2w, as --ttl takes them.
		if ttl, terr := ParseTTL(in); terr == nil {
			d, err = ttl, nil
		}
	}
	if err != nil || d < time.Second || d > maxIdle || d%time.Second != 0 {
		return 0, errdefs.Invalid("--idle %s is not an idle timeout: give whole seconds from 1s to 365d, such as 30s, 10m, 2h or 1d, or never", quote(s))
	}
	return int(d / time.Second), nil
}

// SetBranchIdle records a branch's idle timeout (--idle D|never).
func (e *Engine) SetBranchIdle(ctx context.Context, ref string, seconds int) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if err := e.Store.Q().SetBranchIdle(ctx, b.ID, seconds); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}

// SetProjectIdle records a project's default idle timeout, which its
// branches but main take unless they have their own (never: 0).
func (e *Engine) SetProjectIdle(ctx context.Context, name string, seconds int) error {
	if err := ValidateName("project", name); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, name)
		if err != nil {
			return err
		}
		if err := e.Store.Q().SetProjectIdle(ctx, p.ID, max(seconds, 0)); err != nil {
			return err
		}
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}

// IdleText shows an idle timeout: "10m", "1h30m", "never".
func IdleText(d time.Duration) string {
	if d <= 0 {
		return "never"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}
