package ui

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table draws rows in a box, as the seed's status does, on a terminal;
// elsewhere (a pipe, a file) in plain columns with no borders, as docker
// ps does, so that awk and cut see only the cells. Row separators are
// drawn between every row of a box when Separate is set.
type Table struct {
	Header   []string
	Rows     [][]string
	Separate bool
}

// Render writes the table to w: a box when w is a terminal, else plain.
func (t Table) Render(w io.Writer) {
	if !IsTerminal(w) {
		t.RenderPlain(w)
		return
	}
	t.RenderBox(w)
}

// RenderPlain writes the table as columns three spaces apart, headed by the
// header in capitals, with no trailing blanks.
func (t Table) RenderPlain(w io.Writer) {
	widths := t.widths()
	row := func(cells []string) {
		var b strings.Builder
		for i, wd := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			if i < len(widths)-1 {
				c = pad(c, wd+3)
			}
			b.WriteString(c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	header := make([]string, len(t.Header))
	for i, h := range t.Header {
		header[i] = strings.ToUpper(h)
	}
	row(header)
	for _, r := range t.Rows {
		row(r)
	}
}

func (t Table) widths() []int {
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
	return widths
}

// RenderBox writes the table in a box drawn with line characters.
func (t Table) RenderBox(w io.Writer) {
	widths := t.widths()
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
