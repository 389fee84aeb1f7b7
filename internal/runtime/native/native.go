// Package native runs Postgres servers from the host's binaries: the
// install's own postgres, started directly (not through pg_ctl) as a
// detached process in a session of its own, so that it outlives velo.
//
// Everything it knows about a server it reads again on every call, from the
// data directory's postmaster.pid and from /proc: a server started by one
// velo process is stopped by another, and a server that died is seen as
// stopped however it died.
package native

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/procfs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/serverfiles"
)

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 60 * time.Second
	// pollInterval paces every wait: readiness, shutdown, orphans. A fresh
	// cluster is ready in a few tens of milliseconds (a wake of a 100 MB
	// branch: 35 ms bare), so coarser polling would be much of the start
	// time; a poll before the server is ready reads postmaster.pid only.
	pollInterval = 2 * time.Millisecond
	// probeTimeout bounds one connection attempt.
	probeTimeout = 2 * time.Second
	// orphanWait is how long children of a killed postmaster get to notice
	// and exit; they do so within milliseconds.
	orphanWait = 5 * time.Second
	// killWait is how long a SIGKILLed process gets to disappear.
	killWait = 10 * time.Second
	// immediateWait is how long an immediate shutdown asked for directly
	// (Stop with no timeout) gets before SIGKILL.
	immediateWait = 10 * time.Second
)

// Runtime is the native runtime. The zero value is not used; call New.
type Runtime struct{}

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Lister  = (*Runtime)(nil)
)

// New returns the native runtime.
func New() *Runtime { return &Runtime{} }

// Name returns "native".
func (r *Runtime) Name() string { return "native" }

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Handle, error) {
	if err := serverfiles.Validate(s); err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: %v", runtime.ErrStartFailed, err)
	}
	if err := ctx.Err(); err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: %w", runtime.ErrStartFailed, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	dataDir, err := serverfiles.CanonicalDir(s.DataDir)
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: data directory: %v", runtime.ErrStartFailed, err)
	}

	if p, pf, ok := findPostmaster(dataDir); ok {
		port := pf.Port
		if port == 0 {
			port = s.Port
		}
		if port != s.Port {
			slog.WarnContext(ctx, "postgres already running on another port than asked", "data_dir", dataDir, "pid", p.PID, "port", port, "want_port", s.Port)
		}
		h, err := waitReady(ctx, s, dataDir, p, port, nil)
		if err != nil {
			return runtime.Handle{}, fmt.Errorf("%w: postgres (PID %d) already runs on %s but %v", runtime.ErrStartFailed, p.PID, dataDir, err)
		}
		return h, nil
	}
	if err := clearStale(ctx, dataDir); err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: %v", runtime.ErrStartFailed, err)
	}
	logf, logStart, err := serverfiles.Prepare(s)
	if err != nil {
		return runtime.Handle{}, err
	}

	args := []string{"-D", dataDir, "-p", strconv.Itoa(s.Port)}
	if s.SocketDir != "" {
		args = append(args, "-k", pg.QuoteListElement(filepath.Clean(s.SocketDir)))
	}
	// Not exec.CommandContext: the server must outlive ctx and this process.
	// Start bounds its own wait with ctx and stops the server itself when
	// it gives up.
	cmd := exec.Command(s.Install.Bin("postgres"), args...)
	cmd.Env = s.Install.Env()
	cmd.Dir = dataDir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if s.RunAs != nil {
		cmd.SysProcAttr.Credential = s.RunAs.Credential()
	}
	began := time.Now()
	err = cmd.Start()
	logf.Close() // the child holds its own descriptor
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: run %s: %v", runtime.ErrStartFailed, cmd.Path, err)
	}
	// Reap the child if it dies while this process lives; once this process
	// exits, the server is re-parented and the zombie check in /proc covers
	// whoever fails to reap it.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	st, err := procfs.ReadStat(cmd.Process.Pid)
	if err != nil {
		// Gone already: the exit is reported by waitReady through exited.
		st = procfs.Stat{}
	}
	p := process{PID: cmd.Process.Pid, stat: st}
	h, err := waitReady(ctx, s, dataDir, p, s.Port, exited)
	if err != nil {
		select {
		case <-exited:
			err = fmt.Errorf("postgres exited during start up (%v)", waitErr)
		default:
			// Not ready in time: take it down again, so that a failed Start
			// leaves nothing behind. A server in crash recovery resumes it
			// at the next start.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*killWait)
			if serr := stopProcess(stopCtx, p, 5*time.Second); serr != nil {
				slog.WarnContext(ctx, "stopping a server that failed to start", "pid", p.PID, "err", serr)
			}
			cancel()
		}
		return runtime.Handle{}, fmt.Errorf("%w: %s: %w; %s", runtime.ErrStartFailed, dataDir, err, serverfiles.LogTail(s.LogFile, logStart))
	}
	slog.DebugContext(ctx, "postgres started", "data_dir", dataDir, "pid", h.PID, "port", h.Port, "took", time.Since(began))
	return h, nil
}

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(ctx context.Context, s runtime.Spec, timeout time.Duration) error {
	if timeout < 0 {
		timeout = defaultStopTimeout
	}
	dataDir, err := serverfiles.CanonicalDir(s.DataDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing can run on a data directory that is gone
		}
		return fmt.Errorf("stop: data directory: %w", err)
	}
	if p, _, ok := findPostmaster(dataDir); ok {
		if err := stopProcess(ctx, p, timeout); err != nil {
			return fmt.Errorf("stop postgres on %s: %w", dataDir, err)
		}
	}
	// Children of a postmaster that was killed may linger; the data
	// directory is not free until they are gone.
	if err := endOrphans(ctx, dataDir); err != nil {
		return fmt.Errorf("stop postgres on %s: %w", dataDir, err)
	}
	return nil
}

