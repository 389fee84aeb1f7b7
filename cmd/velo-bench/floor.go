package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/storage/drivers"
)

// floor times what branching costs at the least, by hand and without Velo:
// CHECKPOINT on main, the storage driver's snapshot of main's volume and
// clone of it (the same calls Velo makes: `zfs snapshot`/`zfs clone`,
// `btrfs subvolume snapshot`, FICLONE, a copy), and a bare `postgres`
// start on the clone until it answers. No lock, journal, state, config,
// backup protocol or WAL archive.
func (m *measure) floor(ctx context.Context) error {
	d, err := drivers.Open(ctx, m.p.driver, m.p.name)
	if err != nil {
		return err
	}
	runAs, err := pg.LookupRunAs()
	if err != nil {
		return err
	}
	var ck, snap, clone, start, total []time.Duration
	for i := 0; i <= m.c.reps; i++ {
		sid, vid := fmt.Sprintf("floor-s%d", i), fmt.Sprintf("floor-v%d", i)
		t0 := time.Now()
		if err := exec1(ctx, m.main.Port, m.password, "postgres", "CHECKPOINT"); err != nil {
			return err
		}
		t1 := time.Now()
		if err := d.Snapshot(ctx, m.main.Volume, sid); err != nil {
			return err
		}
		t2 := time.Now()
		path, err := d.Clone(ctx, sid, vid)
		if err != nil {
			return err
		}
		t3 := time.Now()
		srv, err := startPostgres(ctx, m.c, filepath.Join(path, "pgdata"), runAs, m.password, m.scale)
		if err != nil {
			return err
		}
		t4 := time.Now()
		err = errors.Join(srv.stop(), d.DestroyVolume(ctx, vid), d.DestroySnapshot(ctx, sid))
		if err != nil {
			return err
		}
		if i > 0 {
			ck, snap, clone, start = append(ck, t1.Sub(t0)), append(snap, t2.Sub(t1)), append(clone, t3.Sub(t2)), append(start, t4.Sub(t3))
			total = append(total, t4.Sub(t0))
		}
	}
	m.add(m.p.driver, bench.FloorTotal, bench.Summarize(total))
	m.add(m.p.driver, bench.FloorCkpt, bench.Summarize(ck))
	m.add(m.p.driver, bench.FloorSnap, bench.Summarize(snap))
	m.add(m.p.driver, bench.FloorClone, bench.Summarize(clone))
	m.add(m.p.driver, bench.FloorStart, bench.Summarize(start))
	return nil
}

// server is a postgres started by hand.
type server struct {
	port int
	cmd  *exec.Cmd
	sock string
	done chan error
}

// startPostgres starts postgres on dataDir as runAs, on a free port and a
// private socket directory, with archiving off and the settings in extra
// ("name=value"), and waits until a new connection counts scale rows in
// pgbench_branches.
func startPostgres(ctx context.Context, c config, dataDir string, runAs *pg.OSUser, password string, scale int, extra ...string) (*server, error) {
	if err := os.Remove(filepath.Join(dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	port, err := pg.FreePort(nil)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(c.work, "sock-"+strconv.Itoa(port))
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if runAs != nil {
		if err := os.Chown(sock, runAs.UID, runAs.GID); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(c.work, "postgres-"+strconv.Itoa(port)+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port), "-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "archive_mode=off"}
	for _, x := range extra {
		args = append(args, "-c", x)
	}
	cmd := exec.Command(filepath.Join(c.pgBin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if runAs != nil {
		cmd.SysProcAttr.Credential = runAs.Credential()
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{port: port, cmd: cmd, sock: sock, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		err := answers(ctx, port, password, "postgres", scale)
		if err == nil {
			return s, nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres on %s exited (%v): %s", dataDir, werr, out)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.stop()
			return nil, fmt.Errorf("postgres on %s did not answer: %v", dataDir, err)
		}
	}
}

// stop shuts the server down fast (SIGINT, then SIGQUIT) and waits.
func (s *server) stop() error {
	defer os.RemoveAll(s.sock)
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	return nil
}

// treeMemory returns the proportional and resident set sizes, in bytes, of
// process pid and all its descendants, from /proc/PID/smaps_rollup.
func treeMemory(pid int) (pss, rss int64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("no server process")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = append(todo[1:], children[p]...)
		ps, rs, err := smapsRollup(p)
		if err != nil {
			if p == pid {
				return 0, 0, err
			}
			continue // a child that just exited
		}
		pss, rss = pss+ps, rss+rs
	}
	return pss, rss, nil
}

func smapsRollup(pid int) (pss, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "Pss:":
			pss = kb << 10
		case "Rss:":
			rss = kb << 10
		}
	}
	return pss, rss, sc.Err()
}
