package pg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSourceURL(t *testing.T) {
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	s, err := ParseSource("postgresql://repl:s3cr%3At@db.example.com:5433/app?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "db.example.com" || s.Port != 5433 || s.User != "repl" || s.Database != "app" || s.Password != "s3cr:t" || s.SSL["sslmode"] != "require" {
		t.Fatalf("parsed %+v", s)
	}
	ci := s.Conninfo("/p/pgpass", nil)
	if strings.Contains(ci, "s3cr") || !strings.Contains(ci, "passfile='/p/pgpass'") || !strings.Contains(ci, "sslmode='require'") {
		t.Fatalf("conninfo %s", ci)
	}
	if got := s.Passfile(); got != "db.example.com:5433:*:repl:s3cr\\:t\n" {
		t.Fatalf("passfile line %q", got)
	}
	if d := s.Display(); d != "repl@db.example.com:5433/app" {
		t.Fatalf("display %s", d)
	}
}

func TestParseSourcePasswordFromEnvAndService(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "pg_service.conf")
	if err := os.WriteFile(svc, []byte("# prod\n[other]\nhost=x\n[prod]\nhost=127.0.0.1\nport=6543\nuser=repl\ndbname=postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	t.Setenv("PGPASSWORD", "from-env")
	s, err := ParseSource("service=prod")
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "127.0.0.1" || s.Port != 6543 || s.Password != "from-env" || s.Service != "prod" {
		t.Fatalf("parsed %+v", s)
	}
	if _, err := ParseSource("service=nope"); err == nil || !strings.Contains(err.Error(), "no section [nope]") {
		t.Fatalf("missing service: %v", err)
	}
}

func TestParseSourceRefusals(t *testing.T) {
	for _, in := range []string{"db.example.com", "host=x user=y", "postgresql://u:hunter2@h/db?bogus=1", "service="} {
		_, err := ParseSource(in)
		if err == nil {
			t.Errorf("%q accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: error shows the password: %v", in, err)
		}
	}
}

func TestHBALine(t *testing.T) {
	if got := HBALine("replication", "repl", "10.0.0.5"); got != "host    replication    repl    10.0.0.5/32    scram-sha-256" {
		t.Fatal(got)
	}
}

func TestWALFileName(t *testing.T) {
	for _, c := range []struct {
		tli  uint32
		lsn  string
		want string
	}{
		{1, "0/1000000", "000000010000000000000001"},
		{1, "0/FFFFFFF", "00000001000000000000000F"},
		{2, "1/0", "000000020000000100000000"},
		{3, "16/B374D848", "0000000300000016000000B3"},
	} {
		got, err := walFileName(c.tli, c.lsn, 16<<20)
		if err != nil || got != c.want {
			t.Errorf("walFileName(%d, %s) = %s, %v; want %s", c.tli, c.lsn, got, err, c.want)
		}
	}
	for lsn, want := range map[string]string{"0/1000000": "0/FFFFFF", "1/0": "0/FFFFFFFF", "0/1000028": "0/1000028", "0/0": "0/0"} {
		if got, _ := lsnBefore(lsn, 16<<20); got != want {
			t.Errorf("lsnBefore(%s) = %s, want %s", lsn, got, want)
		}
	}
	if _, err := walFileName(1, "nope", 16<<20); err == nil {
		t.Error("a bad LSN was accepted")
	}
}

func TestPassfileRoundTrip(t *testing.T) {
	s := Source{Host: "db:1", Port: 5432, User: `re\pl`, Password: `p:a\ss`}
	path := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(path, []byte(s.Passfile()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPassfilePassword(path)
	if err != nil || got != s.Password {
		t.Fatalf("password read back %q, %v; want %q", got, err, s.Password)
	}
}

func TestSourceFromConninfo(t *testing.T) {
	s := Source{Host: "db", Port: 6432, User: "repl", Database: "it's", SSL: map[string]string{"sslmode": "require"}}
	got, err := SourceFromConninfo(s.Conninfo("", nil), "pw")
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "db" || got.Port != 6432 || got.User != "repl" || got.Database != "it's" || got.Password != "pw" ||
		got.SSL["sslmode"] != "require" || len(got.SSL) != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestFindPassword(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pass, []byte("127.0.0.1:6543:*:repl:from-pgpass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	t.Setenv("PGPASSWORD", "")
	s := Source{Host: "127.0.0.1", Port: 6543, User: "repl", Database: "postgres"}
	got, err := s.FindPassword()
	if err != nil || got.Password != "from-pgpass" {
		t.Fatalf("from ~/.pgpass: %q, %v", got.Password, err)
	}
	t.Setenv("PGPASSWORD", "from-env")
	if got, _ := s.FindPassword(); got.Password != "from-env" {
		t.Fatalf("PGPASSWORD: %q, want from-env", got.Password)
	}
	s.Password = "kept"
	if got, _ := s.FindPassword(); got.Password != "kept" {
		t.Fatalf("a password held is replaced: %q", got.Password)
	}
	t.Setenv("PGPASSWORD", "")
	other := Source{Host: "127.0.0.1", Port: 6543, User: "someone", Database: "postgres"}
	if got, _ := other.FindPassword(); got.Password != "" {
		t.Fatalf("another role got %q", got.Password)
	}
}
