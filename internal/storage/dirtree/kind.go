package dirtree

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/storage"
)

var kinds = []error{
	storage.ErrNotFound,
	storage.ErrAlreadyExists,
	storage.ErrFailedPrecondition,
	storage.ErrInvalidArgument,
	storage.ErrUnsupported,
}

// WithKind makes err wrap one of the storage error kinds, as the contract
// requires of every driver error, choosing by what it wraps already (an
// errno from a system call, say): a missing file is ErrNotFound, an existing
// one ErrAlreadyExists, an operation the filesystem lacks ErrUnsupported,
// and anything else (no space, permission, I/O) ErrFailedPrecondition. An
// error that already wraps a kind is returned as it is; so is nil.
func WithKind(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return err
		}
	}
	kind := storage.ErrFailedPrecondition
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kind = storage.ErrNotFound
	case errors.Is(err, fs.ErrExist):
		kind = storage.ErrAlreadyExists
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EXDEV), errors.Is(err, errors.ErrUnsupported):
		kind = storage.ErrUnsupported
	}
	return fmt.Errorf("%w: %w", kind, err)
}
