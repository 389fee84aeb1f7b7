package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/storage/drivers"
)

// alternatives times what a user does without Velo, on a plain Postgres
// server (no WAL archiving) holding the same database on the machine's own
// disk: CREATE DATABASE ... TEMPLATE, pg_dump | pg_restore into a new
// database, and pg_basebackup followed by starting the copy. Each is timed
// until the copy answers a query.
func (m *measure) alternatives(ctx context.Context) error {
	runAs, err := pg.LookupRunAs()
	if err != nil {
		return err
	}
	plain, err := m.plainCopy(ctx, runAs)
	if err != nil {
		return err
	}
	defer os.RemoveAll(plain)
	srv, err := startPostgres(ctx, m.c, plain, runAs, m.password, m.scale)
	if err != nil {
		return err
	}
	defer srv.stop()
	port := srv.port
	logf("plain server %d MB: on %s, port %d", m.size, plain, port)

	s, err := timeRuns(m.c.reps, func(i int) (time.Duration, error) {
		db := fmt.Sprintf("tpl%d", i)
		start := time.Now()
		if err := exec1(ctx, port, m.password, "template1", "CREATE DATABASE "+db+" TEMPLATE postgres"); err != nil {
			return 0, err
		}
		if err := answers(ctx, port, m.password, db, m.scale); err != nil {
			return 0, err
		}
		d := time.Since(start)
		return d, exec1(ctx, port, m.password, "template1", "DROP DATABASE "+db)
	})
	if err != nil {
		return err
	}
	m.add("", bench.Template, s)

	s, err = timeRuns(m.c.reps, func(i int) (time.Duration, error) {
		db := fmt.Sprintf("dr%d", i)
		start := time.Now()
		if err := exec1(ctx, port, m.password, "template1", "CREATE DATABASE "+db); err != nil {
			return 0, err
		}
		if err := m.dumpRestore(ctx, port, db); err != nil {
			return 0, err
		}
		if err := answers(ctx, port, m.password, db, m.scale); err != nil {
			return 0, err
		}
		d := time.Since(start)
		return d, exec1(ctx, port, m.password, "template1", "DROP DATABASE "+db)
	})
	if err != nil {
		return err
	}
	m.add("", bench.DumpRestor, s)

	s, err = timeRuns(m.c.reps, func(i int) (time.Duration, error) {
		dir := filepath.Join(m.c.work, fmt.Sprintf("basebackup%d", i))
		defer os.RemoveAll(dir)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return 0, err
		}
		if runAs != nil {
			if err := os.Chown(dir, runAs.UID, runAs.GID); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres",
			"-D", dir, "-X", "stream", "-c", "fast")
		cmd.Env = []string{"PGPASSWORD=" + m.password, "PGSSLMODE=disable", "PATH=/usr/bin:/bin"}
		if runAs != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs.Credential()}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("pg_basebackup: %v: %s", err, out)
		}
		copySrv, err := startPostgres(ctx, m.c, dir, runAs, m.password, m.scale)
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		return d, copySrv.stop()
	})
	if err != nil {
		return err
	}
	m.add("", bench.BaseBackup, s)
	return nil
}

// plainCopy copies main's data directory, from a snapshot, to the work
// directory on the machine's own filesystem, owned by the server's user.
func (m *measure) plainCopy(ctx context.Context, runAs *pg.OSUser) (string, error) {
	d, err := drivers.Open(ctx, m.p.driver, m.p.name)
	if err != nil {
		return "", err
	}
	if err := exec1(ctx, m.main.Port, m.password, "postgres", "CHECKPOINT"); err != nil {
		return "", err
	}
	if err := d.Snapshot(ctx, m.main.Volume, "plain-s"); err != nil {
		return "", err
	}
	path, err := d.Clone(ctx, "plain-s", "plain-v")
	if err != nil {
		return "", errors.Join(err, d.DestroySnapshot(ctx, "plain-s"))
	}
	dst := filepath.Join(m.c.work, fmt.Sprintf("plain-%d", m.size))
	out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(path, "pgdata"), dst).CombinedOutput()
	err = errors.Join(err, d.DestroyVolume(ctx, "plain-v"), d.DestroySnapshot(ctx, "plain-s"))
	if err != nil {
		return "", fmt.Errorf("copy main's data to %s: %v %s", dst, err, out)
	}
	if runAs != nil {
		if err := pg.Chown(dst, runAs); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// dumpRestore pipes pg_dump of the postgres database into pg_restore into db.
func (m *measure) dumpRestore(ctx context.Context, port int, db string) error {
	env := []string{"PGPASSWORD=" + m.password, "PGSSLMODE=disable", "PATH=/usr/bin:/bin"}
	conn := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres"}
	dump := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "pg_dump"), append(conn, "-Fc", "-d", "postgres")...)
	restore := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "pg_restore"), append(conn, "-d", db)...)
	dump.Env, restore.Env = env, env
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	var dumpErr, restoreErr limitedBuffer
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	if err := dump.Start(); err != nil {
		return err
	}
	rerr := restore.Run()
	derr := dump.Wait()
	if derr != nil || rerr != nil {
		return fmt.Errorf("pg_dump | pg_restore: %v %s / %v %s", derr, dumpErr.String(), rerr, restoreErr.String())
	}
	return nil
}

// limitedBuffer keeps the first 4 KB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
