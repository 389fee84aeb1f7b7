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
