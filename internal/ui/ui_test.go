package ui

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// terminal is a buffer that says it is a terminal.
type terminal struct{ bytes.Buffer }

func (*terminal) Terminal() bool { return true }

func TestTablePlainWhenPiped(t *testing.T) {
	tab := Table{Header: []string{"Branch", "State"}, Rows: [][]string{{"demo/main", "running 5m"}, {"demo/dev", "stopped"}}, Separate: true}
	var piped bytes.Buffer
	tab.Render(&piped)
	want := "BRANCH      STATE\ndemo/main   running 5m\ndemo/dev    stopped\n"
	if piped.String() != want {
		t.Errorf("piped table:\n%q\nwant\n%q", piped.String(), want)
	}
	var term terminal
	tab.Render(&term)
	if !strings.Contains(term.String(), "│ demo/main │ running 5m │") || !strings.HasPrefix(term.String(), "┌") {
		t.Errorf("terminal table has no box:\n%s", term.String())
	}
}

func TestBytesBinaryUnits(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1536: "1.50 KiB", 9700000: "9.25 MiB", 3 << 30: "3.00 GiB", 5 << 40: "5.00 TiB", 500 << 30: "500 GiB", 12_800_000: "12.2 MiB", 130_000: "127 KiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

type doc struct {
	Name string `json:"name"`
}

func (doc) JSONDocument() {}

// TestPrinterJSONKeepsWarnings: under --json stdout holds the document
// alone, progress is quiet, and a warning still reaches stderr.
func TestPrinterJSONKeepsWarnings(t *testing.T) {
	var out, errb bytes.Buffer
	p := NewPrinter(&out, &errb, true, false)
	p.Progress().Title("Creating...")
	_ = p.Progress().Step("Step", func() error { return nil })
	p.Progress().Note("a note")
	p.Printf("text result\n")
	p.Progress().Warn("undo failed: %s (run velo doctor)", "boom")
	if err := p.Result(doc{"demo"}, func(io.Writer) {}); err != nil {
		t.Fatal(err)
	}
	var got doc
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Name != "demo" {
		t.Errorf("stdout is not the document alone: %q (%v)", out.String(), err)
	}
	if errb.String() != "warning: undo failed: boom (run velo doctor)\n" {
		t.Errorf("stderr = %q, want the warning alone", errb.String())
	}
	// Quiet (a read command) without JSON: text results, warnings, no steps.
	out.Reset()
	errb.Reset()
	p = NewPrinter(&out, &errb, false, true)
	_ = p.Progress().Step("Step", func() error { return nil })
	p.Warn("careful")
	p.Printf("result\n")
	if out.String() != "result\n" || errb.String() != "warning: careful\n" {
		t.Errorf("quiet printer: stdout %q, stderr %q", out.String(), errb.String())
	}
}
