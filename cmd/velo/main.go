// Command velo: Postgres with instant branching.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/velohq/velo/internal/cli"
	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/storage"
)

func main() {
	// Diagnostics (log/slog) only when asked for: VELO_DEBUG=1.
	level := slog.LevelWarn
	if os.Getenv("VELO_DEBUG") != "" {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &cli.Globals{Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:]}
	root := cli.NewRoot(g)
	root.SetArgs(os.Args[1:])
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "velo: %v\n", err)
	}
	os.Exit(exitCode(err))
}

// exitCode maps errors to exit codes in one place: 0 success, 2 bad usage
// or bad input (nothing was changed), 1 any other failure.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case cli.IsUsage(err),
		errors.Is(err, engine.ErrInvalid),
		errors.Is(err, engine.ErrNotFound),
		errors.Is(err, engine.ErrExists),
		errors.Is(err, engine.ErrRefused),
		errors.Is(err, storage.ErrInvalidArgument),
		errors.Is(err, pg.ErrNotInstalled):
		return 2
	}
	return 1
}
