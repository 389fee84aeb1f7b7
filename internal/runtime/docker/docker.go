// Package docker runs Postgres servers in containers through a Docker
// engine's API: one container per running server, made from the Spec's
// image, on the host's network (the server listens on 127.0.0.1 as a
// native one does), with the data directory, socket directory and any
// further directory (the WAL archive) bind-mounted at the paths they have
// on the host. The container runs as the image's postgres user, who owns
// the data directory. The server's output is kept by the engine while the
// container runs and copied into the Spec's log file when it goes.
//
// A container's name comes from its data directory, so every call finds
// the same container again; what runs is read from the engine (the
// container's state, its main process) and from the server's answer,
// never from a record. Stop removes the container: a stopped server is
// its data directory alone, and the next Start makes a fresh container.
//
// The password reaches no container: it is used only by the readiness
// check, from the host. Nothing secret is in a container's command,
// environment or labels.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/dockerapi"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/procfs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/serverfiles"
)

// Labels Velo puts on its containers.
const (
	// LabelDataDir names the data directory: the server's identity.
	LabelDataDir = "dev.velo.data-dir"
	// LabelPort is the port the server was started on.
	LabelPort = "dev.velo.port"
	// LabelHome, LabelProject and LabelBranch say whose server it is.
	LabelHome    = "dev.velo.home"
	LabelProject = "dev.velo.project"
	LabelBranch  = "dev.velo.branch"
	// LabelProbe marks the throwaway containers InspectImage runs.
	LabelProbe = "dev.velo.probe"
)

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 60 * time.Second
	pollInterval        = 10 * time.Millisecond
	probeTimeout        = 2 * time.Second
	killWait            = 10 * time.Second
	immediateWait       = 10 * time.Second
	// shmSize bounds the container's /dev/shm, where Postgres keeps its
	// dynamic shared memory; Docker's default of 64 MB is too small for a
	// parallel query on a large table.
	shmSize = 1 << 30
)

// Runtime runs servers in containers of one engine.
type Runtime struct {
	c *dockerapi.Client
	// labels go on every container and are what List selects by: Velo's
	// home, so that two homes never see each other's containers.
	labels map[string]string
	// cacheDir keeps what InspectImage found, by image ID ("": none).
	cacheDir string
}

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Lister  = (*Runtime)(nil)
)

// New returns the runtime for the engine c. labels (LabelHome: the home)
// are put on every container it makes and select what List returns.
func New(c *dockerapi.Client, labels map[string]string) *Runtime {
	return &Runtime{c: c, labels: labels}
}

// Name returns "docker".
func (r *Runtime) Name() string { return "docker" }

// Client returns the engine's client.
func (r *Runtime) Client() *dockerapi.Client { return r.c }

