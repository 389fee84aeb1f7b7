package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/errdefs"
)

// TestArchiveFilesToUpload: every file archive_command leaves is uploaded
// (segments, .partial, .backup, .history), and nothing else (basic_archive's
// temporary files, anything a person left there).
func TestArchiveFilesToUpload(t *testing.T) {
	dir := t.TempDir()
	want := []string{"00000001.history", "000000010000000000000001", "000000010000000000000002.00000028.backup", "000000010000000000000003.partial", "000000020000000000000003"}
	for _, n := range append([]string{"archtemp.000000010000000000000004.123.456", "notes.txt", "00000001000000000000000", "000000010000000000000001.gz"}, want...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "000000010000000000000009"), 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := archiveFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("archiveFiles = %v; want %v", got, want)
	}
	if files, err := archiveFiles(filepath.Join(dir, "gone")); err != nil || len(files) != 0 {
		t.Fatalf("a missing archive: %v, %v; want none and no error", files, err)
	}
}

func TestArchiveCountsBehind(t *testing.T) {
	now := time.Now()
	var c ArchiveCounts
	if c.Behind(now) || c.Lag(now) != 0 {
		t.Fatalf("nothing waiting: behind %v, lag %v", c.Behind(now), c.Lag(now))
	}
	c.add(ArchiveCounts{LocalOnly: 2, LocalOnlyBytes: 32, InBucket: 5, OldestPending: now.Add(-time.Minute)})
	c.add(ArchiveCounts{LocalOnly: 1, LocalOnlyBytes: 16, InBucket: 1, OldestPending: now.Add(-2 * time.Minute)})
	c.add(ArchiveCounts{InBucket: 1})
	if c.LocalOnly != 3 || c.LocalOnlyBytes != 48 || c.InBucket != 7 || c.Lag(now) != 2*time.Minute {
		t.Fatalf("sum = %+v, lag %v", c, c.Lag(now))
	}
	if c.Behind(now) {
		t.Fatal("two minutes of lag without an error counts as behind")
	}
	if !c.Behind(now.Add(behindAfter)) {
		t.Fatal("a lag over behindAfter does not count as behind")
	}
	c.LastError = "store down"
	if !c.Behind(now) {
		t.Fatal("files waiting after a failed upload do not count as behind")
	}
	if (ArchiveCounts{LastError: "x"}).Behind(now) {
		t.Fatal("an old error with nothing waiting counts as behind")
	}
}

func TestSpaceWarning(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		free, total uint64
		warn        bool
	}{
		{50 * gib, 100 * gib, false},
		{9 * gib, 100 * gib, true}, // under a tenth
		{2 * gib, 10 * gib, false},
		{gib / 2, 4 * gib, true}, // under 1 GiB
	} {
		w := spaceWarningFor("/a", c.free, c.total, 48<<20)
		if (w != "") != c.warn {
			t.Errorf("free %d of %d: warning %q; want one: %v", c.free, c.total, w, c.warn)
		}
		if w != "" && (!strings.Contains(w, "/a") || !strings.Contains(w, "48.0 MiB")) {
			t.Errorf("warning %q does not name the directory and what waits", w)
		}
	}
	if spaceWarning(t.TempDir(), 1, false) != "" {
		t.Error("a warning while uploads are not behind")
	}
}

func TestParseArchive(t *testing.T) {
	a, err := ParseArchive("s3://velo-wal/team/demo", "http://127.0.0.1:9000")
	if err != nil || a.Off || a.Loc.String() != "s3://velo-wal/team/demo" || a.Endpoint != "http://127.0.0.1:9000" {
		t.Fatalf("ParseArchive = %+v, %v", a, err)
	}
	if a, err := ParseArchive("none", ""); err != nil || !a.Off {
		t.Fatalf("none = %+v, %v", a, err)
	}
	for _, in := range [][2]string{{"none", "http://127.0.0.1:9000"}, {"", ""}, {"", "http://x"}, {"s3://velo-wal/x", "ftp://x"}, {"NONE", ""}, {"s3://velo-wal/x", "http://k:s@x"}} {
		if _, err := ParseArchive(in[0], in[1]); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseArchive(%q, %q) = %v; want invalid input", in[0], in[1], err)
		}
	}
}
