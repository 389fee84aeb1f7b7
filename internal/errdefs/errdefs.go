// Package errdefs holds the kinds of error every layer of Velo wraps
// (storage, state, pg, engine, cli), so that the one place that turns an
// error into an exit code (cmd/velo) asks only this package what went
// wrong.
//
// A kind says what class of thing went wrong, never what: the message is
// the caller's, in the user's words, and a kind adds no text to it. Make
// an error of a kind with its constructor:
//
//	return errdefs.NotFound("branch %s does not exist; see velo branch list %s", ref, p)
//
// and test for it with errors.Is(err, errdefs.ErrNotFound). The format
// may wrap a cause with %w; errors.Is and errors.As then see both the kind
// and the cause. Mark gives an existing error a kind without changing
// its text.
//
// When an error wraps several kinds (an engine refusal around a driver's
// not-found, say), the outermost decides: Of returns it. The layer nearest
// the user knows best what the error means to them.
package errdefs

import "fmt"

// kind is a sentinel whose text names the kind, for diagnostics only: it
// never appears in a message made by this package.
type kind struct{ name string }

func (k *kind) Error() string { return k.name }

// The kinds. Exit codes (cmd/velo): ErrUsage, ErrInvalid, ErrNotFound,
// ErrAlreadyExists and ErrFailedPrecondition are bad usage or bad input,
// refused before anything changed (2); ErrUnsupported, ErrNoSpace,
// ErrEnvironment and anything else are failures (1). An unsupported
// storage named on the command line is bad input: the caller marks it
// ErrInvalid, the outermost kind deciding.
var (
	// ErrUsage: the command line itself is wrong (unknown command or
	// flag, wrong number of arguments, a flag's value of the wrong type).
	ErrUsage error = &kind{"bad usage"}
	// ErrInvalid: an argument or flag is malformed or out of range.
	ErrInvalid error = &kind{"invalid input"}
	// ErrNotFound: what was named does not exist.
	ErrNotFound error = &kind{"not found"}
	// ErrAlreadyExists: what was to be made is there already.
	ErrAlreadyExists error = &kind{"already exists"}
	// ErrFailedPrecondition: the request is well formed but the state
	// forbids it (a branch with children, a snapshot that clones came
	// from); the message says what to do first.
	ErrFailedPrecondition error = &kind{"failed precondition"}
	// ErrUnsupported: this storage, filesystem or host cannot do what was
	// asked (a path that is not btrfs given to the btrfs driver).
	ErrUnsupported error = &kind{"unsupported"}
	// ErrNoSpace: a filesystem or pool is too full for the work.
	ErrNoSpace error = &kind{"no space"}
	// ErrEnvironment: the host lacks something that was there before or
	// must be set up outside Velo (a Postgres major no longer installed,
	// VELO_PG_BIN unset in a new shell): not the input's fault.
	ErrEnvironment error = &kind{"environment"}
	// ErrStopRecovery: a file Postgres's restore_command asked for exists
	// but could not be had (the store unreachable, an object corrupt):
	// recovery must stop with an error rather than take the file as
	// missing and promote early. velo exits 126, which Postgres takes so.
	ErrStopRecovery error = &kind{"stop recovery"}
)

var kinds = []error{ErrStopRecovery, ErrUsage, ErrInvalid, ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition, ErrUnsupported, ErrNoSpace, ErrEnvironment}

// kindError is an error of a kind: its text is its cause's alone.
type kindError struct {
	kind  error
	cause error
}

func (e *kindError) Error() string   { return e.cause.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// New makes an error of kind k with the message of fmt.Errorf(format,
// args...); with k nil, an error of no kind.
func New(k error, format string, args ...any) error {
	return Mark(k, fmt.Errorf(format, args...))
}

// Mark gives err the kind k, keeping its text; nil stays nil, and a nil k
// leaves err as it is. k may also be a package's own sentinel
// (state.ErrLocked), which then adds no text either.
func Mark(k, err error) error {
	if err == nil || k == nil {
		return err
	}
	return &kindError{k, err}
}

// Of is the outermost kind err wraps, or nil when it wraps none.
func Of(err error) error {
	// The walk is errors.Is's, depth first, and a kindError holds its kind
	// before its cause, so the first kind met is the outermost.
	var found error
	walk(err, func(e error) bool {
		is, _ := e.(interface{ Is(error) bool })
		for _, k := range kinds {
			if e == k || (is != nil && is.Is(k)) {
				found = k
				return true
			}
		}
		return false
	})
	return found
}

func walk(err error, stop func(error) bool) bool {
	for err != nil {
		if stop(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if walk(e, stop) {
					return true
				}
			}
			return false
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return false
		}
	}
	return false
}

// Invalid is New(ErrInvalid, ...).
func Invalid(format string, args ...any) error { return New(ErrInvalid, format, args...) }

// NotFound is New(ErrNotFound, ...).
func NotFound(format string, args ...any) error { return New(ErrNotFound, format, args...) }

// AlreadyExists is New(ErrAlreadyExists, ...).
func AlreadyExists(format string, args ...any) error {
	return New(ErrAlreadyExists, format, args...)
}

// FailedPrecondition is New(ErrFailedPrecondition, ...).
func FailedPrecondition(format string, args ...any) error {
	return New(ErrFailedPrecondition, format, args...)
}

// Unsupported is New(ErrUnsupported, ...).
func Unsupported(format string, args ...any) error { return New(ErrUnsupported, format, args...) }

// NoSpace is New(ErrNoSpace, ...).
func NoSpace(format string, args ...any) error { return New(ErrNoSpace, format, args...) }

// Environment is New(ErrEnvironment, ...).
func Environment(format string, args ...any) error { return New(ErrEnvironment, format, args...) }

// Usage is New(ErrUsage, ...).
func Usage(format string, args ...any) error { return New(ErrUsage, format, args...) }
