package pg

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigValue(t *testing.T) {
	conf := "port = 20001\nbasic_archive.archive_directory = '/h/wal/v1'\nlisten_addresses = '127.0.0.1'\n" +
		"basic_archive.archive_directory = '/it''s/wal/v2'\n"
	if got := ConfigValue(conf, "basic_archive.archive_directory"); got != "/it's/wal/v2" {
		t.Errorf("ConfigValue = %q", got)
	}
	if got := ConfigValue(conf, "port"); got != "20001" {
		t.Errorf("ConfigValue(port) = %q", got)
	}
	if got := ConfigValue(conf, "archive_mode"); got != "" {
		t.Errorf("ConfigValue(missing) = %q", got)
	}
}

func TestForeignDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, foreign := ForeignDataDir(dir, "/h/wal"); foreign {
		t.Error("a data directory without velo.conf is foreign")
	}
	write := func(conf string) {
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("basic_archive.archive_directory = '/h/wal/v1'\n")
	if _, foreign := ForeignDataDir(dir, "/h/wal/"); foreign {
		t.Error("a data directory archiving into this home's base is foreign")
	}
	write("basic_archive.archive_directory = '/other/wal/v1'\n")
	if a, foreign := ForeignDataDir(dir, "/h/wal"); !foreign || a != "/other/wal/v1" {
		t.Errorf("ForeignDataDir = %q, %v; want /other/wal/v1, true", a, foreign)
	}
}
