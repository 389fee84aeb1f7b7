// Command velo: Postgres with instant branching.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/velohq/velo/internal/cli"
	"github.com/velohq/velo/internal/dockerapi"
	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/ui"
)

func main() {
	// Diagnostics (log/slog) only when asked for: VELO_DEBUG=1.
	level := slog.LevelWarn
	if os.Getenv("VELO_DEBUG") != "" {
		level = slog.LevelDebug
	}
	stdout, stderr := ui.ClosedOK(os.Stdout), ui.ClosedOK(os.Stderr)
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	// A reader that goes away (velo ... | head -1) must not abort a command
	// half-way: SIGPIPE is caught, not left to kill velo, so a write to the
	// closed pipe fails with EPIPE, which ClosedOK turns into "stop
	// printing". Caught rather than ignored: an ignored signal would stay
	// ignored in the programs velo runs (Postgres, zfs), a handler does not.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The engine's parts are built here and given to it, so that the
	// engine never picks a runtime or a storage driver itself.
	g := &cli.Globals{Stdout: stdout, Stderr: stderr, Args: os.Args[1:], Runtime: native.New(), Pools: drivers.Pools{}, Containers: connectDocker}
	root := cli.NewRoot(g)
	root.SetArgs(os.Args[1:])
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "velo: %v\n", err)
	}
	os.Exit(exitCode(err))
}

// connectDocker connects to the Docker engine as the docker CLI finds it
// (DOCKER_HOST, else the default socket), for the projects made with
// --image; the containers it makes carry the home's label.
func connectDocker(ctx context.Context, home string) (engine.Containers, error) {
	c, err := dockerapi.FromEnv()
	if err != nil {
		return nil, errdefs.Invalid("%s: %v", dockerapi.HostEnv, err)
	}
	if err := c.Ping(ctx); err != nil {
		return nil, errdefs.Environment("no Docker engine answers at %s (%v): start one (systemctl start docker, or dockerd), or set %s to one that runs; or drop --image to run the host's PostgreSQL",
			c.Host(), err, dockerapi.HostEnv)
	}
	return docker.New(c, map[string]string{docker.LabelHome: home}).WithCache(filepath.Join(home, "cache", "images")), nil
}

// exitCode maps errors to exit codes in one place, by their kind alone
// (internal/errdefs): 0 success; 2 bad usage or bad input, refused before
// anything changed (a malformed argument, a name that does not exist or
// already does, a state that forbids the request); 1 any other failure,
// among them a full disk and an environment problem (a Postgres major no
// longer installed), which no change to the command line would fix.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	switch errdefs.Of(err) {
	case errdefs.ErrStopRecovery:
		// Above 125: Postgres ends the recovery instead of retrying.
		return 126
	case errdefs.ErrUsage, errdefs.ErrInvalid, errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition:
		return 2
	}
	return 1
}
