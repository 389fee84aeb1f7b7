package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
)

// setPassword gives the superuser of the server on port a new password.
func setPassword(ctx context.Context, port int, current, password string) error {
	c, err := pg.Connect(ctx, port, current)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(password))
	return err
}

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
		spec, err := e.spec(ctx, p.p, p.b)
		if err != nil {
			return err
		}
		st, err := e.Runtime.Status(ctx, spec)
		if err != nil {
			return err
		}
		if st.State == runtime.Running {
			already = true
		} else {
			if err := e.ensureDirs(); err != nil {
				return err
			}
			e.Progress.Title("Starting %s/%s...", p.p.Name, p.b.Name)
			if err := e.Progress.Step("PostgreSQL ready", func() error {
				// Velo's settings are rewritten at each start, so that a
				// moved socket directory or an edited velo.conf heals.
				if err := e.configure(p.p, p.b, spec, nil); err != nil {
					return err
				}
				_, err := e.Runtime.Start(ctx, spec)
				return err
			}); err != nil {
				return err
			}
		}
		c = conn(p.p, p.b, false)
		return nil
	})
	return c, already, err
}

// StopBranch stops a branch's server; stopping a stopped one changes nothing.
func (e *Engine) StopBranch(ctx context.Context, ref string) (bool, error) {
	var already bool
	err := e.lockedBranch(ctx, ref, func(p projectBranch) error {
		spec, err := e.spec(ctx, p.p, p.b)
		if err != nil {
			return err
		}
		st, err := e.Runtime.Status(ctx, spec)
		if err != nil {
			return err
		}
		if st.State != runtime.Running {
			already = true
			return nil
		}
		e.Progress.Title("Stopping %s/%s...", p.p.Name, p.b.Name)
		// Everything committed goes to the archive first, so that a
		// point-in-time branch of a stopped branch reaches its last commit.
		if err := e.Progress.Step("Archive current WAL", func() error {
			return switchAndArchive(ctx, p.b.Port, p.b.Password, 30*time.Second)
		}); err != nil {
			e.Progress.Note("the archive may lack the last commits: %v", err)
		}
		return e.Progress.Step("PostgreSQL stopped", func() error { return e.Runtime.Stop(ctx, spec, 30*time.Second) })
	})
	return already, err
}

// RestartBranch stops then starts a branch's server.
func (e *Engine) RestartBranch(ctx context.Context, ref string) (Conn, error) {
	var c Conn
	err := e.lockedBranch(ctx, ref, func(p projectBranch) error {
		spec, err := e.spec(ctx, p.p, p.b)
		if err != nil {
			return err
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
		c = conn(p.p, p.b, false)
		return nil
	})
	return c, err
}

// Password returns a branch's connection details with its password.
func (e *Engine) Password(ctx context.Context, ref string) (Conn, error) {
	p, b, err := e.ref(ctx, ref)
	if err != nil {
		return Conn{}, err
	}
	return conn(p, b, true), nil
}

func (e *Engine) lockedBranch(ctx context.Context, ref string, fn func(projectBranch) error) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if err := op.record(ctx, "server", fmt.Sprintf("%s/%s", p.Name, b.Name)); err != nil {
			return err
		}
		return fn(projectBranch{p, b})
	})
}
