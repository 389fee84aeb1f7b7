// Package runtime is the contract between Velo and whatever runs a branch's
// Postgres server. The contract is small on purpose: start a server, stop
// it, and tell what it is doing. Everything about Postgres itself (initdb,
// configuration, connecting) is in package pg; the bookkeeping of which
// branch has which port is in the state.
//
// # Terms
//
// A server is one postmaster running on one data directory. A Spec says
// everything needed to run it; the same Spec is passed to every call, and
// calls may come from different velo processes, one after the other: the
// server outlives the process that started it.
//
// A Handle identifies a running server: its postmaster's PID, its port and
// the start time of that process. Velo keeps no handle between commands:
// every call finds the truth again from the data directory and the process
// table, and a handle whose PID now belongs to another process (PIDs are
// reused) is told apart by its start time.
//
// A runtime that can also find the servers nobody asked about (those a
// killed command started and never recorded) implements Lister; doctor
// uses it to find orphan servers.
//
// # Invariants
//
//   - The data directory is the identity of a server: at most one server runs
//     on it, and Status reports that one, whoever started it.
//   - Start returns only once the server accepts connections (a real
//     connection answered). A Start that fails leaves no server running that
//     it started.
//   - Start of a running server and Stop of a stopped server succeed and
//     change nothing.
//   - A server that died (killed, crashed, or a zombie nobody reaped) is
//     stopped, and Start brings it back; Postgres recovers from its WAL.
//   - Errors wrap the kinds below with %w, so callers use errors.Is.
//
// # Example
//
//	rt := native.New()
//	h, err := rt.Start(ctx, spec)           // ready for queries when it returns
//	st, err := rt.Status(ctx, spec)         // st.State == Running, st.PID == h.PID
//	err = rt.Stop(ctx, spec, 30*time.Second) // fast, then immediate, then SIGKILL
//
// Every runtime passes the conformance suite in package runtimetest.
package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/velohq/velo/internal/pg"
)

// Spec is everything needed to run one server.
type Spec struct {
	Install pg.Install // the Postgres binaries to run
	DataDir string     // an initdb'd data directory owned by RunAs
	Port    int        // TCP port on 127.0.0.1
	// SocketDir holds the server's Unix socket; the runtime creates it (0700,
	// owned by RunAs) when missing. "" leaves the socket where the data
	// directory's configuration puts it.
	SocketDir string
	// LogFile receives the server's stdout and stderr, appended. Start's
	// errors quote its last lines: Postgres's own reason for failing.
	LogFile string
	RunAs   *pg.OSUser // nil runs the server as the current user
	// Password is the superuser's; it is used only to check readiness with a
	// real connection and never reaches the server's command line or
	// environment.
	Password string
	// SocketOnly: the server listens on SocketDir alone (no TCP), so its
	// readiness is checked there.
	SocketOnly bool

	// Image is the container image a container runtime runs the server
	// from ("" for the native runtime); Install then names the binaries as
	// they are inside the image, and RunAs the image's postgres user.
	Image string
	// Mounts are more host directories the server reads or writes (the WAL
	// archive), for a runtime that must make them visible: a container
	// runtime mounts each at the same path, as it does DataDir, SocketDir
	// and LogFile.
	Mounts []string
	// Labels say whose server this is (Velo's home, project and branch),
	// for a runtime that labels what it runs; never a secret.
	Labels map[string]string
}

// Handle identifies a running server, as Start and Status found it. It is
// what the runtime knows at that moment, not a record: the server is found
// again from its data directory on every call.
type Handle struct {
	PID  int // the postmaster's process ID
	Port int
	// StartedAt is the postmaster process's start time, as the kernel keeps
	// it (/proc/PID/stat), to the clock tick. A different StartedAt for the
	// same PID means another process.
	StartedAt time.Time
}

// State is whether a server runs.
type State string

const (
	Running State = "running"
	Stopped State = "stopped"
)

// Status is what a runtime found out about a server.
type Status struct {
	State     State
	PID       int       // 0 when stopped
	Port      int       // the port the running server listens on; 0 when stopped
	StartedAt time.Time // zero when stopped
	// Ready reports that a real connection answered: the server accepts
	// queries (or refused only the password, which proves it is up).
	Ready bool
}

// Handle returns the handle of the server st describes.
func (st Status) Handle() Handle {
	return Handle{PID: st.PID, Port: st.Port, StartedAt: st.StartedAt}
}

// Runtime runs Postgres servers.
type Runtime interface {
	// Name names the runtime ("native").
	Name() string

	// Start launches a detached server that outlives the calling process,
	// with its output appended to s.LogFile, run as s.RunAs, and waits until
	// a real connection answers (the deadline of ctx, or 60 s without one).
	// Starting a server that already runs returns its handle and changes
	// nothing. A server that exits during start up, or is not ready in time,
	// gives an ErrStartFailed error carrying the last lines of s.LogFile.
	Start(ctx context.Context, s Spec) (Handle, error)

	// Stop shuts the server down: fast shutdown (clients disconnected,
	// checkpoint written), then immediate shutdown after timeout, then
	// SIGKILL as the last resort. It returns once the server is gone and its
	// postmaster.pid removed or unused. Stopping a stopped server succeeds.
	// A timeout of 0 skips the fast shutdown and its checkpoint: immediate
	// shutdown, for a server whose data is about to be thrown away (nothing
	// committed is lost either way: a later start replays the WAL).
	Stop(ctx context.Context, s Spec, timeout time.Duration) error

	// Status tells whether the server of s.DataDir runs, from the data
	// directory's postmaster.pid and the process it names (alive, not a
	// zombie, a postgres working on s.DataDir), and whether a connection
	// answers. It never trusts anything stored elsewhere.
	Status(ctx context.Context, s Spec) (Status, error)

	// Peek is Status without the connection: whether the server runs, from
	// postmaster.pid and the process alone, with Ready always false. A
	// listing of many servers uses it, since a connection costs a backend
	// and a SCRAM exchange each.
	Peek(ctx context.Context, s Spec) (Status, error)
}

var (
	// ErrNotRunning: the operation needs a running server and there is none.
	ErrNotRunning = errors.New("server not running")
	// ErrStartFailed: the server could not be started or did not become
	// ready; the error's text carries Postgres's reason from the log.
	ErrStartFailed = errors.New("server start failed")
)

// Server is a running server a Lister found, whoever started it.
type Server struct {
	// DataDir is the server's data directory as the runtime sees it (for
	// the native runtime, as on the postmaster's command line): the
	// server's identity, what Stop is given to stop it.
	DataDir   string
	PID       int // the postmaster's process ID on this host
	StartedAt time.Time
}

// Lister is implemented by a runtime that can list every server it runs on
// this host, including those no record names: the native runtime reads the
// process table; a container runtime lists its containers.
type Lister interface {
	// List returns the running servers, in no particular order. Several
	// may share a data directory (a second postmaster refused by the
	// first's lock, still exiting).
	List(ctx context.Context) ([]Server, error)
}
