package errdefs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

type legacy struct{}

func (legacy) Error() string        { return "postgresql 9 not installed" }
func (legacy) Is(target error) bool { return target == ErrEnvironment }

func TestKinds(t *testing.T) {
	cause := fs.ErrNotExist
	err := NotFound("branch %s does not exist: %w", "demo/x", cause)
	if err.Error() != "branch demo/x does not exist: file does not exist" {
		t.Errorf("text = %q; a kind adds no text", err)
	}
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is misses the kind or the cause: %v", err)
	}
	var pe *fs.PathError
	if errors.As(Mark(ErrNoSpace, &fs.PathError{Op: "write", Path: "/x", Err: cause}), &pe) == false || pe.Path != "/x" {
		t.Error("errors.As does not reach a marked error's cause")
	}
	if Mark(ErrInvalid, nil) != nil {
		t.Error("Mark(k, nil) != nil")
	}
}

func TestOf(t *testing.T) {
	inner := NotFound("zfs pool tank does not exist")
	cases := []struct {
		err  error
		want error
	}{
		{nil, nil},
		{errors.New("plain"), nil},
		{inner, ErrNotFound},
		{fmt.Errorf("context: %w", inner), ErrNotFound},
		{Invalid("--pool tank: %w", inner), ErrInvalid},
		{fmt.Errorf("a: %w", Environment("b: %w", Invalid("c"))), ErrEnvironment},
		{errors.Join(errors.New("x"), NoSpace("full")), ErrNoSpace},
		{fmt.Errorf("wrapped: %w", legacy{}), ErrEnvironment},
		{Usage("unknown flag"), ErrUsage},
	}
	for _, c := range cases {
		if got := Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %v; want %v", c.err, got, c.want)
		}
	}
}
