package diff

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
)

// table is one table with data, as one side's catalog has it.
type table struct {
	Name    string   // SCHEMA.TABLE, quoted as needed
	File    string   // its main fork, relative to the data directory
	Columns []string // quoted, in column order
	Types   []string
	Key     []string // the primary key's columns, quoted; none: no primary key
}

const tableQuery = `SELECT c.oid::regclass::text, coalesce(pg_relation_filepath(c.oid), ''),
	coalesce((SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
	coalesce((SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
	coalesce((SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord) FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'r' AND ` + userNamespace + ` AND ` + `NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

// readTables reads the tables that hold rows (partitions included, their
// partitioned parents not: those hold none of their own).
func readTables(ctx context.Context, c *pgx.Conn) (map[string]table, error) {
	rows, err := c.Query(ctx, tableQuery)
	if err != nil {
		return nil, fmt.Errorf("read the tables: %w", err)
	}
	defer rows.Close()
	out := map[string]table{}
	for rows.Next() {
		var t table
		if err := rows.Scan(&t.Name, &t.File, &t.Columns, &t.Types, &t.Key); err != nil {
			return nil, err
		}
		out[t.Name] = t
	}
	return out, rows.Err()
}

// resolveTables turns each --table into its name as regclass prints it,
// looked up on both sides; one that names no table on either is refused.
func resolveTables(ctx context.Context, oc, nc *pgx.Conn, args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		name, kind, user := "", "", false
		for _, c := range []*pgx.Conn{oc, nc} {
			var n, k *string
			var u bool
			// The search path is empty: TABLE alone is public's.
			if err := c.QueryRow(ctx, `SELECT c.oid::regclass::text, c.relkind::text, `+userNamespace+` FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE c.oid = coalesce(to_regclass($1), CASE WHEN strpos($1, '.') = 0 THEN to_regclass('public.' || $1) END)`, a).Scan(&n, &k, &u); err != nil && err != pgx.ErrNoRows {
				// to_regclass refuses a name that is not one (a.b.c.d).
				return nil, errdefs.Invalid("--table %s is not a table name: %v", ui.Quote(a), err)
			}
			if n != nil && name == "" {
				name, kind, user = *n, *k, u
			}
		}
		if name == "" {
			return nil, errdefs.NotFound("--table %s: no such table on either side (velo diff takes TABLE or SCHEMA.TABLE)", ui.Quote(a))
		}
		if !user {
			return nil, errdefs.Invalid("--table %s is a table of the system's: velo diff compares the user's tables", ui.Quote(a))
		}
		if kind != "r" && kind != "p" {
			return nil, errdefs.Invalid("--table %s is not a table (relkind %s); velo diff compares the rows of tables", ui.Quote(a), kind)
		}
		out = append(out, name)
	}
	return out, nil
}

// common lists the columns both sides have, and the primary key when both
// have the same one made of those columns.
func common(o, n table) (cols []string, key []int) {
	have := map[string]bool{}
	for _, c := range n.Columns {
		have[c] = true
	}
	idx := map[string]int{}
	for _, c := range o.Columns {
		if have[c] {
			idx[c] = len(cols)
			cols = append(cols, c)
		}
	}
	if len(o.Key) == 0 || len(o.Key) != len(n.Key) {
		return cols, nil
	}
	for i, k := range o.Key {
		j, ok := idx[k]
		if !ok || n.Key[i] != k {
			return cols, nil
		}
		key = append(key, j)
	}
	return cols, key
}
