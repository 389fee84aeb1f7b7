package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// mask runs script on the server over its socket, each of its sections
// in its database, then removes what would still show an original value
// from the tables and statistics of every database and from the WAL (the
// comment at the top of this file). A database the script does not
// name (postgres is named by statements before any \connect), other than
// the templates, is refused: its values would be copied as they are.
func (e *Engine) mask(ctx context.Context, spec runtime.Spec, s maskSession, script maskScript) error {
	sections, err := pg.SplitConnects(script.text)
	if err != nil {
		return errdefs.Invalid("mask script %s, %v", script.from, err)
	}
	connect := func(db string) (*pgx.Conn, error) { return s.connect(ctx, db) }
	// template1 is in every cluster (an imported one need not have
	// postgres); the cluster-wide statements run there.
	c, err := connect("template1")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// One session per database, opened when first needed and kept for
	// every step after.
	sessions := map[string]*pgx.Conn{"template1": c}
	defer func() {
		for db, sc := range sessions {
			if sc != c {
				sc.Close(context.WithoutCancel(ctx))
			}
			delete(sessions, db)
		}
	}()
	session := func(db string) (*pgx.Conn, error) {
		if sc, ok := sessions[db]; ok {
			return sc, nil
		}
		sc, err := connect(db)
		if err != nil {
			return nil, err
		}
		sessions[db] = sc
		return sc, nil
	}
	rows, err := c.Query(ctx, "SELECT datname, datistemplate FROM pg_database WHERE datallowconn ORDER BY datname")
	if err != nil {
		return err
	}
	type database struct {
		Name     string
		Template bool
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[database])
	if err != nil {
		return err
	}
	// The parts to run: the lines before any \connect in postgres (when
	// they hold a statement: postgres is then named), each other part in
	// its database.
	var parts []pg.ScriptSection
	named := map[string]bool{}
	for _, sec := range sections {
		if sec.Database == "" {
			if len(pg.SplitScript(sec.Text)) == 0 {
				continue
			}
			sec.Database = pg.Superuser
		}
		named[sec.Database] = true
		parts = append(parts, sec)
	}
	for _, sec := range parts {
		if db := sec.Database; !slices.ContainsFunc(dbs, func(d database) bool { return d.Name == db }) {
			return errdefs.Invalid("mask script %s connects to database %s, which the branch does not have; nothing was made", script.from, quote(db))
		}
	}
	for _, d := range dbs {
		if _, ok := named[d.Name]; !ok && !d.Template {
			return errdefs.Invalid("database %s of the branch is not masked: mask script %s runs its lines before any \\connect in database postgres and the rest in the databases it names with \\connect; add a line \\connect %s followed by its statements (or the line alone if it holds nothing to mask); nothing was made",
				quote(d.Name), script.from, d.Name)
		}
	}
	if err := e.Progress.Step("Roll back inherited prepared transactions", func() error {
		return rollbackPrepared(ctx, c, session)
	}); err != nil {
		return err
	}
	// The script, database by database, each part in one transaction.
	for _, sec := range parts {
		db, step := sec.Database, "Run the mask script"
		if len(sections) > 1 {
			step += " in " + db
		}
		err := e.Progress.Step(step, func() error {
			dc, err := session(db)
			if err != nil {
				return err
			}
			return runScript(ctx, dc, maskScript{text: sec.Text, from: script.from})
		})
		if err != nil {
			return err
		}
	}
	if err := s.own(ctx, c); err != nil {
		return err
	}
	// Every database's tables rewritten and statistics made again, the
	// templates' too (whatever they hold is in the volume).
	steps := []struct{ name, sql string }{
		{"Clear the statistics", `DELETE FROM pg_statistic; DELETE FROM pg_statistic_ext_data; SELECT pg_stat_reset();
			DO $$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') THEN PERFORM pg_stat_statements_reset(); END IF; END $$`},
		{"Rewrite every table", "VACUUM FULL"},
		{"Analyze the masked rows", "ANALYZE"},
	}
	for _, s := range steps {
		err := e.Progress.Step(s.name, func() error {
			for _, d := range dbs {
				dc, err := session(d.Name)
				if err == nil {
					_, err = dc.Exec(ctx, s.sql)
				}
				if err != nil {
					return fmt.Errorf("database %s: %w", d.Name, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(s.name), err)
		}
	}
	if err := e.Progress.Step("Checkpoint and switch WAL", func() error {
		_, err := c.Exec(ctx, "SELECT pg_stat_reset_shared('bgwriter'); CHECKPOINT; SELECT pg_switch_wal(); CHECKPOINT")
		return err
	}); err != nil {
		return fmt.Errorf("checkpoint and switch WAL: %w", err)
	}
	return nil
}

// maskSession is how the masking reaches a clone on its socket, and gives
// it its branch's superuser password before the rewrite (so that the WAL
// of the change is scrubbed with the rest).
type maskSession struct {
	connect func(ctx context.Context, db string) (*pgx.Conn, error)
	own     func(ctx context.Context, c *pgx.Conn) error
}

// maskSession is, for a clone whose data holds the password inData,
// postgres with it, then b's password set when it differs; for a physical
// copy of a source, the source's bootstrap superuser by peer, then
// postgres made Velo's with b's password and every other role of the
// source left without one (their verifiers could be cracked off the
// branch's files).
func (e *Engine) maskSession(p state.Project, b state.Branch, spec runtime.Spec, inData string) maskSession {
	if imported(p) {
		return maskSession{
			connect: func(ctx context.Context, db string) (*pgx.Conn, error) {
				return pg.ConnectDatabase(ctx, spec.SocketDir, spec.Port, p.Source.Superuser, db, "")
			},
			own: func(ctx context.Context, c *pgx.Conn) error {
				if err := e.adoptCopy(ctx, p, b); err != nil {
					return err
				}
				rows, err := c.Query(ctx, "SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname <> 'postgres'")
				if err != nil {
					return err
				}
				names, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				for _, n := range names {
					if _, err := c.Exec(ctx, "ALTER ROLE "+pgx.Identifier{n}.Sanitize()+" PASSWORD NULL"); err != nil {
						return fmt.Errorf("remove role %s's password: %w", n, err)
					}
				}
				return nil
			},
		}
	}
	return maskSession{
		connect: func(ctx context.Context, db string) (*pgx.Conn, error) {
			return pg.ConnectDatabase(ctx, spec.SocketDir, spec.Port, pg.Superuser, db, inData)
		},
		own: func(ctx context.Context, c *pgx.Conn) error {
			if b.Password == inData {
				return nil
			}
			verifier, err := pg.ScramVerifier(b.Password)
			if err != nil {
				return err
			}
			if _, err := c.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(verifier)); err != nil {
				return fmt.Errorf("set the password: %w", err)
			}
			return nil
		},
	}
}

// rollbackPrepared rolls back the prepared transactions a clone inherited
// (their state files hold their rows), each in its own database, where
// alone ROLLBACK PREPARED may end it.
func rollbackPrepared(ctx context.Context, c *pgx.Conn, session func(string) (*pgx.Conn, error)) error {
	rows, err := c.Query(ctx, "SELECT gid, database FROM pg_prepared_xacts ORDER BY database")
	if err != nil {
		return err
	}
	type prepared struct{ GID, DB string }
	xacts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[prepared])
	if err != nil {
		return err
	}
	for _, x := range xacts {
		dc, err := session(x.DB)
		if err != nil {
			return err
		}
		if _, err := dc.Exec(ctx, "ROLLBACK PREPARED "+quoteLiteral(x.GID)); err != nil {
			return err
		}
	}
	return nil
}

// runScript runs script's statements in one transaction; an SQL error is
// bad input (exit 2) naming the script's line.
func runScript(ctx context.Context, c *pgx.Conn, script maskScript) error {
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	for _, st := range pg.SplitScript(script.text) {
		// The simple protocol: the statement as written, no parameters.
		if _, err := c.Exec(ctx, st.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return errdefs.Invalid("mask script %s, line %d: %s (SQLSTATE %s); nothing was made", script.from, pg.LineOf(st, pe.Position), pe.Message, pe.Code)
			}
			return fmt.Errorf("mask script %s, line %d: %w", script.from, st.Line, err)
		}
	}
	if c.PgConn().TxStatus() != 'T' {
		// The script ended the transaction itself (COMMIT or ROLLBACK).
		return errdefs.Invalid("mask script %s ends its transaction itself (COMMIT or ROLLBACK): Velo runs it in one transaction; remove those statements", script.from)
	}
	_, err := c.Exec(ctx, "COMMIT")
	return err
}
