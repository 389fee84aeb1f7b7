package pg

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestTarDataDirRoundTrip: a tar of a data directory unpacks to the same
// files, leaves out postmaster.pid, and is the same bytes when made again.
func TestTarDataDirRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "base", "1"), 0o700))
	must(os.WriteFile(filepath.Join(src, "base", "1", "1259"), bytes.Repeat([]byte("x"), 10000), 0o600))
	must(os.WriteFile(filepath.Join(src, "PG_VERSION"), []byte("17\n"), 0o600))
	must(os.WriteFile(filepath.Join(src, "postmaster.pid"), []byte("1\n"), 0o600))
	must(os.Symlink("/elsewhere", filepath.Join(src, "pg_tblspc_link")))
	var a, b bytes.Buffer
	must(TarDataDir(&a, src, nil))
	must(TarDataDir(&b, src, nil))
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two tars of the same files differ")
	}
	dst := t.TempDir()
	must(UntarDataDir(bytes.NewReader(a.Bytes()), dst, nil, nil))
	got, err := os.ReadFile(filepath.Join(dst, "base", "1", "1259"))
	if err != nil || len(got) != 10000 {
		t.Fatalf("base/1/1259: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(dst, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid was unpacked: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "pg_tblspc_link")); err != nil || l != "/elsewhere" {
		t.Errorf("symlink: %q, %v", l, err)
	}
}
