package diff

import (
	"strings"
)

// sketch writes SQL that takes the old schema to the new: drops first, last
// built first, then what is added and changed, first built first. It is a
// sketch to review: a rename reads as a drop and an add, and data that a
// dropped column held is not moved anywhere.
func sketch(changes []Change) []string {
	var out []string
	for i := len(changes) - 1; i >= 0; i-- {
		if c := changes[i]; c.Change == "dropped" {
			out = append(out, drop(c)...)
		}
	}
	for _, c := range changes {
		switch c.Change {
		case "added":
			out = append(out, create(c)...)
		case "changed":
			out = append(out, alter(c)...)
		}
	}
	return out
}

func drop(c Change) []string {
	switch c.Kind {
	case "column":
		table, col := splitColumn(c.Name)
		return []string{"ALTER TABLE " + table + " DROP COLUMN " + col + ";"}
	case "constraint":
		name, table, _ := strings.Cut(c.Name, " ON ")
		return []string{"ALTER TABLE " + table + " DROP CONSTRAINT " + name + ";"}
	case "trigger", "policy":
		return []string{"DROP " + strings.ToUpper(c.Kind) + " " + c.Name + ";"}
	case "row security":
		return []string{"ALTER TABLE " + c.Name + " DISABLE ROW LEVEL SECURITY;"}
	case "grant":
		target, _, _ := strings.Cut(strings.TrimPrefix(c.Name, "ON "), " ")
		return []string{"-- privileges " + c.Name + " were " + aclOf(c.Old) + " (" + target + " dropped or its privileges reset)"}
	case "function":
		if strings.Contains(c.Old, "CREATE OR REPLACE PROCEDURE") {
			return []string{"DROP PROCEDURE " + c.Name + ";"}
		}
		return []string{"DROP FUNCTION " + c.Name + ";"}
	}
	return []string{"DROP " + strings.ToUpper(c.Kind) + " " + c.Name + ";"}
}

func create(c Change) []string {
	switch c.Kind {
	case "column":
		table, _ := splitColumn(c.Name)
		return []string{"ALTER TABLE " + table + " ADD COLUMN " + c.New + ";"}
	case "grant":
		return []string{"-- privileges now " + c.New}
	}
	return []string{terminate(c.New)}
}

// alterColumn changes a column in place: its type, default, nullability.
// Identity and generation are dropped and added again.
func alterColumn(c Change) []string {
	table, col := splitColumn(c.Name)
	o, n := c.oldAttrs, c.newAttrs
	at := "ALTER TABLE " + table + " ALTER COLUMN " + col
	var out []string
	if o["identity"] != n["identity"] || o["generated"] != n["generated"] {
		return append(drop(c), create(c)...)
	}
	if o["type"] != n["type"] || o["collation"] != n["collation"] {
		s := at + " TYPE " + n["type"]
		if n["collation"] != "" {
			s += " COLLATE " + n["collation"]
		}
		out = append(out, s+";")
	}
	if o["default"] != n["default"] {
		if n["default"] == "" {
			out = append(out, at+" DROP DEFAULT;")
		} else {
			out = append(out, at+" SET DEFAULT "+n["default"]+";")
		}
	}
	if o["not_null"] != n["not_null"] {
		if n["not_null"] == "" {
			out = append(out, at+" DROP NOT NULL;")
		} else {
			out = append(out, at+" SET NOT NULL;")
		}
	}
	return out
}

func alter(c Change) []string {
	switch c.Kind {
	case "column":
		return alterColumn(c)
	case "type":
		if added, ok := enumAdded(c.Old, c.New); ok {
			var out []string
			for _, l := range added {
				out = append(out, "ALTER TYPE "+c.Name+" ADD VALUE "+l+";")
			}
			return out
		}
	case "function", "view":
		// CREATE OR REPLACE keeps what depends on them, where it can.
		return []string{terminate(strings.Replace(c.New, "CREATE VIEW", "CREATE OR REPLACE VIEW", 1))}
	case "grant":
		return []string{"-- privileges " + c.Name + ": " + aclOf(c.Old) + " -> " + aclOf(c.New)}
	case "extension":
		return []string{"ALTER EXTENSION " + c.Name + " UPDATE TO " + c.New[strings.LastIndex(c.New, " ")+1:] + ";"}
	}
	return append(drop(c), create(c)...)
}

// enumAdded reads the labels new has beyond old's, when new is old with
// labels added (CREATE TYPE x AS ENUM ('a', 'b')).
func enumAdded(old, new string) ([]string, bool) {
	labels := func(def string) ([]string, bool) {
		i := strings.Index(def, " AS ENUM (")
		if i < 0 || !strings.HasSuffix(def, ")") {
			return nil, false
		}
		return strings.Split(def[i+len(" AS ENUM ("):len(def)-1], ", "), true
	}
	o, ok1 := labels(old)
	n, ok2 := labels(new)
	if !ok1 || !ok2 {
		return nil, false
	}
	have := map[string]bool{}
	for _, l := range o {
		have[l] = true
	}
	var added []string
	for _, l := range n {
		if !have[l] {
			added = append(added, l)
		}
	}
	return added, len(added) > 0 && len(o)+len(added) == len(n)
}

func aclOf(def string) string {
	if i := strings.LastIndex(def, " "); i >= 0 && strings.HasPrefix(def[i+1:], "{") {
		return def[i+1:]
	}
	return "(defaults)"
}

func terminate(s string) string {
	s = strings.TrimRight(s, " \n;")
	return s + ";"
}

// splitColumn splits TABLE.COLUMN (the column's name, quoted as needed,
// holds no unquoted dot after the table's).
func splitColumn(name string) (table, column string) {
	i := lastUnquotedDot(name)
	return name[:i], name[i+1:]
}

func lastUnquotedDot(s string) int {
	in, last := false, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			in = !in
		case '.':
			if !in {
				last = i
			}
		}
	}
	return last
}
