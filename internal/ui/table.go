package ui

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table draws rows in a box, as the seed's status does. Row separators are
// drawn between every row when Separate is set.
type Table struct {
	Header   []string
	Rows     [][]string
	Separate bool
}

// Render writes the table to w.
func (t Table) Render(w io.Writer) {
	widths := make([]int, len(t.Header))
	for i, h := range t.Header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if n := utf8.RuneCountInString(c); i < len(widths) && n > widths[i] {
				widths[i] = n
			}
		}
	}
	line := func(l, m, r string) {
		var b strings.Builder
		b.WriteString(l)
		for i, wd := range widths {
			b.WriteString(strings.Repeat("─", wd+2))
			if i < len(widths)-1 {
				b.WriteString(m)
			}
		}
		b.WriteString(r)
		fmt.Fprintln(w, b.String())
	}
	row := func(cells []string) {
		var b strings.Builder
		b.WriteString("│")
		for i, wd := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + pad(c, wd) + " │")
		}
		fmt.Fprintln(w, b.String())
	}
	line("┌", "┬", "┐")
	row(t.Header)
	line("├", "┼", "┤")
	for i, r := range t.Rows {
		row(r)
		if t.Separate && i < len(t.Rows)-1 {
			line("├", "┼", "┤")
		}
	}
	line("└", "┴", "┘")
}
