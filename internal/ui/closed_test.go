package ui

import (
	"os"
	"testing"
)

// A write to a pipe whose reader is gone succeeds (and prints nothing), so
// that the command goes on.
func TestClosedOKAfterReaderLeft(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.Close()
	out := ClosedOK(w)
	for i := 0; i < 2; i++ {
		if n, err := out.Write([]byte("line\n")); err != nil || n != 5 {
			t.Fatalf("write %d: n=%d err=%v, want 5, nil", i, n, err)
		}
	}
	if IsTerminal(out) {
		t.Error("a pipe is not a terminal")
	}
}
