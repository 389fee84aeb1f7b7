// Package diff compares two PostgreSQL databases of one cluster's lineage
// (a branch and its origin snapshot, or two branches of one project): the
// schema from the catalogs, the data table by table by primary key.
//
// The data comparison reads only what can differ. Both sides' servers are
// checkpointed after the reading transaction took its snapshot, so every
// change that transaction sees is in the files; a block whose bytes are
// the same on both sides (or, as the storage tells, still shared by both
// files) holds the same rows on both, so only the rows of the blocks that
// differ are read, through SQL, and compared. A block that differs only in
// hint bits, or that VACUUM or freezing rewrote, is read and found equal:
// the storage narrows the reading, the rows decide the result.
package diff

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Side is one database to compare: how to open sessions on it, and the data
// directory its server reads (for the block comparison; empty: every
// table is read whole).
type Side struct {
	Name    string // what the output calls it: PROJECT/BRANCH, or PROJECT/BRANCH@origin
	Dial    func(ctx context.Context) (*pgx.Conn, error)
	DataDir string
}

// Options choose what is compared.
type Options struct {
	Schema, Data bool
	Tables       []string // SCHEMA.TABLE or TABLE (public); empty: all
	Grants       bool
	Rows         int // sample rows per table, 0: none
	// Blocks finds the blocks of two files that may differ; nil: bytes.
	Blocks BlockFinder
}

// Result is what Compare found.
type Result struct {
	Old, New string
	Schema   []Change
	Tables   []TableDiff
	Notes    []string // what was not compared, and why
	Sketch   []string // SQL taking the old schema to the new: a sketch to review
	// OriginRead is how a branch's origin snapshot was read: "server" (a
	// server on a copy of it), "files" (the branch's files are the
	// snapshot's: see Unchanged); "" when two branches were compared.
	OriginRead string
}

// Change is one schema object added, dropped or changed.
type Change struct {
	Kind   string // table, column, index, ...
	Name   string // qualified
	Change string // added, dropped, changed
	Old    string // definition before (dropped, changed)
	New    string // definition after (added, changed)

	oldAttrs, newAttrs map[string]string // columns: the parts of the definition
}

// TableDiff is the data difference of one table.
type TableDiff struct {
	Table   string // SCHEMA.TABLE
	Key     []string
	ByRow   bool // no primary key: compared as whole rows
	Added   int64
	Deleted int64
	Changed int64
	Columns []string // the columns compared (those both sides have)
	Samples []Sample
	Explain Explain
}

// Sample is one differing row: Old nil for an added row, New nil for a
// deleted one.
type Sample struct {
	Old, New []*string
}

// Explain says how a table was compared and how much it read.
type Explain struct {
	Method     string // same-file, blocks, whole
	Finder     string // how the candidate blocks were found: fiemap, bytes, none
	Blocks     int64  // blocks of the larger side
	Candidates int64  // blocks read through SQL
	FileBytes  int64  // bytes read from the files to find the candidates
	RowsRead   int64  // rows read on both sides
}

// Empty reports whether nothing differs.
func (r *Result) Empty() bool {
	if len(r.Schema) > 0 {
		return false
	}
	for _, t := range r.Tables {
		if t.Added+t.Deleted+t.Changed > 0 {
			return false
		}
	}
	return true
}

// Compare compares old with new.
func Compare(ctx context.Context, old, new Side, o Options) (*Result, error) {
	r := &Result{Old: old.Name, New: new.Name}
	oc, err := old.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer oc.Close(context.WithoutCancel(ctx))
	nc, err := new.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close(context.WithoutCancel(ctx))
	// One snapshot per side for the whole comparison; the checkpoints come
	// after it, so that what it sees is in the files (see the package doc).
	for _, c := range []*pgx.Conn{oc, nc} {
		// Names come out schema-qualified with an empty search path.
		if _, err := c.Exec(ctx, "SET search_path = ''"); err != nil {
			return nil, err
		}
		if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return nil, err
		}
		var bs int
		if err := c.QueryRow(ctx, "SELECT current_setting('block_size')::int").Scan(&bs); err != nil {
			return nil, err
		}
		// A prepared transaction's rows become visible (or not) at COMMIT
		// PREPARED with no page written: blocks the two sides share may
		// then hold rows that differ, so every row is read.
		var prepared int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&prepared); err != nil {
			return nil, err
		}
		if bs != BlockSize || prepared > 0 {
			old.DataDir, new.DataDir = "", ""
		}
	}
	if o.Tables, err = resolveTables(ctx, oc, nc, o.Tables); err != nil {
		return nil, err
	}
	oldTables, err := readTables(ctx, oc)
	if err != nil {
		return nil, err
	}
	newTables, err := readTables(ctx, nc)
	if err != nil {
		return nil, err
	}
	if o.Schema {
		oldObjs, err := readSchema(ctx, oc, o.Grants)
		if err != nil {
			return nil, err
		}
		newObjs, err := readSchema(ctx, nc, o.Grants)
		if err != nil {
			return nil, err
		}
		r.Schema = compareSchema(oldObjs, newObjs, o.Tables)
		r.Sketch = sketch(r.Schema)
	}
	if o.Data {
		for _, s := range []Side{old, new} {
			if err := checkpoint(ctx, s); err != nil {
				return nil, err
			}
		}
		if err := compareData(ctx, r, oc, nc, old, new, oldTables, newTables, o); err != nil {
			return nil, err
		}
		for _, x := range []struct {
			c    *pgx.Conn
			name string
		}{{oc, old.Name}, {nc, new.Name}} {
			var n int64
			if err := x.c.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&n); err != nil {
				return nil, err
			}
			if n > 0 {
				r.Notes = append(r.Notes, plural(n, "large object")+" in "+x.name+": large objects are not compared")
			}
		}
	}
	return r, nil
}

// checkpoint flushes side's server's buffers to its files, in a session of
// its own (the comparing one is inside its transaction).
func checkpoint(ctx context.Context, s Side) error {
	if s.DataDir == "" {
		return nil
	}
	c, err := s.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, "CHECKPOINT")
	return err
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
