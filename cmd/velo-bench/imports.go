package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/pg"
)

// imports measures a physical import of a "production" server: a plain
// Postgres (no Velo) on the machine's own disk holding main's database.
// It times pg_basebackup by hand into a plain directory on the pool
// against `velo project create --from` the same server (until the command
// is done: main a hot standby following the source, with its base
// snapshot), then `velo branch create` on the following main until the
// branch answers, and the following main's replay lag under pgbench on the
// source (velo project get --json, about once a second).
func (m *measure) imports(ctx context.Context) error {
	runAs, err := pg.LookupRunAs()
	if err != nil {
		return err
	}
	plain, err := m.plainCopy(ctx, runAs)
	if err != nil {
		return err
	}
	defer os.RemoveAll(plain)
	src, err := startPostgres(ctx, m.c, plain, runAs, m.password, m.scale)
	if err != nil {
		return err
	}
	defer src.stop()
	logf("%s %d MB: import source on %s, port %d", m.p.driver, m.size, plain, src.port)
	if m.c.logical {
		if err := m.logicalImport(ctx, runAs, src.port); err != nil {
			return err
		}
	}

	byHand := func(i int) (time.Duration, error) {
		dir := filepath.Join(m.p.mount, fmt.Sprintf("byhand-%d", i))
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
		cmd := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(src.port), "-U", "postgres",
			"-D", dir, "-X", "stream", "-c", "fast")
		cmd.Env = []string{"PGPASSWORD=" + m.password, "PGSSLMODE=disable", "PATH=/usr/bin:/bin"}
		if runAs != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs.Credential()}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("pg_basebackup into %s: %v: %s", dir, err, out)
		}
		return time.Since(start), nil
	}

	// The password reaches velo as a user gives it: PGPASSWORD.
	v := m.v
	v.env = []string{"PGPASSWORD=" + m.password}
	from := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", src.port)
	imp := "imp" + strconv.Itoa(m.size)
	defer func() { _, _ = v.run(context.WithoutCancel(ctx), "project", "delete", imp, "--force") }()
	withVelo := func(i int) (time.Duration, error) {
		start := time.Now()
		if _, err := v.run(ctx, "project", "create", imp, "--pool", m.p.name, "--storage", m.p.driver, "--from", from); err != nil {
			return 0, err
		}
		d := time.Since(start)
		if i == m.c.reps {
			return d, nil // the last stays, for branch create and the lag
		}
		_, err := v.run(ctx, "project", "delete", imp, "--force")
		return d, err
	}
	sh, sv, err := timePairs(m.c.reps, byHand, withVelo)
	if err != nil {
		return err
	}
	m.add(m.p.driver, bench.ImportByHand, sh)
	m.add(m.p.driver, bench.ImportVelo, sv)

	// A branch of an imported main has main's password (Velo's, given to
	// postgres in the branch; main itself keeps the source's).
	out, err := v.run(ctx, "branch", "password", imp+"/main", "--json")
	if err != nil {
		return err
	}
	var pw struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(out), &pw); err != nil || pw.Password == "" {
		return fmt.Errorf("velo branch password --json: no password in %q", out)
	}
	s, err := timeRuns(m.c.reps, func(i int) (time.Duration, error) {
		ref := fmt.Sprintf("%s/b%d", imp, i)
		d, err := v.ready(ctx, pw.Password, m.scale, "branch", "create", ref)
		if err != nil {
			return 0, err
		}
		_, err = v.run(ctx, "branch", "delete", ref)
		return d, err
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, bench.ImportBranch, s)
	return m.replayLag(ctx, v, imp, src.port)
}

// replayLag runs pgbench on the source for --tps-time and samples how far
// behind the following main is.
func (m *measure) replayLag(ctx context.Context, v velo, imp string, port int) error {
	type sample struct {
		bytes int64
		secs  float64
		state string
	}
	var samples []sample
	var sampleErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for end := time.Now().Add(m.c.tpsTime); time.Now().Before(end); <-t.C {
			out, err := v.run(ctx, "project", "get", imp, "--json")
			if err != nil {
				sampleErr = err
				return
			}
			var p struct {
				Source struct {
					State      string   `json:"state"`
					LagBytes   *int64   `json:"lag_bytes"`
					LagSeconds *float64 `json:"lag_seconds"`
				} `json:"source"`
			}
			if err := json.Unmarshal([]byte(out), &p); err != nil {
				sampleErr = err
				return
			}
			s := sample{state: p.Source.State}
			if p.Source.LagBytes != nil && p.Source.LagSeconds != nil {
				s.bytes, s.secs = *p.Source.LagBytes, *p.Source.LagSeconds
			}
			samples = append(samples, s)
		}
	}()
	secs := strconv.Itoa(max(1, int(m.c.tpsTime/time.Second)))
	out, err := m.pgbenchOut(ctx, port, "-n", "-c", "4", "-j", "2", "-T", secs)
	<-done
	if err := errors.Join(err, sampleErr); err != nil {
		return err
	}
	tps, err := parseTPS(out)
	if err != nil {
		return err
	}
	l := bench.Lag{Driver: m.p.driver, SizeMB: m.size, SourceTPS: tps, Samples: len(samples)}
	var bytes []int64
	var ss []float64
	for _, s := range samples {
		bytes, ss = append(bytes, s.bytes), append(ss, s.secs)
		if s.state == "streaming" {
			l.Streaming++
		}
	}
	if len(samples) > 0 {
		l.MedianBytes, l.MaxBytes = bench.Median(bytes), slices.Max(bytes)
		l.MedianSeconds, l.MaxSeconds = bench.Median(ss), slices.Max(ss)
	}
	m.rep.Lags = append(m.rep.Lags, l)
	logf("%s %d MB: replay lag under pgbench (%.0f TPS on the source), %d samples, %d streaming: bytes median %d max %d, seconds median %.2f max %.2f",
		m.p.driver, m.size, tps, l.Samples, l.Streaming, l.MedianBytes, l.MaxBytes, l.MedianSeconds, l.MaxSeconds)
	return nil
}