// Status implements runtime.Runtime.
func (r *Runtime) Status(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	st, p, dataDir, err := r.peek(s)
	if err != nil || st.State != runtime.Running {
		return st, err
	}
	st.Ready = probe(ctx, s, dataDir, p, st.Port)
	return st, nil
}

// Peek implements runtime.Runtime.
func (r *Runtime) Peek(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	st, _, _, err := r.peek(s)
	return st, err
}

func (r *Runtime) peek(s runtime.Spec) (runtime.Status, process, string, error) {
	dataDir, err := serverfiles.CanonicalDir(s.DataDir)
	if err != nil {
		return runtime.Status{}, process{}, "", fmt.Errorf("status: data directory: %w", err)
	}
	p, pf, ok := findPostmaster(dataDir)
	if !ok {
		return runtime.Status{State: runtime.Stopped}, p, dataDir, nil
	}
	at, err := procfs.StartTime(p.stat.StartTicks)
	if err != nil {
		return runtime.Status{}, p, dataDir, fmt.Errorf("status: %w", err)
	}
	port := pf.Port
	if port == 0 {
		port = s.Port
	}
	return runtime.Status{State: runtime.Running, PID: p.PID, Port: port, StartedAt: at}, p, dataDir, nil
}

// findPostmaster returns the postmaster running on dataDir: the process
// postmaster.pid names, when it is alive, not a zombie, and a postgres
// working on dataDir. Anything else (no file, a dead PID, a PID reused by
// another program) means no server runs.
func findPostmaster(dataDir string) (process, serverfiles.PIDFile, bool) {
	pf, err := serverfiles.ReadPIDFile(dataDir)
	if err != nil {
		return process{}, serverfiles.PIDFile{}, false
	}
	p, ok := postgresOn(pf.PID, dataDir)
	if !ok {
		return process{}, serverfiles.PIDFile{}, false
	}
	return p, pf, true
}

// clearStale makes a data directory whose server is not running ready to
// start: children left by a killed postmaster must be gone, and a
// postmaster.pid that names a process which still exists but is not its
// postmaster (a zombie, or a PID reused by another program) is removed,
// since Postgres would take that process for a running server and refuse
// to start. A postmaster.pid naming a PID that no longer exists is left to
// Postgres, which checks its shared memory before reusing the directory.
func clearStale(ctx context.Context, dataDir string) error {
	if err := waitOrphans(ctx, dataDir, orphanWait); err != nil {
		return err
	}
	path := filepath.Join(dataDir, "postmaster.pid")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pf, perr := serverfiles.ParsePIDFile(data)
	if perr == nil && !pidExists(pf.PID) {
		return nil
	}
	// No postgres works on dataDir (waitOrphans), so the file is stale:
	// unparsable (a start that crashed while writing it) or naming a
	// process that is not a server of this directory.
	slog.InfoContext(ctx, "removing stale postmaster.pid", "data_dir", dataDir, "pid", pf.PID)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}

// waitOrphans waits up to limit for every postgres process working on
// dataDir to exit, and fails naming them if some do not.
func waitOrphans(ctx context.Context, dataDir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		procs, err := postgresProcessesOn(dataDir)
		if err != nil {
			return err
		}
		if len(procs) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pids := make([]string, len(procs))
			for i, p := range procs {
				pids[i] = strconv.Itoa(p.PID)
			}
			return fmt.Errorf("postgres processes %s still work on %s without their postmaster; stop the server to end them",
				strings.Join(pids, ", "), dataDir)
		}
		time.Sleep(pollInterval)
	}
}

