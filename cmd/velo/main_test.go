package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

// TestExitCode: the code comes from the outermost error kind, however
// deep it is wrapped; an error of no kind is a failure.
func TestExitCode(t *testing.T) {
	notInstalled := errdefs.Environment("PostgreSQL 9 is not installed; found 15, 17; install it or set VELO_PG_BIN")
	noPool := errdefs.NotFound("there is no ZFS pool tank")
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"plain failure", errors.New("pg_ctl: could not start server"), 1},
		{"usage", errdefs.Usage("unknown flag --bogus"), 2},
		{"invalid", fmt.Errorf("branch create: %w", errdefs.Invalid("--pitr is in the future")), 2},
		{"not found", errdefs.NotFound("branch demo/x does not exist"), 2},
		{"already exists", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errdefs.AlreadyExists("project demo already exists"))), 2},
		{"refused", errdefs.FailedPrecondition("branch demo/dev has 1 child"), 2},
		{"unsupported storage on an existing project", errdefs.Unsupported("the zfs command is gone"), 1},
		{"unsupported storage named at create", errdefs.Mark(errdefs.ErrInvalid, errdefs.Unsupported("/x is not btrfs")), 2},
		{"no space", errdefs.NoSpace("the disk holding /home/u/.velo is full"), 1},
		{"no space wrapped", fmt.Errorf("snapshot: %w", errdefs.NoSpace("pool full")), 1},
		{"major no longer installed", fmt.Errorf("branch stop demo/dev: %w", notInstalled), 1},
		{"major not installed, named at create", errdefs.Mark(errdefs.ErrInvalid, notInstalled), 2},
		{"environment around a not found", errdefs.Environment("VELO_PG_BIN: %w", noPool), 1},
		{"joined", errors.Join(errors.New("undo failed"), noPool), 2},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exitCode(%v) = %d; want %d", c.name, c.err, got, c.want)
		}
	}
}
