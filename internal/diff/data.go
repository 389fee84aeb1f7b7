package diff

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// compareData compares the rows of every table (or of o.Tables) into r.
func compareData(ctx context.Context, r *Result, oc, nc *pgx.Conn, old, new Side, ot, nt map[string]table, o Options) error {
	names := map[string]bool{}
	for n := range ot {
		names[n] = true
	}
	for n := range nt {
		names[n] = true
	}
	var list []string
	for n := range names {
		if len(o.Tables) == 0 || contains(o.Tables, n) {
			list = append(list, n)
		}
	}
	sort.Strings(list)
	finder := o.Blocks
	if finder == nil {
		finder = ByteFinder{}
	}
	for _, name := range list {
		a, inOld := ot[name]
		b, inNew := nt[name]
		var td TableDiff
		var err error
		switch {
		case inOld && inNew:
			td, err = compareTable(ctx, oc, nc, old, new, a, b, finder, o.Rows)
		case inOld:
			td, err = oneSide(ctx, oc, a, false, o.Rows)
		default:
			td, err = oneSide(ctx, nc, b, true, o.Rows)
		}
		if err != nil {
			return fmt.Errorf("compare the rows of %s: %w", name, err)
		}
		r.Tables = append(r.Tables, td)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// oneSide is a table that only one side has: every row added or deleted.
func oneSide(ctx context.Context, c *pgx.Conn, t table, added bool, samples int) (TableDiff, error) {
	td := TableDiff{Table: t.Name, Key: t.Key, ByRow: len(t.Key) == 0, Columns: t.Columns, Explain: Explain{Method: "whole", Finder: "none"}}
	rows, err := readRows(ctx, c, t.Name, t.Columns, nil)
	if err != nil {
		return td, err
	}
	td.Explain.RowsRead = int64(len(rows))
	for _, row := range rows {
		if added {
			td.Added++
		} else {
			td.Deleted++
		}
		if len(td.Samples) < samples {
			if added {
				td.Samples = append(td.Samples, Sample{New: row})
			} else {
				td.Samples = append(td.Samples, Sample{Old: row})
			}
		}
	}
	return td, nil
}

// compareTable compares a table both sides have: the candidate blocks'
// rows when both data directories are known, else every row.
func compareTable(ctx context.Context, oc, nc *pgx.Conn, old, new Side, a, b table, finder BlockFinder, samples int) (TableDiff, error) {
	cols, key := common(a, b)
	td := TableDiff{Table: b.Name, ByRow: key == nil, Columns: cols}
	for _, k := range key {
		td.Key = append(td.Key, cols[k])
	}
	var ranges []Range
	if old.DataDir != "" && new.DataDir != "" && a.File != "" && b.File != "" {
		f, err := finder.Changed(ctx, filepath.Join(old.DataDir, a.File), filepath.Join(new.DataDir, b.File))
		if err != nil {
			return td, err
		}
		td.Explain = Explain{Method: "blocks", Finder: f.Method, Blocks: f.Blocks, FileBytes: f.Read}
		ranges = f.Ranges
		for _, r := range ranges {
			td.Explain.Candidates += r.Hi - r.Lo
		}
		if len(ranges) == 0 {
			td.Explain.Method = "same-blocks"
			return td, nil
		}
	} else {
		td.Explain = Explain{Method: "whole", Finder: "none"}
	}
	oldRows, err := readRows(ctx, oc, a.Name, cols, ranges)
	if err != nil {
		return td, err
	}
	newRows, err := readRows(ctx, nc, b.Name, cols, ranges)
	if err != nil {
		return td, err
	}
	td.Explain.RowsRead = int64(len(oldRows) + len(newRows))
	if key == nil {
		diffRows(&td, oldRows, newRows, samples)
	} else {
		diffKeyed(&td, oldRows, newRows, key, samples)
	}
	return td, nil
}

// readRows reads cols (as text) of the rows of table t in the block ranges
// given, or of all its rows when ranges is nil.
func readRows(ctx context.Context, c *pgx.Conn, t string, cols []string, ranges []Range) ([][]*string, error) {
	sel := make([]string, len(cols))
	for i, col := range cols {
		sel[i] = "(t." + col + ")::text"
	}
	list := strings.Join(sel, ", ")
	if len(cols) == 0 {
		list = "''" // a table without columns still has rows
	}
	var out [][]*string
	if ranges == nil {
		rows, err := c.Query(ctx, "SELECT "+list+" FROM ONLY "+t+" t")
		if err != nil {
			return nil, err
		}
		return appendRows(out, rows, len(cols))
	}
	// A TID range scan per range, all sent at once: only the candidate
	// blocks are read. The bounds must be constants or parameters of each
	// query: PostgreSQL plans no TID range scan for bounds taken from a
	// join (a LATERAL over an array of ranges scans the whole table once
	// per query and tests every row against every range).
	q := "SELECT " + list + " FROM ONLY " + t + " t WHERE t.ctid >= $1::tid AND t.ctid < $2::tid"
	b := &pgx.Batch{}
	for _, r := range ranges {
		b.Queue(q, pgtype.TID{BlockNumber: uint32(r.Lo), Valid: true}, pgtype.TID{BlockNumber: uint32(r.Hi), Valid: true})
	}
	res := c.SendBatch(ctx, b)
	defer res.Close()
	for range ranges {
		rows, err := res.Query()
		if err != nil {
			return nil, err
		}
		if out, err = appendRows(out, rows, len(cols)); err != nil {
			return nil, err
		}
	}
	return out, res.Close()
}

// appendRows reads rows of n text columns (one empty column for n = 0)
// into out, and closes them.
func appendRows(out [][]*string, rows pgx.Rows, n int) ([][]*string, error) {
	defer rows.Close()
	for rows.Next() {
		vals := make([]*string, max(n, 1))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals[:n])
	}
	return out, rows.Err()
}

// encode writes values as one comparable string, NULL distinct from any text.
func encode(vals []*string, idx []int) string {
	var b strings.Builder
	put := func(v *string) {
		if v == nil {
			b.WriteString("N;")
			return
		}
		b.WriteString(strconv.Itoa(len(*v)))
		b.WriteByte(':')
		b.WriteString(*v)
	}
	if idx == nil {
		for _, v := range vals {
			put(v)
		}
	} else {
		for _, i := range idx {
			put(vals[i])
		}
	}
	return b.String()
}

// diffKeyed pairs the rows by key: a key on one side only was added or
// deleted, one on both with other values changed.
func diffKeyed(td *TableDiff, oldRows, newRows [][]*string, key []int, samples int) {
	olds := make(map[string][]*string, len(oldRows))
	for _, r := range oldRows {
		olds[encode(r, key)] = r
	}
	type pair struct {
		k    string
		o, n []*string
	}
	var diffs []pair
	seen := map[string]bool{}
	for _, r := range newRows {
		k := encode(r, key)
		seen[k] = true
		o, ok := olds[k]
		switch {
		case !ok:
			td.Added++
			diffs = append(diffs, pair{k, nil, r})
		case encode(o, nil) != encode(r, nil):
			td.Changed++
			diffs = append(diffs, pair{k, o, r})
		}
	}
	for k, o := range olds {
		if !seen[k] {
			td.Deleted++
			diffs = append(diffs, pair{k, o, nil})
		}
	}
	if samples > 0 {
		sort.Slice(diffs, func(i, j int) bool { return diffs[i].k < diffs[j].k })
		for _, d := range diffs[:min(samples, len(diffs))] {
			td.Samples = append(td.Samples, Sample{Old: d.o, New: d.n})
		}
	}
}

// diffRows compares rows as wholes (no primary key): what one side has
// more of was added or deleted.
func diffRows(td *TableDiff, oldRows, newRows [][]*string, samples int) {
	count := map[string]int{}
	byKey := map[string][]*string{}
	for _, r := range oldRows {
		k := encode(r, nil)
		count[k]--
		byKey[k] = r
	}
	for _, r := range newRows {
		k := encode(r, nil)
		count[k]++
		byKey[k] = r
	}
	keys := make([]string, 0, len(count))
	for k, n := range count {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := count[k]
		for ; n > 0; n-- {
			td.Added++
			if len(td.Samples) < samples {
				td.Samples = append(td.Samples, Sample{New: byKey[k]})
			}
		}
		for ; n < 0; n++ {
			td.Deleted++
			if len(td.Samples) < samples {
				td.Samples = append(td.Samples, Sample{Old: byKey[k]})
			}
		}
	}
}
