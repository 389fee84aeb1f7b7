package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// StartBranch starts a branch's server; starting a running one changes nothing.
func (e *Engine) StartBranch(ctx context.Context, ref string) (Conn, bool, error) {
	var c Conn
	var already bool
	err := e.lockedBranch(ctx, ref, func(p projectBranch) error {
		var err error
		already, err = e.startServer(ctx, p.p, p.b)
		c = e.conn(p.p, p.b, false)
		return err
	})
	return c, already, err
}

// startServer starts b's server unless it runs, and records that the user
// wants it running.
func (e *Engine) startServer(ctx context.Context, p state.Project, b state.Branch) (already bool, err error) {
	// Whether it runs needs no binaries; a start does.
	spec, err := e.observeSpec(ctx, p, b)
	if err != nil {
		return false, err
	}
	if dataGone(spec.DataDir) {
		return false, e.errDataGone(ctx, p, b, spec.DataDir)
	}
	st, err := e.Runtime.Status(ctx, spec)
	if err != nil {
		return false, err
	}
	if st.State == runtime.Running {
		already = true
	} else {
		if spec, err = e.spec(ctx, p, b); err != nil {
			return false, err
		}
		if err := e.ensureDirs(); err != nil {
			return false, err
		}
		e.Progress.Title("Starting %s/%s...", p.Name, b.Name)
		if err := e.Progress.Step("PostgreSQL ready", func() error {
			// Velo's settings are rewritten at each start, so that a
			// moved socket directory or an edited velo.conf heals.
			if err := e.configure(p, b, spec, nil); err != nil {
				return err
			}
			_, err := e.Runtime.Start(ctx, spec)
			return err
		}); err != nil {
			return false, err
		}
	}
	return already, e.Store.Q().SetWantRunning(ctx, b.ID, true)
}

// ServerResult is one branch that `branch start --all` or `branch stop
// --all` looked at.
type ServerResult struct {
	Branch  string // PROJECT/BRANCH
	Port    int
	Changed bool // started (or stopped); false: it already was
	Error   string
}

// StartAll starts every branch whose server the user left running (after a
// reboot, say), with its port and password unchanged. A suspended branch
// stays suspended: velo serve wakes it on its first connection, as before
// the reboot. It goes on past a branch that fails and reports them all.
func (e *Engine) StartAll(ctx context.Context) ([]ServerResult, error) {
	out, failed, err := e.eachBranch(ctx, stepStartAll, func(p state.Project, b state.Branch) (bool, bool, error) {
		if !b.WantRunning || !b.SuspendedAt.IsZero() {
			return false, false, nil
		}
		already, err := e.startServer(ctx, p, b)
		return true, !already, err
	})
	if err == nil && len(failed) > 0 {
		err = fmt.Errorf("%s did not start: %s; see velo branch get and the server log in %s", plural(len(failed), "branch", "branches"), strings.Join(failed, ", "), filepath.Join(e.Home, "logs"))
	}
	return out, err
}

// StopAll stops every running branch's server as StopBranch does (so start
// --all leaves them stopped), children before parents. It goes on past a
// branch that fails and reports them all.
func (e *Engine) StopAll(ctx context.Context) ([]ServerResult, error) {
	out, failed, err := e.eachBranch(ctx, stepStopAll, func(p state.Project, b state.Branch) (bool, bool, error) {
		spec, err := e.spec(ctx, p, b)
		if err != nil {
			return true, false, err
		}
		if st, err := e.Runtime.Peek(ctx, spec); err == nil && st.State != runtime.Running {
			return false, false, nil
		}
		already, err := e.stopServer(ctx, p, b, spec)
		return true, !already, err
	})
	if err == nil && len(failed) > 0 {
		err = fmt.Errorf("%s did not stop: %s; see velo branch get and the server log in %s", plural(len(failed), "branch", "branches"), strings.Join(failed, ", "), filepath.Join(e.Home, "logs"))
	}
	return out, err
}

// eachBranch runs fn on every branch of every project under one lock and
// journal entry: parents first when starting, children first when
// stopping. fn says whether the branch is reported and whether it changed.
func (e *Engine) eachBranch(ctx context.Context, kind stepKind, fn func(state.Project, state.Branch) (report, changed bool, err error)) ([]ServerResult, []string, error) {
	out := []ServerResult{}
	var failed []string
	err := e.mutate(ctx, func(op *op) error {
		if err := op.record(ctx, kind, subject{}); err != nil {
			return err
		}
		projects, err := e.Store.Q().Projects(ctx)
		if err != nil {
			return err
		}
		for _, p := range projects {
			bs, err := e.Store.Q().Branches(ctx, p.ID)
			if err != nil {
				return err
			}
			bs = treeOrder(bs)
			if kind == stepStopAll {
				slices.Reverse(bs)
			}
			for _, b := range bs {
				report, changed, err := fn(p, b)
				if !report && err == nil {
					continue
				}
				r := ServerResult{Branch: p.Name + "/" + b.Name, Port: b.Port, Changed: changed}
				if err != nil {
					r.Error = err.Error()
					failed = append(failed, r.Branch)
				}
				out = append(out, r)
			}
		}
		return nil
	})
	return out, failed, err
}

