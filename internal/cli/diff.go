package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/diff"
	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

type diffOptions struct {
	SchemaOnly, DataOnly bool
	Tables               []string
	Rows                 int
	Grants               bool
	Explain              bool
	Database             string
	JSON                 bool
}

func (o *diffOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.SchemaOnly, "schema-only", false, "compare the schema alone")
	fs.BoolVar(&o.DataOnly, "data-only", false, "compare the rows alone")
	fs.StringArrayVar(&o.Tables, "table", nil, "compare this table only: TABLE (in public) or SCHEMA.TABLE (repeatable)")
	intVar(fs, &o.Rows, "rows", 0, "show up to N sample rows per table, old -> new")
	fs.BoolVar(&o.Grants, "grants", false, "compare the privileges granted on tables, sequences, functions and schemas too")
	fs.BoolVar(&o.Explain, "explain", false, "say how each table was compared and how much was read")
	fs.StringVarP(&o.Database, "database", "d", "", "the database compared (default: an imported project's source database, else postgres)")
	jsonFlag(fs, &o.JSON)
}

func newDiffCommand(g *Globals) *cobra.Command {
	var o diffOptions
	c := &cobra.Command{
		Use:   "diff PROJECT/BRANCH [PROJECT/OTHER]",
		Short: "Show what a branch changed since it was made (or how two branches differ): schema and rows",
		Long: `Show what a branch changed since it was made (or how two branches differ): schema and rows.

With one branch, velo diff compares it with its origin snapshot, read through
a temporary server of its own (a clone of the snapshot on a private socket,
removed afterwards); with two, it compares them as they are now. Rows are
compared by primary key (tables without one as whole rows); only the blocks
the storage cannot show unchanged are read. The SQL it prints is a sketch to
review, not a migration to run blindly.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("%s takes 1 or 2 argument(s), got %d; usage: %s", c.CommandPath(), len(args), c.UseLine())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for _, a := range args {
				if err := validateRef(a); err != nil {
					return err
				}
			}
			other := ""
			if len(args) == 2 {
				other = args[1]
			}
			return runDiff(c.Context(), g, o, args[0], other)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runDiff(ctx context.Context, g *Globals, o diffOptions, ref, other string) error {
	if o.SchemaOnly && o.DataOnly {
		return errdefs.Usage("--schema-only and --data-only exclude each other; give one, or neither for both")
	}
	if o.Rows < 0 {
		return errdefs.Usage("--rows %d: give a count of 0 or more", o.Rows)
	}
	for _, t := range o.Tables {
		// A name, schema-qualified and quoted, is at most 2 x 63 bytes
		// and some quotes; control characters are in none velo shows.
		if len(t) > 140 || strings.IndexFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }) >= 0 {
			return errdefs.Invalid("--table %s is not a table name (TABLE or SCHEMA.TABLE, at most 140 bytes, no control characters)", ui.Quote(t))
		}
	}
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	r, err := e.Diff(ctx, engine.DiffOptions{Old: ref, New: other, Database: o.Database, Options: diff.Options{
		Schema: !o.DataOnly, Data: !o.SchemaOnly, Tables: o.Tables, Grants: o.Grants, Rows: o.Rows}})
	if err != nil {
		return err
	}
	return p.Result(view.NewDiff(r), func(w io.Writer) { printDiff(w, r, o) })
}
