package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/velohq/velo/internal/diff"
	"github.com/velohq/velo/internal/ui"
)

// printDiff writes velo diff's text: a summary like git diff --stat, the
// rows (sampled), the SQL sketch, and what was not compared.
func printDiff(w io.Writer, r *diff.Result, o diffOptions) {
	fmt.Fprintf(w, "%s -> %s\n", r.Old, r.New)
	if r.Empty() {
		fmt.Fprintln(w, "\nNo differences.")
	}
	if len(r.Schema) > 0 {
		fmt.Fprintln(w, "\nSchema:")
		width := 0
		for _, c := range r.Schema {
			width = max(width, len(c.Kind)+1+len(c.Name))
		}
		counts := map[string]int{}
		for _, c := range r.Schema {
			fmt.Fprintf(w, " %-*s | %s\n", width, c.Kind+" "+c.Name, c.Change)
			counts[c.Change]++
		}
		fmt.Fprintf(w, " %s: %d added, %d changed, %d dropped\n", plural(len(r.Schema), "schema change", "schema changes"), counts["added"], counts["changed"], counts["dropped"])
	}
	var changed []diff.TableDiff
	for _, t := range r.Tables {
		if t.Added+t.Deleted+t.Changed > 0 {
			changed = append(changed, t)
		}
	}
	if len(changed) > 0 {
		fmt.Fprintln(w, "\nData:")
		width := 0
		for _, t := range changed {
			width = max(width, len(t.Table))
		}
		var added, deleted, upd int64
		for _, t := range changed {
			fmt.Fprintf(w, " %-*s | %s", width, t.Table, rowCounts(t))
			if t.ByRow {
				fmt.Fprint(w, " (no primary key: compared as whole rows)")
			}
			fmt.Fprintln(w)
			added, deleted, upd = added+t.Added, deleted+t.Deleted, upd+t.Changed
			for _, s := range t.Samples {
				fmt.Fprintf(w, "   %s -> %s\n", rowText(t.Columns, s.Old), rowText(t.Columns, s.New))
			}
		}
		fmt.Fprintf(w, " %s: %d rows added, %d deleted, %d changed\n", plural(len(changed), "table changed", "tables changed"), added, deleted, upd)
	}
	if o.Explain && r.OriginRead == "files" {
		fmt.Fprintln(w, "\nThe database's files are its snapshot's, block for block: nothing can differ, and no server was started on a copy of the snapshot.")
	}
	if o.Explain && len(r.Tables) > 0 {
		fmt.Fprintln(w, "\nHow each table was compared:")
		for _, t := range r.Tables {
			e := t.Explain
			switch e.Method {
			case "same-blocks":
				fmt.Fprintf(w, " %s: unchanged blocks (%s: %d blocks, %s of files read), no rows read\n", t.Table, e.Finder, e.Blocks, ui.Bytes(e.FileBytes))
			case "blocks":
				fmt.Fprintf(w, " %s: rows of %d of %d blocks read (%s, %s of files read), %d rows\n", t.Table, e.Candidates, e.Blocks, e.Finder, ui.Bytes(e.FileBytes), e.RowsRead)
			default:
				fmt.Fprintf(w, " %s: every row read (%d rows)\n", t.Table, e.RowsRead)
			}
		}
	}
	if len(r.Sketch) > 0 {
		fmt.Fprintln(w, "\nSQL sketch from old to new (review it: a sketch, not a migration to run blindly):")
		for _, s := range r.Sketch {
			fmt.Fprintln(w, "  "+strings.ReplaceAll(s, "\n", "\n  "))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

func rowCounts(t diff.TableDiff) string {
	var parts []string
	if t.Added > 0 {
		parts = append(parts, fmt.Sprintf("%d added", t.Added))
	}
	if t.Deleted > 0 {
		parts = append(parts, fmt.Sprintf("%d deleted", t.Deleted))
	}
	if t.Changed > 0 {
		parts = append(parts, fmt.Sprintf("%d changed", t.Changed))
	}
	return strings.Join(parts, ", ")
}

// rowText shows a row's values as SQL literals: (1, 'a', NULL); a row
// absent on that side is "-".
func rowText(cols []string, vals []*string) string {
	if vals == nil {
		return "-"
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			out[i] = "NULL"
		} else {
			out[i] = literal(*v)
		}
	}
	return "(" + strings.Join(out, ", ") + ")"
}

// literal shows a value as an SQL literal, cut short when long (a TOASTed
// value) and with anything unprintable escaped (then as Go quotes it).
func literal(v string) string {
	const limit = 60
	short := v
	if len(short) > limit {
		short = short[:limit]
	}
	q := strconv.QuoteToASCII(short)
	if q[1:len(q)-1] == strings.ReplaceAll(short, `"`, `\"`) {
		q = "'" + strings.ReplaceAll(short, "'", "''") + "'"
	}
	if len(v) > limit {
		q += fmt.Sprintf("... (%d bytes)", len(v))
	}
	return q
}