// ContainerName is the name of the container that runs the server of
// dataDir (canonical): a hash, since a path holds characters a name
// cannot, and the same data directory always gives the same name.
func ContainerName(dataDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dataDir)))
	return "velo-pg-" + hex.EncodeToString(sum[:])[:20]
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Handle, error) {
	if err := validate(s); err != nil {
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
	name := ContainerName(dataDir)
	if ct, err := r.c.ContainerInspect(ctx, name); err == nil {
		if ct.State.Running {
			h, err := r.waitReady(ctx, s, dataDir, name)
			if err != nil {
				return runtime.Handle{}, fmt.Errorf("%w: postgres already runs on %s (container %s) but %w", runtime.ErrStartFailed, dataDir, name, err)
			}
			return h, nil
		}
		// Exited (killed, crashed, a reboot): its data directory is all
		// that matters; a fresh container takes over.
		r.keepEngineLog(ctx, ct.ID, s.LogFile)
		if err := r.c.ContainerRemove(ctx, ct.ID, true); err != nil {
			return runtime.Handle{}, fmt.Errorf("%w: remove the exited container %s: %w", runtime.ErrStartFailed, name, err)
		}
	} else if !dockerapi.IsNotFound(err) {
		return runtime.Handle{}, fmt.Errorf("%w: %w", runtime.ErrStartFailed, err)
	}
	// No container runs on dataDir: its sockets there are stale.
	logf, logStart, err := serverfiles.Prepare(s)
	if err != nil {
		return runtime.Handle{}, err
	}
	logf.Close()
	began := time.Now()
	// Not bounded by ctx: a create the engine finishes after this process
	// gave up on it would leave a container behind that nobody removes.
	// ctx bounds the wait for readiness instead.
	createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*killWait)
	err = r.create(createCtx, s, dataDir, name)
	cancel()
	if err != nil {
		r.remove(ctx, name)
		return runtime.Handle{}, fmt.Errorf("%w: %s: %w", runtime.ErrStartFailed, dataDir, err)
	}
	h, err := r.waitReady(ctx, s, dataDir, name)
	if err != nil {
		// Exited, or not ready in time: keep what the server said, and
		// take it down, so that a failed Start leaves nothing behind.
		r.keepEngineLog(ctx, name, s.LogFile)
		r.remove(ctx, name)
		return runtime.Handle{}, fmt.Errorf("%w: %s: %w; %s", runtime.ErrStartFailed, dataDir, err, serverfiles.LogTail(s.LogFile, logStart))
	}
	slog.DebugContext(ctx, "postgres started in a container", "data_dir", dataDir, "container", name, "pid", h.PID, "port", h.Port, "took", time.Since(began))
	return h, nil
}

func (r *Runtime) create(ctx context.Context, s runtime.Spec, dataDir, name string) error {
	// The server's output goes to the engine's log of the container
	// (docker logs NAME), copied into s.LogFile when the container goes
	// (keepEngineLog): redirecting it into the file would need a shell, and
	// Postgres's logging collector dies with the container before it writes
	// why a start failed.
	cmd := []string{s.Install.Bin("postgres"), "-D", dataDir, "-p", strconv.Itoa(s.Port)}
	mounts := []dockerapi.Mount{{Type: "bind", Source: dataDir, Target: dataDir}}
	if s.SocketDir != "" {
		sock := filepath.Clean(s.SocketDir)
		cmd = append(cmd, "-k", pg.QuoteListElement(sock))
		mounts = append(mounts, dockerapi.Mount{Type: "bind", Source: sock, Target: sock})
	}
	for _, m := range s.Mounts {
		m = filepath.Clean(m)
		mounts = append(mounts, dockerapi.Mount{Type: "bind", Source: m, Target: m})
	}
	labels := map[string]string{LabelDataDir: dataDir, LabelPort: strconv.Itoa(s.Port)}
	for k, v := range s.Labels {
		labels[k] = v
	}
	for k, v := range r.labels {
		labels[k] = v
	}
	user := "postgres"
	if s.RunAs != nil {
		user = fmt.Sprintf("%d:%d", s.RunAs.UID, s.RunAs.GID)
	}
	id, err := r.c.ContainerCreate(ctx, name, dockerapi.ContainerConfig{
		Image:      s.Image,
		Entrypoint: cmd,
		User:       user,
		WorkingDir: dataDir,
		Labels:     labels,
		// What `docker stop` sends: a fast shutdown.
		StopSignal: "SIGINT",
		HostConfig: dockerapi.HostConfig{NetworkMode: "host", Mounts: mounts, ShmSize: shmSize},
	})
	if err != nil {
		return fmt.Errorf("create container %s from %s: %w", name, s.Image, err)
	}
	if err := r.c.ContainerStart(ctx, id); err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	return nil
}

// keepEngineLog appends what the container wrote to its standard output
// and error (the engine keeps it) to the server's log file.
func (r *Runtime) keepEngineLog(ctx context.Context, name, logFile string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	out, err := r.c.ContainerLogs(ctx, name)
	if err != nil || out == "" || logFile == "" {
		return
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(out)
}

// remove takes a container down whatever state it is in, past ctx's end.
func (r *Runtime) remove(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*killWait)
	defer cancel()
	if err := r.c.ContainerRemove(ctx, name, true); err != nil {
		slog.WarnContext(ctx, "removing a container that failed to start", "container", name, "err", err)
	}
}

