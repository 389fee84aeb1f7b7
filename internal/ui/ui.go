// Package ui is Velo's terminal output: progress steps on stderr (animated
// only on a terminal), warnings on stderr always, results on stdout as
// text, tables or one JSON document (Printer).
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Progress reports the steps of a command, one line per step with its
// duration, in the seed's format:
//
//	▸ Checkpoint                              0.1s
//
// Warnings (an undo that failed, an archive that may lack commits) are
// printed by Warn even when the progress is quiet, as restic's error
// channel always prints: a --json caller reads stdout and still sees on
// stderr what went wrong.
type Progress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	quiet    bool
}

// NewProgress writes to w; animation is used only when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, terminal: IsTerminal(w)}
}

// Quiet returns a Progress that prints no steps, titles or notes (for
// --json and the read commands) but still prints warnings to w.
func Quiet(w io.Writer) *Progress { return &Progress{w: w, quiet: true} }

// IsTerminal reports whether w is a terminal. A writer that is no file may
// say so itself with a Terminal method (tests draw tables as a terminal
// shows them that way).
func IsTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ Terminal() bool }); ok {
		return t.Terminal()
	}
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok {
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Title prints a heading such as "Creating demo/dev from demo/main...".
func (p *Progress) Title(format string, args ...any) {
	if p == nil || p.quiet {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Step runs fn as one named step and prints its line when it ends.
func (p *Progress) Step(name string, fn func() error) error {
	if p == nil {
		return fn()
	}
	start := time.Now()
	var stop chan struct{}
	var done sync.WaitGroup
	if p.terminal && !p.quiet {
		stop = make(chan struct{})
		done.Add(1)
		go func() {
			defer done.Done()
			frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
			tick := time.NewTicker(80 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				p.mu.Lock()
				fmt.Fprintf(p.w, "\r  %s %s %s", frames[i%len(frames)], pad(name, 36), fmtDur(time.Since(start)))
				p.mu.Unlock()
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	err := fn()
	if stop != nil {
		close(stop)
		done.Wait()
		fmt.Fprint(p.w, "\r\033[K")
	}
	if !p.quiet {
		mark := "▸"
		if err != nil {
			mark = "✗"
		}
		p.mu.Lock()
		fmt.Fprintf(p.w, "  %s %s %s\n", mark, pad(name, 36), fmtDur(time.Since(start)))
		p.mu.Unlock()
	}
	return err
}

// Note prints a free line under the steps.
func (p *Progress) Note(format string, args ...any) {
	if p == nil || p.quiet {
		return
	}
	fmt.Fprintf(p.w, "  "+format+"\n", args...)
}

// Warn prints a warning line, quiet or not: what the user must know even
// when they asked for no progress.
func (p *Progress) Warn(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "warning: "+format+"\n", args...)
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%6.1fs", d.Seconds())
}

func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

// Document is a value that may be printed as --json output: a view type
// whose every field is tagged with its snake_case key (internal/view).
// Engine and storage types are not Documents, so they cannot reach JSON
// output untagged.
type Document interface{ JSONDocument() }

// JSON prints v as one indented JSON document.
func JSON(w io.Writer, v Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Bytes formats a size in binary units, labelled as such, to three
// significant digits: "9.25 MiB", "127 KiB", "12.8 GiB" (the seed labelled
// these GB and MB, with two decimals whatever the size).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n) / unit
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f %s", v, units[i])
	case v < 100:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// Age formats a duration compactly: "13s", "5m", "2h", "3d".
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
