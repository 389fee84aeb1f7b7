package ui

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// ClosedOK wraps a command's stdout or stderr so that a reader that went
// away (`velo branch create demo/x | head -1`) only stops the printing:
// once a write fails with EPIPE, this and every later write report
// success, so no command is aborted half-way because nobody reads its
// output any more. The process must also catch SIGPIPE (cmd/velo does),
// or the first such write kills it.
func ClosedOK(w io.Writer) io.Writer { return &closedOK{w: w} }

type closedOK struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *closedOK) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	n, err := c.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		c.closed = true
		return len(p), nil
	}
	return n, err
}

// Unwrap gives the writer underneath, so IsTerminal sees the file.
func (c *closedOK) Unwrap() io.Writer { return c.w }
