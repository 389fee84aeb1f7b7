package dirtree

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"golang.org/x/sys/unix"
)

func TestWithKind(t *testing.T) {
	_, notExist := os.Stat("/nonexistent/velo")
	cases := []struct {
		err  error
		want error
	}{
		{notExist, errdefs.ErrNotFound},
		{&os.PathError{Op: "mkdir", Path: "x", Err: unix.EEXIST}, errdefs.ErrAlreadyExists},
		{fmt.Errorf("FICLONE: %w", unix.EOPNOTSUPP), errdefs.ErrUnsupported},
		{fmt.Errorf("FICLONE: %w", unix.EXDEV), errdefs.ErrUnsupported},
		{unix.ENOSPC, errdefs.ErrNoSpace},
		{errdefs.Invalid("kept"), errdefs.ErrInvalid},
	}
	for _, c := range cases {
		got := WithKind(c.err)
		if !errors.Is(got, c.want) || !errors.Is(got, c.err) {
			t.Errorf("WithKind(%v) = %v; want it to wrap %v and the error", c.err, got, c.want)
		}
	}
	if perm := fmt.Errorf("remove: %w", unix.EPERM); WithKind(perm) != perm {
		t.Error("a permission error was given a kind: it is a failure, not a refusal")
	}
	if WithKind(nil) != nil {
		t.Error("WithKind(nil) != nil")
	}
	kept := errdefs.NotFound("kept")
	if WithKind(kept) != kept {
		t.Error("an error with a kind was wrapped again")
	}
}
