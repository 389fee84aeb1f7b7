package dirtree

import (
	"errors"
	"io/fs"

	"github.com/velohq/velo/internal/errdefs"
	"golang.org/x/sys/unix"
)

// WithKind gives err an error kind where one fits (storage.go, Errors),
// choosing by what it wraps already (an errno from a system call, say): a
// missing file is ErrNotFound, an existing one ErrAlreadyExists, an
// operation the filesystem lacks ErrUnsupported, a full filesystem
// ErrNoSpace. Anything else (permission, I/O) is a failure, not a
// refusal, and keeps no kind. An error that already wraps a kind is
// returned as it is; so is nil.
func WithKind(err error) error {
	if err == nil || errdefs.Of(err) != nil {
		return err
	}
	var kind error
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		kind = errdefs.ErrNoSpace
	case errors.Is(err, fs.ErrNotExist):
		kind = errdefs.ErrNotFound
	case errors.Is(err, fs.ErrExist):
		kind = errdefs.ErrAlreadyExists
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EXDEV), errors.Is(err, errors.ErrUnsupported):
		kind = errdefs.ErrUnsupported
	}
	return errdefs.Mark(kind, err)
}