// Stop implements runtime.Runtime: SIGINT (fast shutdown), then SIGQUIT
// (immediate) after timeout, then SIGKILL, each to the container's main
// process, the postmaster; then the container is removed.
func (r *Runtime) Stop(ctx context.Context, s runtime.Spec, timeout time.Duration) error {
	if timeout < 0 {
		timeout = defaultStopTimeout
	}
	dataDir, err := serverfiles.CanonicalDir(s.DataDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop: data directory: %w", err)
		}
		dataDir = filepath.Clean(s.DataDir) // gone: its container may not be
	}
	name := ContainerName(dataDir)
	ct, err := r.c.ContainerInspect(ctx, name)
	if dockerapi.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop postgres on %s: %w", dataDir, err)
	}
	steps := []struct {
		sig  string
		wait time.Duration
	}{{"SIGINT", timeout}, {"SIGQUIT", timeout}, {"SIGKILL", killWait}}
	if timeout == 0 {
		steps = steps[1:]
		steps[0].wait = immediateWait
	}
	for _, step := range steps {
		if !ct.State.Running {
			break
		}
		if err := r.c.ContainerKill(ctx, name, step.sig); err != nil && !notRunning(err) {
			return fmt.Errorf("stop postgres on %s: %s to container %s: %w", dataDir, step.sig, name, err)
		}
		if ct, err = r.waitExit(ctx, name, step.wait); err != nil {
			return fmt.Errorf("stop postgres on %s: %w", dataDir, err)
		}
		if ct.State.Running {
			slog.WarnContext(ctx, "postgres did not stop in time; escalating", "container", name, "signal", step.sig, "waited", step.wait)
		}
	}
	if ct.State.Running {
		return fmt.Errorf("stop postgres on %s: container %s survived SIGKILL for %v", dataDir, name, killWait)
	}
	r.keepEngineLog(ctx, name, s.LogFile)
	if err := r.c.ContainerRemove(ctx, name, true); err != nil {
		return fmt.Errorf("stop postgres on %s: remove container %s: %w", dataDir, name, err)
	}
	return nil
}

// notRunning reports the engine refusing a signal to a container that has
// just exited.
func notRunning(err error) bool {
	var e *dockerapi.Error
	return dockerapi.IsNotFound(err) || errors.As(err, &e) && e.Status == 409
}

