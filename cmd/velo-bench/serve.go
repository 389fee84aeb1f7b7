package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/bench"
)

// serveFigures measures velo serve on main and on a fleet of branches:
// pgbench -S (and -S -C, a session per transaction) through the router
// against main's own port, alternating which goes first; then
// c.branches branches all running against the same fleet with c.inUse of
// them holding a session through velo serve and the rest suspended: the
// PSS of every server of the project (and of velo serve), and velo status.
func (m *measure) serveFigures(ctx context.Context) error {
	srv, err := m.startServe(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	f := bench.Serve{Driver: m.p.driver, SizeMB: m.size, Branches: m.c.branches, InUse: m.c.inUse}
	secs := strconv.Itoa(int(m.c.tpsTime.Seconds()))
	routed := m.project + "/main"
	for _, mode := range []struct {
		flags          []string
		direct, router *float64
	}{{[]string{"-S"}, &f.DirectTPS, &f.RouterTPS}, {[]string{"-S", "-C"}, &f.DirectConnTPS, &f.RouterConnTPS}} {
		var direct, router []float64
		for round := range m.c.tpsRounds {
			for i := range 2 {
				viaRouter := (round+i)%2 == 1
				port, db, who := m.main.Port, "postgres", "direct"
				if viaRouter {
					port, db, who = srv.port, routed, "through velo serve"
				}
				out, err := m.pgbenchDB(ctx, port, db, append([]string{"-n", "-c", "4", "-j", "2", "-T", secs}, mode.flags...)...)
				if err != nil {
					return err
				}
				tps, err := parseTPS(out)
				if err != nil {
					return err
				}
				if viaRouter {
					router = append(router, tps)
				} else {
					direct = append(direct, tps)
				}
				logf("%s %d MB: pgbench %v round %d %s: %.0f TPS", m.p.driver, m.size, mode.flags, round+1, who, tps)
			}
		}
		*mode.direct, *mode.router = bench.Median(direct), bench.Median(router)
	}
	srv.stop()
	if err := m.fleet(ctx, &f); err != nil {
		return err
	}
	m.rep.Serves = append(m.rep.Serves, f)
	return nil
}

// fleet makes the branches and measures them all running, then served.
func (m *measure) fleet(ctx context.Context, f *bench.Serve) error {
	logf("%s %d MB: creating %d branches for velo serve's fleet", m.p.driver, m.size, f.Branches)
	for i := range f.Branches {
		if _, err := m.v.run(ctx, "branch", "create", fmt.Sprintf("%s/f%d", m.project, i)); err != nil {
			return err
		}
	}
	running := func() ([]int, error) {
		pids, err := m.runningPIDs(ctx)
		if err == nil && len(pids) == 0 {
			err = fmt.Errorf("velo status shows no server running")
		}
		return pids, err
	}
	status := func(method string) error {
		s, err := timeRuns(m.c.reps, func(int) (time.Duration, error) {
			start := time.Now()
			_, err := m.v.run(ctx, "status", "--json")
			return time.Since(start), err
		})
		if err == nil {
			m.add(m.p.driver, method, s)
		}
		return err
	}
	pids, err := running()
	if err != nil {
		return err
	}
	if len(pids) != f.Branches+1 {
		return fmt.Errorf("%d servers running, want %d", len(pids), f.Branches+1)
	}
	if f.RunningPSS, err = sumPSS(pids); err != nil {
		return err
	}
	m.rep.Branches = f.Branches
	if err := status(bench.VeloStatus); err != nil {
		return err
	}
	if _, err := m.v.run(ctx, "project", "set", m.project, "--idle", "1s"); err != nil {
		return err
	}
	srv, err := m.startServe(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	start := time.Now()
	sessions, err := m.holdSessions(ctx, srv.port, f.InUse)
	defer sessions.close()
	if err != nil {
		return err
	}
	for {
		if pids, err = running(); err != nil {
			return err
		}
		if len(pids) == f.InUse+1 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("velo serve left %d servers running after 10 minutes, want %d", len(pids), f.InUse+1)
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.Suspend = time.Since(start)
	logf("%s %d MB: velo serve suspended %d branches in %s", m.p.driver, m.size, f.Branches-f.InUse, bench.Dur(f.Suspend))
	if f.ServePSS, _, err = smapsRollup(srv.pid); err != nil {
		return err
	}
	served, err := sumPSS(pids)
	if err != nil {
		return err
	}
	f.ServedPSS = served + f.ServePSS
	if err := status(bench.VeloStatusFleet); err != nil {
		return err
	}
	sessions.close()
	srv.stop()
	_, err = m.v.run(ctx, "project", "set", m.project, "--idle", "never")
	return err
}

// runningPIDs are the postmasters of the project's running servers, as
// velo status --json says.
func (m *measure) runningPIDs(ctx context.Context) ([]int, error) {
	out, err := m.v.run(ctx, "status", "--json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Projects []struct {
			Name       string `json:"name"`
			BranchList []struct {
				State string `json:"state"`
				PID   int    `json:"pid"`
			} `json:"branch_list"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range st.Projects {
		for _, b := range p.BranchList {
			if p.Name == m.project && b.State == "running" && b.PID > 0 {
				pids = append(pids, b.PID)
			}
		}
	}
	return pids, nil
}

// sumPSS is the PSS of every process tree of pids.
func sumPSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		p, _, err := treeMemory(pid)
		if err != nil {
			return 0, err
		}
		total += p
	}
	return total, nil
}

// sessions are clients holding a session through velo serve, each running
// a query every half second until closed.
type sessions struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func (s *sessions) close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// holdSessions opens a session through the router on port to each of the
// first n branches of the fleet.
func (m *measure) holdSessions(ctx context.Context, port, n int) (*sessions, error) {
	s := &sessions{stop: make(chan struct{})}
	for i := range n {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s%%2Ff%d?sslmode=disable", m.password, port, m.project, i))
		if err != nil {
			return s, fmt.Errorf("a session through velo serve to %s/f%d: %w", m.project, i, err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close(context.WithoutCancel(ctx))
			for {
				select {
				case <-s.stop:
					return
				case <-time.After(500 * time.Millisecond):
					_, _ = c.Exec(ctx, "SELECT 1")
				}
			}
		}()
	}
	return s, nil
}
