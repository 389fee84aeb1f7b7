package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/velohq/velo/internal/pg"
)

// The methods of the wake figures.
const (
	wakeRouter = "wake through velo serve (connect to first row)"
	wakeFloor  = "bare postgres start on the same clone"
)

// wake times, on a branch suspended by velo serve (--idle 1s), a client's
// connect through the router to its first row of pgbench_branches, the
// wake included; against the floor, a bare `postgres` start on the same
// branch's data directory, stopped, until it answers the same query.
func (m *measure) wake(ctx context.Context) error {
	ref := m.project + "/wake"
	if _, err := m.v.run(ctx, "branch", "create", ref); err != nil {
		return err
	}
	if _, err := m.v.run(ctx, "branch", "set", ref, "--idle", "1s"); err != nil {
		return err
	}
	srv, err := m.startServe(ctx)
	if err != nil {
		return err
	}
	port, stop := srv.port, srv.stop
	defer stop()
	s, err := timeRuns(m.c.reps, func(int) (time.Duration, error) {
		if err := m.waitSuspended(ctx, ref, time.Minute); err != nil {
			return 0, err
		}
		start := time.Now()
		err := answers(ctx, port, m.password, ref, m.scale)
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, wakeRouter, s)
	stop()
	if _, err := m.v.run(ctx, "branch", "stop", ref); err != nil {
		return err
	}
	b, err := m.v.branch(ctx, ref)
	if err != nil {
		return err
	}
	runAs, err := pg.LookupRunAs()
	if err != nil {
		return err
	}
	s, err = timeRuns(m.c.reps, func(int) (time.Duration, error) {
		start := time.Now()
		srv, err := startPostgres(ctx, m.c, b.DataDir, runAs, m.password, m.scale)
		d := time.Since(start)
		if err == nil {
			err = srv.stop()
		}
		return d, err
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, wakeFloor, s)
	_, err = m.v.run(ctx, "branch", "delete", ref)
	return err
}

// waitSuspended waits until velo serve has suspended ref.
func (m *measure) waitSuspended(ctx context.Context, ref string, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		out, err := m.v.run(ctx, "branch", "get", ref, "--json")
		if err != nil {
			return err
		}
		var b struct{ State string }
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			return err
		}
		if b.State == "suspended" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still %s after %s with --idle 1s", ref, b.State, limit)
		}
	}
}

// served is a velo serve that velo-bench started.
type served struct {
	port, pid int
	stop      func()
}

// startServe starts velo serve on free loopback ports of its own and
// returns the router's port, its process and how to stop it.
func (m *measure) startServe(ctx context.Context) (served, error) {
	free := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	port, err := free()
	if err != nil {
		return served{}, err
	}
	http, err := free()
	if err != nil {
		return served{}, err
	}
	cmd := exec.CommandContext(ctx, m.v.bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--http", fmt.Sprintf("127.0.0.1:%d", http))
	cmd.Env = append(os.Environ(), "VELO_HOME="+m.v.home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return served{}, err
	}
	if err := cmd.Start(); err != nil {
		return served{}, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
	}
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "routing on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		stop()
		return served{}, fmt.Errorf("velo serve did not route within 30s")
	}
	return served{port: port, pid: cmd.Process.Pid, stop: stop}, nil
}
