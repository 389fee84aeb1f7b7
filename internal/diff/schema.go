package diff

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// object is one schema object as the catalogs describe it: its kind, its
// qualified name, the table it belongs to (columns, constraints, triggers,
// policies, indexes), and its definition as text; two sides' objects of
// one kind and name differ when their definitions do.
type object struct {
	Kind, Name, Table, Def string
	Attrs                  map[string]string // columns: type, default, not_null, identity, generated
}

// userObjects limits a catalog to what a user made: not the system's
// schemas, not what an extension brought.
const userNamespace = `n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'`

func notExtension(classid, oid string) string {
	return fmt.Sprintf("NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = '%s'::regclass AND d.objid = %s AND d.deptype = 'e')", classid, oid)
}

// catalogQueries read each kind as (name, table, definition).
var catalogQueries = []struct{ kind, sql string }{
	{"schema", `SELECT quote_ident(n.nspname), '', 'CREATE SCHEMA ' || quote_ident(n.nspname) FROM pg_namespace n WHERE ` + userNamespace + ` AND ` + notExtension("pg_namespace", "n.oid")},
	{"extension", `SELECT quote_ident(e.extname), '', 'CREATE EXTENSION ' || quote_ident(e.extname) || ' VERSION ' || quote_literal(e.extversion) FROM pg_extension e WHERE e.extname <> 'plpgsql'`},
	{"table", `SELECT c.oid::regclass::text, '', 'CREATE ' || CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END || 'TABLE ' || c.oid::regclass::text ||
		CASE WHEN c.relispartition THEN ' PARTITION OF ' || (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid) || ' ' || pg_get_expr(c.relpartbound, c.oid) ELSE ' ()' END ||
		CASE WHEN c.relkind = 'p' THEN ' PARTITION BY ' || pg_get_partkeydef(c.oid) ELSE '' END
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND ` + userNamespace + ` AND ` + notExtension("pg_class", "c.oid")},
	{"view", `SELECT c.oid::regclass::text, '', 'CREATE VIEW ' || c.oid::regclass::text || ' AS' || chr(10) || pg_get_viewdef(c.oid, true) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v' AND ` + userNamespace + ` AND ` + notExtension("pg_class", "c.oid")},
	{"materialized view", `SELECT c.oid::regclass::text, '', 'CREATE MATERIALIZED VIEW ' || c.oid::regclass::text || ' AS' || chr(10) || pg_get_viewdef(c.oid, true) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND ` + userNamespace + ` AND ` + notExtension("pg_class", "c.oid")},
	{"sequence", `SELECT c.oid::regclass::text, '', 'CREATE SEQUENCE ' || c.oid::regclass::text || ' AS ' || format_type(s.seqtypid, NULL) || ' INCREMENT ' || s.seqincrement || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax || ' START ' || s.seqstart || ' CACHE ' || s.seqcache || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
		WHERE ` + userNamespace + ` AND ` + notExtension("pg_class", "c.oid") + ` AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')`},
	{"constraint", `SELECT quote_ident(co.conname) || ' ON ' || co.conrelid::regclass::text, co.conrelid::regclass::text, 'ALTER TABLE ' || co.conrelid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(co.conname) || ' ' || pg_get_constraintdef(co.oid)
		FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE co.conrelid <> 0 AND co.contype <> 'n' AND ` + userNamespace},
	{"index", `SELECT c.oid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE ` + userNamespace + ` AND NOT EXISTS (SELECT FROM pg_constraint co WHERE co.conindid = c.oid AND co.contype IN ('p','u','x')) AND ` + notExtension("pg_class", "i.indrelid")},
	{"function", `SELECT p.oid::regprocedure::text, '', pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ('f','p','w') AND ` + userNamespace + ` AND ` + notExtension("pg_proc", "p.oid")},
	{"trigger", `SELECT quote_ident(t.tgname) || ' ON ' || t.tgrelid::regclass::text, t.tgrelid::regclass::text, pg_get_triggerdef(t.oid, true) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND ` + userNamespace},
	{"policy", `SELECT quote_ident(p.policyname) || ' ON ' || quote_ident(p.schemaname) || '.' || quote_ident(p.tablename), quote_ident(p.schemaname) || '.' || quote_ident(p.tablename),
		'CREATE POLICY ' || quote_ident(p.policyname) || ' ON ' || quote_ident(p.schemaname) || '.' || quote_ident(p.tablename) || ' AS ' || p.permissive || ' FOR ' || p.cmd || ' TO ' || array_to_string(p.roles, ', ') ||
		coalesce(' USING (' || p.qual || ')', '') || coalesce(' WITH CHECK (' || p.with_check || ')', '') FROM pg_policies p`},
	{"row security", `SELECT c.oid::regclass::text, c.oid::regclass::text, 'ALTER TABLE ' || c.oid::regclass::text || ' ENABLE ROW LEVEL SECURITY' || CASE WHEN c.relforcerowsecurity THEN '; ALTER TABLE ' || c.oid::regclass::text || ' FORCE ROW LEVEL SECURITY' ELSE '' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relrowsecurity AND ` + userNamespace},
	{"type", `SELECT t.oid::regtype::text, '', 'CREATE TYPE ' || t.oid::regtype::text || CASE t.typtype
		WHEN 'e' THEN ' AS ENUM (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
		WHEN 'c' THEN ' AS (' || (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')'
		WHEN 'r' THEN ' AS RANGE (SUBTYPE = ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) || ')'
		ELSE '' END
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e','c','r') AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') AND ` + userNamespace + ` AND ` + notExtension("pg_type", "t.oid")},
	{"domain", `SELECT t.oid::regtype::text, '', 'CREATE DOMAIN ' || t.oid::regtype::text || ' AS ' || format_type(t.typbasetype, t.typtypmod) || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || t.typdefault, '') ||
		coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(co.conname) || ' ' || pg_get_constraintdef(co.oid), '' ORDER BY co.conname) FROM pg_constraint co WHERE co.contypid = t.oid), '')
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'd' AND ` + userNamespace + ` AND ` + notExtension("pg_type", "t.oid")},
}