// StopBranch stops a branch's server; stopping a stopped one changes nothing.
func (e *Engine) StopBranch(ctx context.Context, ref string) (bool, error) {
	var already bool
	err := e.lockedBranch(ctx, ref, func(p projectBranch) error {
		spec, err := e.observeSpec(ctx, p.p, p.b)
		if err != nil {
			return err
		}
		already, err = e.stopServer(ctx, p.p, p.b, spec)
		return err
	})
	return already, err
}

// stopServer stops b's server unless it is stopped, and records that the
// user wants it stopped.
func (e *Engine) stopServer(ctx context.Context, p state.Project, b state.Branch, spec runtime.Spec) (already bool, err error) {
	// Nothing runs on a data directory that is gone.
	st := runtime.Status{State: runtime.Stopped}
	if !dataGone(spec.DataDir) {
		if st, err = e.Runtime.Status(ctx, spec); err != nil {
			return false, err
		}
	}
	if err := e.Store.Q().SetWantRunning(ctx, b.ID, false); err != nil {
		return false, err
	}
	if st.State != runtime.Running {
		return true, nil
	}
	return false, e.shutdown(ctx, p, b, spec)
}

// shutdown stops b's running server: its WAL archived, then a fast
// shutdown.
func (e *Engine) shutdown(ctx context.Context, p state.Project, b state.Branch, spec runtime.Spec) error {
	e.Progress.Title("Stopping %s/%s...", p.Name, b.Name)
	// Everything committed goes to the archive first, so that a
	// point-in-time branch of a stopped branch reaches its last commit.
	// A following main cannot switch WAL; its archiver has what it got.
	if !following(p, b) {
		if err := e.Progress.Step("Archive current WAL", func() error {
			return switchAndArchive(ctx, b.Port, b.Password, 30*time.Second)
		}); err != nil {
			e.Progress.Warn("the archive of %s/%s may lack the last commits: %v", p.Name, b.Name, err)
		}
	}
	return e.Progress.Step("PostgreSQL stopped", func() error { return e.Runtime.Stop(ctx, spec, 30*time.Second) })
}

// RestartBranch stops then starts a branch's server.
func (e *Engine) RestartBranch(ctx context.Context, ref string) (Conn, error) {
	var c Conn
	err := e.lockedBranch(ctx, ref, func(p projectBranch) error {
		spec, err := e.spec(ctx, p.p, p.b)
		if err != nil {
			return err
		}
		if dataGone(spec.DataDir) {
			return e.errDataGone(ctx, p.p, p.b, spec.DataDir)
		}
		if err := e.ensureDirs(); err != nil {
			return err
		}
		e.Progress.Title("Restarting %s/%s...", p.p.Name, p.b.Name)
		if err := e.Progress.Step("PostgreSQL stopped", func() error { return e.Runtime.Stop(ctx, spec, 30*time.Second) }); err != nil {
			return err
		}
		if err := e.Progress.Step("PostgreSQL ready", func() error {
			if err := e.configure(p.p, p.b, spec, nil); err != nil {
				return err
			}
			_, err := e.Runtime.Start(ctx, spec)
			return err
		}); err != nil {
			return err
		}
		c = e.conn(p.p, p.b, false)
		return e.Store.Q().SetWantRunning(ctx, p.b.ID, true)
	})
	return c, err
}

// Password returns a branch's connection details with its password.
func (e *Engine) Password(ctx context.Context, ref string) (Conn, error) {
	p, b, err := e.ref(ctx, ref)
	if err != nil {
		return Conn{}, err
	}
	return e.conn(p, b, true), nil
}

// Passwords returns every branch's connection details with its password,
// in tree order within each project (velo service-file).
func (e *Engine) Passwords(ctx context.Context) ([]Conn, error) {
	ps, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return nil, err
	}
	var cs []Conn
	for _, p := range ps {
		bs, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range treeOrder(bs) {
			cs = append(cs, e.conn(p, b, true))
		}
	}
	return cs, nil
}

func (e *Engine) lockedBranch(ctx context.Context, ref string, fn func(projectBranch) error) error {
	return e.lockedServer(ctx, ref, false, fn)
}

// lockedServer is lockedBranch for a change of the server's running
// flags alone when flagsOnly (see op.flagsOnly).
func (e *Engine) lockedServer(ctx context.Context, ref string, flagsOnly bool, fn func(projectBranch) error) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		op.flagsOnly = flagsOnly
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if err := op.record(ctx, stepServer, subject{Branch: p.Name + "/" + b.Name}); err != nil {
			return err
		}
		return fn(projectBranch{p, b})
	})
}