// waitExit polls the container until it no longer runs, or limit passes.
func (r *Runtime) waitExit(ctx context.Context, name string, limit time.Duration) (dockerapi.Container, error) {
	deadline := time.Now().Add(limit)
	for {
		ct, err := r.c.ContainerInspect(ctx, name)
		if dockerapi.IsNotFound(err) {
			return dockerapi.Container{}, nil
		}
		if err != nil || !ct.State.Running || time.Now().After(deadline) {
			return ct, err
		}
		select {
		case <-ctx.Done():
			return ct, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// Status implements runtime.Runtime.
func (r *Runtime) Status(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	st, dataDir, err := r.peek(ctx, s)
	if err != nil || st.State != runtime.Running {
		return st, err
	}
	st.Ready = probe(ctx, s, dataDir, st.Port)
	return st, nil
}

// Peek implements runtime.Runtime.
func (r *Runtime) Peek(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	st, _, err := r.peek(ctx, s)
	return st, err
}

func (r *Runtime) peek(ctx context.Context, s runtime.Spec) (runtime.Status, string, error) {
	dataDir, err := serverfiles.CanonicalDir(s.DataDir)
	if err != nil {
		return runtime.Status{}, "", fmt.Errorf("status: data directory: %w", err)
	}
	ct, err := r.c.ContainerInspect(ctx, ContainerName(dataDir))
	if dockerapi.IsNotFound(err) {
		return runtime.Status{State: runtime.Stopped}, dataDir, nil
	}
	if err != nil {
		return runtime.Status{}, dataDir, fmt.Errorf("status: %w", err)
	}
	if !ct.State.Running || ct.State.Pid <= 0 || ct.Config.Labels[LabelDataDir] != dataDir {
		return runtime.Status{State: runtime.Stopped}, dataDir, nil
	}
	port, _ := strconv.Atoi(ct.Config.Labels[LabelPort])
	if port == 0 {
		port = s.Port
	}
	return runtime.Status{State: runtime.Running, PID: ct.State.Pid, Port: port, StartedAt: startedAt(ct)}, dataDir, nil
}

// startedAt is when the container's main process started: the kernel's
// start time of that PID when it is a process of this host (as the native
// runtime reports it), else the engine's.
func startedAt(ct dockerapi.Container) time.Time {
	if st, err := procfs.ReadStat(ct.State.Pid); err == nil {
		if at, err := procfs.StartTime(st.StartTicks); err == nil {
			return at
		}
	}
	return ct.State.StartedAt
}

// waitReady waits until the container's server answers a real connection,
// and fails when the container exits first.
func (r *Runtime) waitReady(ctx context.Context, s runtime.Spec, dataDir, name string) (runtime.Handle, error) {
	began := time.Now()
	for {
		ct, err := r.c.ContainerInspect(ctx, name)
		switch {
		case err != nil && ctx.Err() != nil:
			return runtime.Handle{}, fmt.Errorf("not ready after %v: %w", time.Since(began).Round(time.Millisecond), ctx.Err())
		case err != nil:
			return runtime.Handle{}, err
		case !ct.State.Running:
			return runtime.Handle{}, fmt.Errorf("postgres exited during start up (exit code %d)", ct.State.ExitCode)
		}
		if probe(ctx, s, dataDir, s.Port) {
			return runtime.Handle{PID: ct.State.Pid, Port: s.Port, StartedAt: startedAt(ct)}, nil
		}
		select {
		case <-ctx.Done():
			return runtime.Handle{}, fmt.Errorf("not ready after %v: %w", time.Since(began).Round(time.Millisecond), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// probe reports whether the server of dataDir answers on port: its
// postmaster.pid says ready (the PID there is the container's own, 1),
// and a real connection answers from that data directory.
func probe(ctx context.Context, s runtime.Spec, dataDir string, port int) bool {
	pf, err := serverfiles.ReadPIDFile(dataDir)
	if err != nil || (pf.Status != "ready" && pf.Status != "standby") {
		return false
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
	if filepath.Clean(dir) != dataDir {
		slog.WarnContext(ctx, "port answered by another server", "port", port, "want", dataDir, "got", dir)
		return false
	}
	return true
}

// List implements runtime.Lister: the running containers carrying this
// runtime's labels.
func (r *Runtime) List(ctx context.Context) ([]runtime.Server, error) {
	sel := []string{LabelDataDir}
	for k, v := range r.labels {
		sel = append(sel, k+"="+v)
	}
	cts, err := r.c.ContainerList(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []runtime.Server
	for _, c := range cts {
		if c.State != "running" {
			continue
		}
		ct, err := r.c.ContainerInspect(ctx, c.ID)
		if dockerapi.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		if !ct.State.Running {
			continue
		}
		out = append(out, runtime.Server{DataDir: ct.Config.Labels[LabelDataDir], PID: ct.State.Pid, StartedAt: startedAt(ct)})
	}
	return out, nil
}

func validate(s runtime.Spec) error {
	if s.Image == "" {
		return errors.New("spec has no image")
	}
	if !filepath.IsAbs(s.LogFile) {
		return fmt.Errorf("log file %q is not an absolute path", s.LogFile)
	}
	return serverfiles.Validate(s)
}