// columnQuery reads every column of the user's tables.
const columnQuery = `SELECT c.oid::regclass::text, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
	coalesce(CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, ''),
	a.attnotnull, a.attidentity::text, coalesce(CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, ''),
	coalesce(CASE WHEN a.attcollation <> t.typcollation THEN (SELECT quote_ident(cl.collname) FROM pg_collation cl WHERE cl.oid = a.attcollation) END, '')
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
	LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	WHERE c.relkind IN ('r','p') AND a.attnum > 0 AND NOT a.attisdropped AND ` + userNamespace + ` AND ` + `NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

// grantQuery reads the privileges granted on tables, views, sequences,
// functions and schemas (--grants).
const grantQuery = `SELECT 'ON TABLE ' || c.oid::regclass::text, c.oid::regclass::text, 'ON TABLE ' || c.oid::regclass::text, coalesce(c.relacl::text, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m','S') AND ` + userNamespace + `
	UNION ALL SELECT 'ON FUNCTION ' || p.oid::regprocedure::text, '', 'ON FUNCTION ' || p.oid::regprocedure::text, coalesce(p.proacl::text, '') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ` + userNamespace + `
	UNION ALL SELECT 'ON SCHEMA ' || quote_ident(n.nspname), '', 'ON SCHEMA ' || quote_ident(n.nspname), coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE ` + userNamespace

// readSchema reads every object of the database c is connected to.
func readSchema(ctx context.Context, c *pgx.Conn, grants bool) (map[string]object, error) {
	out := map[string]object{}
	add := func(o object) { out[o.Kind+" "+o.Name] = o }
	for _, q := range catalogQueries {
		rows, err := c.Query(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("read the %ss: %w", q.kind, err)
		}
		for rows.Next() {
			o := object{Kind: q.kind}
			if err := rows.Scan(&o.Name, &o.Table, &o.Def); err != nil {
				rows.Close()
				return nil, err
			}
			add(o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read the %ss: %w", q.kind, err)
		}
	}
	rows, err := c.Query(ctx, columnQuery)
	if err != nil {
		return nil, fmt.Errorf("read the columns: %w", err)
	}
	for rows.Next() {
		var table, name, typ, def, identity, generated, collation string
		var notNull bool
		if err := rows.Scan(&table, &name, &typ, &def, &notNull, &identity, &generated, &collation); err != nil {
			rows.Close()
			return nil, err
		}
		a := map[string]string{"type": typ, "default": def, "identity": identity, "generated": generated, "collation": collation}
		if notNull {
			a["not_null"] = "true"
		}
		add(object{Kind: "column", Name: table + "." + name, Table: table, Def: columnDef(name, a), Attrs: a})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns: %w", err)
	}
	if grants {
		rows, err := c.Query(ctx, grantQuery)
		if err != nil {
			return nil, fmt.Errorf("read the grants: %w", err)
		}
		for rows.Next() {
			var o object
			var target, acl string
			if err := rows.Scan(&o.Name, &o.Table, &target, &acl); err != nil {
				rows.Close()
				return nil, err
			}
			o.Kind, o.Def = "grant", target+" "+acl
			add(o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read the grants: %w", err)
		}
	}
	return out, nil
}

// columnDef writes a column as CREATE TABLE would.
func columnDef(name string, a map[string]string) string {
	s := name + " " + a["type"]
	if a["collation"] != "" {
		s += " COLLATE " + a["collation"]
	}
	switch a["identity"] {
	case "a":
		s += " GENERATED ALWAYS AS IDENTITY"
	case "d":
		s += " GENERATED BY DEFAULT AS IDENTITY"
	}
	if a["generated"] != "" {
		s += " GENERATED ALWAYS AS (" + a["generated"] + ") STORED"
	}
	if a["default"] != "" {
		s += " DEFAULT " + a["default"]
	}
	if a["not_null"] != "" {
		s += " NOT NULL"
	}
	return s
}

// compareSchema lists what differs, in a stable order; tables limits it to
// those tables' objects (and objects of no table) when given.
func compareSchema(old, new map[string]object, tables []string) []Change {
	var out []Change
	keep := func(o object) bool {
		if len(tables) == 0 {
			return true
		}
		for _, t := range tables {
			if sameTable(t, o.Table) || (o.Table == "" && o.Kind == "table" && sameTable(t, o.Name)) {
				return true
			}
		}
		return false
	}
	for k, o := range old {
		if !keep(o) {
			continue
		}
		n, ok := new[k]
		switch {
		case !ok:
			out = append(out, Change{Kind: o.Kind, Name: o.Name, Change: "dropped", Old: o.Def, oldAttrs: o.Attrs})
		case n.Def != o.Def:
			out = append(out, Change{Kind: o.Kind, Name: o.Name, Change: "changed", Old: o.Def, New: n.Def, oldAttrs: o.Attrs, newAttrs: n.Attrs})
		}
	}
	for k, n := range new {
		if _, ok := old[k]; !ok && keep(n) {
			out = append(out, Change{Kind: n.Kind, Name: n.Name, Change: "added", New: n.Def, newAttrs: n.Attrs})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if kindOrder(a.Kind) != kindOrder(b.Kind) {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		return a.Name < b.Name
	})
	return out
}

// kinds in the order a schema is built: what others depend on first.
var kinds = []string{"schema", "extension", "type", "domain", "sequence", "table", "column", "function", "view", "materialized view", "constraint", "index", "trigger", "row security", "policy", "grant"}

func kindOrder(k string) int {
	for i, x := range kinds {
		if x == k {
			return i
		}
	}
	return len(kinds)
}

// sameTable tells whether a --table name, resolved as regclass prints it
// (SCHEMA.TABLE, under an empty search_path), names name.
func sameTable(arg, name string) bool { return arg == name }