// endOrphans gives the children of a killed postmaster a moment to exit on
// their own, then kills the rest.
func endOrphans(ctx context.Context, dataDir string) error {
	if waitOrphans(ctx, dataDir, orphanWait) == nil {
		return nil
	}
	procs, err := postgresProcessesOn(dataDir)
	if err != nil {
		return err
	}
	for _, p := range procs {
		slog.WarnContext(ctx, "killing postgres process left without its postmaster", "pid", p.PID, "data_dir", dataDir)
		if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, errGone) {
			return err
		}
	}
	return waitOrphans(ctx, dataDir, killWait)
}

// stopProcess shuts a postmaster down: SIGINT (fast shutdown), then SIGQUIT
// (immediate shutdown) after timeout, then SIGKILL.
func stopProcess(ctx context.Context, p process, timeout time.Duration) error {
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{
		{syscall.SIGINT, timeout},
		{syscall.SIGQUIT, timeout},
		{syscall.SIGKILL, killWait},
	}
	if timeout <= 0 {
		steps = steps[1:]
		steps[0].wait = immediateWait
	}
	for _, step := range steps {
		if err := p.signal(step.sig); err != nil {
			if errors.Is(err, errGone) {
				return nil
			}
			return fmt.Errorf("signal %v to postgres (PID %d): %w", step.sig, p.PID, err)
		}
		gone, err := waitGone(ctx, p, step.wait)
		if err != nil {
			return fmt.Errorf("postgres (PID %d) still shutting down: %w", p.PID, err)
		}
		if gone {
			return nil
		}
		slog.WarnContext(ctx, "postgres did not stop in time; escalating", "pid", p.PID, "signal", step.sig.String(), "waited", step.wait)
	}
	return fmt.Errorf("postgres (PID %d) survived SIGKILL for %v", p.PID, killWait)
}

// waitGone waits up to limit for p to exit.
func waitGone(ctx context.Context, p process, limit time.Duration) (bool, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if !p.alive() {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

var errGone = errors.New("process is gone")

// signal sends sig to p, and only to p: through a pidfd, which pins the
// process, after checking that the PID still names the same process. Where
// pidfds are not available it falls back to kill(2) after the same check.
func (p process) signal(sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errGone
		}
		if !p.alive() {
			return errGone
		}
		if err := syscall.Kill(p.PID, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return errGone
			}
			return err
		}
		return nil
	}
	defer unix.Close(fd)
	if !p.alive() {
		return errGone
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errGone
		}
		return err
	}
	return nil
}

// waitReady waits until the server answers a real connection. exited, when
// not nil, is closed when the process started by this call exits.
func waitReady(ctx context.Context, s runtime.Spec, dataDir string, p process, port int, exited <-chan struct{}) (runtime.Handle, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	began := time.Now()
	for {
		if probe(ctx, s, dataDir, p, port) {
			at, err := procfs.StartTime(p.stat.StartTicks)
			if err != nil {
				return runtime.Handle{}, err
			}
			return runtime.Handle{PID: p.PID, Port: port, StartedAt: at}, nil
		}
		if exited == nil && !p.alive() {
			return runtime.Handle{}, errors.New("exited before it was ready")
		}
		select {
		case <-exited:
			return runtime.Handle{}, errors.New("exited during start up")
		case <-ctx.Done():
			return runtime.Handle{}, fmt.Errorf("not ready after %v: %w", time.Since(began).Round(time.Millisecond), ctx.Err())
		case <-tick.C:
		}
	}
}

// probe reports whether the server of dataDir answers on port. It first
// asks postmaster.pid, which the postmaster marks "ready" (or "standby" for
// a hot standby) once it accepts connections: a cheap check that also keeps
// a connection from reaching another server that holds the port. Then a
// real connection must answer: a session is proof; so is any refusal other
// than "the database system is starting up" (57P03), a wrong password
// included.
func probe(ctx context.Context, s runtime.Spec, dataDir string, p process, port int) bool {
	if s.Install.Major == 0 || s.Install.Major >= 10 { // the status line came with 10
		pf, err := serverfiles.ReadPIDFile(dataDir)
		if err != nil || pf.PID != p.PID || (pf.Status != "ready" && pf.Status != "standby") {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	connect := pg.Connect
	if s.SocketOnly {
		connect = func(ctx context.Context, port int, password string) (*pgx.Conn, error) {
			return pg.ConnectSocket(ctx, s.SocketDir, port, password)
		}
	}
	conn, err := connect(ctx, port, s.Password)
	if err != nil {
		code := pg.SQLState(err)
		return code != "" && code != pg.CodeCannotConnectNow
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return false
	}
	if dir != dataDir {
		if c, err := serverfiles.CanonicalDir(dir); err != nil || c != dataDir {
			slog.WarnContext(ctx, "port answered by another server", "port", port, "want", dataDir, "got", dir)
			return false
		}
	}
	return true
}
