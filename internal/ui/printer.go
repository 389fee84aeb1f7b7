package ui

import (
	"fmt"
	"io"
)

// Printer is where one command's output goes, in restic's style: results
// on stdout, as text or, with --json, as one JSON document and nothing
// else; progress on stderr unless quiet; warnings on stderr always.
type Printer struct {
	stdout   io.Writer
	json     bool
	progress *Progress
}

// NewPrinter prints results to stdout and progress and warnings to
// stderr. With asJSON the results are one JSON document and progress is
// quiet; quiet alone hides progress too (read commands). Warnings always
// print.
func NewPrinter(stdout, stderr io.Writer, asJSON, quiet bool) *Printer {
	p := NewProgress(stderr)
	if asJSON || quiet {
		p = Quiet(stderr)
	}
	return &Printer{stdout: stdout, json: asJSON, progress: p}
}

// NewStepsPrinter is NewPrinter that prints a changing command's steps on
// stderr even under asJSON: the HTTP API (internal/api) streams them
// beside the one JSON document. Read commands (quiet) stay quiet.
func NewStepsPrinter(stdout, stderr io.Writer, asJSON, quiet bool) *Printer {
	p := NewPrinter(stdout, stderr, asJSON, quiet)
	if asJSON && !quiet {
		p.progress = NewProgress(stderr)
	}
	return p
}

// JSON reports whether the command prints JSON.
func (p *Printer) JSON() bool { return p.json }

// Progress is the printer's progress, for the engine.
func (p *Printer) Progress() *Progress { return p.progress }

// Out is where text results go; under --json nothing but the document may
// be written there, so Out is then a sink.
func (p *Printer) Out() io.Writer {
	if p.json {
		return io.Discard
	}
	return p.stdout
}

// Printf prints a text result; under --json it prints nothing.
func (p *Printer) Printf(format string, args ...any) {
	fmt.Fprintf(p.Out(), format, args...)
}

// Document prints v as the command's JSON document.
func (p *Printer) Document(v Document) error { return JSON(p.stdout, v) }

// Result prints v as JSON under --json, else calls text.
func (p *Printer) Result(v Document, text func(w io.Writer)) error {
	if p.json {
		return p.Document(v)
	}
	text(p.stdout)
	return nil
}

// Warn prints a warning on stderr, whatever the mode.
func (p *Printer) Warn(format string, args ...any) { p.progress.Warn(format, args...) }
