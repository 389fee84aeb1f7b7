package pg

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoleStatements(t *testing.T) {
	sql := `--
-- PostgreSQL database cluster dump
--

SET default_transaction_read_only = off;

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc';
CREATE ROLE "odd ""name""
with a newline";
ALTER ROLE shopper WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:it''s';
GRANT pg_read_all_data TO shopper GRANTED BY postgres;
`
	var got [][2]string
	for _, st := range RoleStatements(sql) {
		got = append(got, [2]string{st.Role, firstLineOf(st.SQL)})
	}
	want := [][2]string{
		{"", "SET default_transaction_read_only = off;"},
		{"postgres", "CREATE ROLE postgres;"},
		{"postgres", "ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc';"},
		{"odd \"name\"\nwith a newline", `CREATE ROLE "odd ""name""`},
		{"shopper", "ALTER ROLE shopper WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:it''s';"},
		{"", "GRANT pg_read_all_data TO shopper GRANTED BY postgres;"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RoleStatements:\n got %q\nwant %q", got, want)
	}
	if w := WithoutPassword("ALTER ROLE shopper WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:it''s' VALID UNTIL 'infinity';"); w != "ALTER ROLE shopper WITH LOGIN VALID UNTIL 'infinity';" {
		t.Errorf("WithoutPassword: %q", w)
	}
}

func firstLineOf(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func TestDumpTools(t *testing.T) {
	dir := t.TempDir()
	mk := func(major int, names ...string) Install {
		bin := filepath.Join(dir, string(rune('a'+major)))
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(bin, n), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return Install{Major: major, BinDir: bin}
	}
	all := []string{"pg_dump", "pg_restore", "pg_dumpall"}
	// The embedded 17 has only the server; Debian's 15 has the tools.
	installs := []Install{mk(17, "initdb", "postgres"), mk(16, all...), mk(15, all...)}
	if in, err := DumpTools(installs, 15); err != nil || in.Major != 16 {
		t.Errorf("DumpTools for a 15 source: %v, %v; want 16's", in.Major, err)
	}
	if _, err := DumpTools(installs, 17); err == nil || !strings.Contains(err.Error(), "found them for PostgreSQL 15, 16 only") {
		t.Errorf("DumpTools for a 17 source: %v; want a refusal listing 15 and 16", err)
	}
}

func TestDBNameConninfo(t *testing.T) {
	if got := DBNameConninfo(`host=evil it's\`); got != `dbname='host=evil it\'s\\'` {
		t.Errorf("DBNameConninfo: %s", got)
	}
}
