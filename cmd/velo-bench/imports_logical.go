package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/pg"
)

// logicalImport measures `velo project create --from --logical` of the
// source's database (postgres, holding pgbench's tables) against the same
// by hand: pg_dump -Fd -j N into a directory on the pool, then
// pg_restore -j N into a new database of a server made beforehand on the
// pool (so the by-hand figure leaves out the initdb and the start that
// Velo's includes), until the copy answers. N is Velo's: the cores, at
// least 2. Both use the tools in --pg-bin, and Velo's project is of the
// source's major.
func (m *measure) logicalImport(ctx context.Context, runAs *pg.OSUser, srcPort int) error {
	dir := filepath.Join(m.p.mount, "logical-target")
	defer os.RemoveAll(dir)
	if err := m.initdb(ctx, dir, runAs); err != nil {
		return err
	}
	tgt, err := startPostgres(ctx, m.c, dir, runAs, m.password, 0)
	if err != nil {
		return err
	}
	defer tgt.stop()
	jobs := strconv.Itoa(max(2, goruntime.NumCPU()))
	env := []string{"PGPASSWORD=" + m.password, "PGSSLMODE=disable", "PATH=/usr/bin:/bin"}
	tool := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, name), args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, out)
		}
		return nil
	}
	byHand := func(i int) (time.Duration, error) {
		dump := filepath.Join(m.p.mount, fmt.Sprintf("dump-%d", i))
		defer os.RemoveAll(dump)
		db := fmt.Sprintf("lg%d", i)
		start := time.Now()
		if err := tool("pg_dump", "-Fd", "-j", jobs, "-f", dump, "-h", "127.0.0.1", "-p", strconv.Itoa(srcPort), "-U", "postgres", "postgres"); err != nil {
			return 0, err
		}
		if err := exec1(ctx, tgt.port, m.password, "template1", "CREATE DATABASE "+db); err != nil {
			return 0, err
		}
		if err := tool("pg_restore", "-j", jobs, "-d", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s", tgt.port, db), dump); err != nil {
			return 0, err
		}
		if err := answers(ctx, tgt.port, m.password, db, m.scale); err != nil {
			return 0, err
		}
		d := time.Since(start)
		return d, exec1(ctx, tgt.port, m.password, "template1", "DROP DATABASE "+db)
	}

	v := m.v
	v.env = []string{"PGPASSWORD=" + m.password}
	from := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", srcPort)
	name := "lg" + strconv.Itoa(m.size)
	withVelo := func(i int) (time.Duration, error) {
		start := time.Now()
		if _, err := v.run(ctx, "project", "create", name, "--pool", m.p.name, "--storage", m.p.driver, "--from", from,
			"--logical", "--database", "postgres", "--pg-version", strconv.Itoa(m.c.pgMajor)); err != nil {
			return 0, err
		}
		d := time.Since(start)
		_, err := v.run(ctx, "project", "delete", name, "--force")
		return d, err
	}
	sh, sv, err := timePairs(m.c.reps, byHand, withVelo)
	if err != nil {
		return err
	}
	m.add(m.p.driver, bench.LogicalByHand, sh)
	m.add(m.p.driver, bench.LogicalVelo, sv)
	return nil
}

// initdb makes an empty cluster in dir, owned by the server's user, whose
// postgres has velo-bench's password.
func (m *measure) initdb(ctx context.Context, dir string, runAs *pg.OSUser) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	pw := filepath.Join(m.c.work, "initdb-pw")
	if err := os.WriteFile(pw, []byte(m.password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	cmd := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "initdb"), "-D", dir, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw, "-E", "UTF8", "--locale=C")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	if runAs != nil {
		for _, p := range []string{dir, pw} {
			if err := os.Chown(p, runAs.UID, runAs.GID); err != nil {
				return err
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs.Credential()}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %v: %s", dir, err, out)
	}
	return nil
}
