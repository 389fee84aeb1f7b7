package dirtree

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/storage"
)

func TestWithKind(t *testing.T) {
	_, notExist := os.Stat("/nonexistent/velo")
	cases := []struct {
		err  error
		want error
	}{
		{notExist, storage.ErrNotFound},
		{&os.PathError{Op: "mkdir", Path: "x", Err: unix.EEXIST}, storage.ErrAlreadyExists},
		{fmt.Errorf("FICLONE: %w", unix.EOPNOTSUPP), storage.ErrUnsupported},
		{fmt.Errorf("FICLONE: %w", unix.EXDEV), storage.ErrUnsupported},
		{unix.ENOSPC, storage.ErrFailedPrecondition},
		{fmt.Errorf("%w: kept", storage.ErrInvalidArgument), storage.ErrInvalidArgument},
	}
	for _, c := range cases {
		got := WithKind(c.err)
		if !errors.Is(got, c.want) || !errors.Is(got, c.err) {
			t.Errorf("WithKind(%v) = %v; want it to wrap %v and the error", c.err, got, c.want)
		}
	}
	if WithKind(nil) != nil {
		t.Error("WithKind(nil) != nil")
	}
	kept := fmt.Errorf("%w: kept", storage.ErrNotFound)
	if WithKind(kept) != kept {
		t.Error("an error with a kind was wrapped again")
	}
}
