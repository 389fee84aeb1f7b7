package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// A clone holds its parent's roles and passwords (they are in its data).
// To give it a superuser password of its own before anyone can log in
// with the parent's, its first start takes TCP logins with a refusal
// (pg_hba.conf admits the local socket alone, which only the server's user
// and root can enter); the password is changed through the socket, then
// the usual pg_hba.conf is written and reloaded. No restart: pg_hba.conf
// is read again at a reload, listen_addresses only at a start.

// startClone starts a configured clone that becomes branch b. Its data
// holds the password inData; when b's differs, the clone takes no TCP
// login until it has b's (lockToSocket, ownPassword). An imported
// project's copy knows neither: adoptCopy gives it b's password.
func (e *Engine) startClone(ctx context.Context, op *op, p state.Project, b state.Branch, spec runtime.Spec, inData string) error {
	own := b.Password != inData && !imported(p)
	if own {
		if err := lockToSocket(spec); err != nil {
			return err
		}
	}
	if err := e.startNew(ctx, op, spec); err != nil {
		return err
	}
	if imported(p) {
		return e.adoptCopy(ctx, p, b)
	}
	if own {
		return e.ownPassword(ctx, spec, inData)
	}
	return nil
}

// lockToSocket readies a configured, not yet started clone for that start.
func lockToSocket(spec runtime.Spec) error {
	return pg.WriteHBASocketOnly(spec.DataDir, spec.RunAs)
}

// ownPassword gives the started clone of lockToSocket the password
// spec.Password (its data has current's), then opens it to TCP and waits
// until a TCP login with the new password answers.
func (e *Engine) ownPassword(ctx context.Context, spec runtime.Spec, current string) error {
	return e.Progress.Step("Set a password of its own", func() error {
		verifier, err := pg.ScramVerifier(spec.Password)
		if err != nil {
			return err
		}
		c, err := pg.ConnectSocket(ctx, spec.SocketDir, spec.Port, current)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		// The server gets the SCRAM verifier, never the password itself.
		if _, err := c.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(verifier)); err != nil {
			return fmt.Errorf("set the password: %w", err)
		}
		if err := pg.WriteHBA(spec.DataDir, spec.RunAs); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			return fmt.Errorf("reload pg_hba.conf: %w", err)
		}
		// The postmaster reads pg_hba.conf again when it handles the
		// reload's signal, a moment later.
		deadline := time.Now().Add(10 * time.Second)
		for {
			tc, err := pg.Connect(ctx, spec.Port, spec.Password)
			if err == nil {
				tc.Close(context.WithoutCancel(ctx))
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the server does not take its new password over TCP: %w", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}
