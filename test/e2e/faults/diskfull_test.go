package faults

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestDiskFull fills a small pool from one branch until Postgres fails:
// the user sees Postgres's "No space left on device", velo commands that
// need space fail saying so and change nothing, the project's other
// servers keep answering with their rows, and deleting the full branch
// gives the space back. Not on zfs-fuse, whose daemon dies when a pool fills.
func TestDiskFull(t *testing.T) {
	for _, d := range []string{"btrfs", "reflink"} {
		t.Run(d, func(t *testing.T) { testDiskFull(t, d) })
	}
}

func testDiskFull(t *testing.T, driver string) {
	began := time.Now()
	e := newEnvSized(t, driver, 512<<20)
	defer func() {
		if t.Failed() {
			e.logServerTrouble()
		}
	}()
	// No WAL switch on a timer: an idle server then has nothing to write
	// while the pool is full (see docs/reliability.md).
	e.Create("df", "--archive-timeout", "24h")
	e.Psql("df/main", "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('main-1'), ('main-2')")
	e.OK("branch", "create", "df/other")
	// A server writes WAL of its own for a while after its last change
	// (the background writer logs running transactions 15 s after it
	// starts, then every 15 s while there is activity), and one that cannot
	// write its WAL stops. Those two are quiet once that is done.
	quiet := time.Now().Add(16 * time.Second)
	e.OK("branch", "create", "df/full")
	mainRows, otherRows := "main-1,main-2", "main-1,main-2"
	empty := harness.PoolFree(t, e.Pool)
	time.Sleep(time.Until(quiet))

	// Fill df/full with random bytes, 8 MB a statement, until Postgres
	// fails. STORAGE EXTERNAL keeps TOAST from trying to compress them.
	c := e.Conn("df/full")
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", c.Password, c.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	if _, err := pc.Exec(ctx, "CREATE TABLE big (v bytea); ALTER TABLE big ALTER COLUMN v SET STORAGE EXTERNAL"); err != nil {
		t.Fatal(err)
	}
	var written int64
	var fillErr error
	filling := time.Now()
	chunk := make([]byte, 8<<20)
	for i := 0; i < 200 && fillErr == nil; i++ {
		_, _ = rand.Read(chunk)
		_, fillErr = pc.Exec(ctx, `INSERT INTO big VALUES ($1)`, chunk)
		if fillErr == nil {
			written += int64(len(chunk))
		}
	}
	if fillErr == nil {
		t.Fatalf("wrote %d MB into a %d MB pool without an error", written>>20, empty>>20)
	}
	t.Logf("set up in %.1fs; Postgres after %d MB in %.1fs: %v", filling.Sub(began).Seconds(), written>>20, time.Since(filling).Seconds(), fillErr)
	var pgErr *pgconn.PgError
	if errors.As(fillErr, &pgErr) {
		// The statement failed, or the server stopped (PANIC) because it
		// could not write its WAL, and said why: "could not extend file
		// ...: No space left on device", "could not write to file
		// pg_wal/...: No space left on device"; or, when the filesystem
		// took half a block, "could not write block N ...: wrote only 4096
		// of 8192 bytes", with the hint "Check free disk space."
		says := strings.Contains(pgErr.Message, "No space left on device") || strings.Contains(pgErr.Hint, "free disk space")
		if pgErr.Code != "53100" || !says {
			t.Errorf("the error a user sees when the pool is full does not say so: %v", fillErr)
		}
	} else if !e.logsSay("PANIC", "No space left on device") {
		// The server stopped before it could tell the client.
		t.Errorf("df/full lost its connection (%v) and no server log says the pool is full", fillErr)
	}
	// A server that stopped for want of space replays its WAL, and stops
	// for good if that needs space too; velo then says why it cannot start.
	if !e.settle("df/full") {
		before := e.SnapshotState()
		r := e.Run("branch", "start", "df/full")
		e.assertClean(r, []string{"branch", "start", "df/full"}, 1)
		if !strings.Contains(strings.ToLower(r.Stderr), "no space left on device") {
			t.Errorf("branch start of the branch that filled the pool does not say there is no space:\n%s", r)
		}
		if after := e.SnapshotState(); after != before {
			t.Errorf("a failed branch start changed the state:\nbefore %s\nafter  %s", before, after)
		}
	}
	full := harness.PoolFree(t, e.Pool)
	t.Logf("pool free: %d MB empty, %d MB full", empty>>20, full>>20)

	assertRows := func(when string) {
		t.Helper()
		for ref, want := range map[string]string{"df/main": mainRows, "df/other": otherRows} {
			out, err := e.PsqlErr(ref, "SELECT v FROM keep ORDER BY v")
			if got := strings.ReplaceAll(out, "\n", ","); err != nil || got != want {
				t.Errorf("%s %s: %v %s, want %s", ref, when, err, got, want)
			}
		}
	}
	// Servers that have nothing to write keep answering, with their rows.
	assertRows("with the pool full")

	// Commands that need space fail, say why, and change nothing: above
	// all, they do not make the servers there write (a checkpoint on a
	// full pool stops a server). df/full's server, if it came back, is
	// not quiet: the WAL its background writer logs 15 s after recovery
	// stops it again, in the middle of these commands or not.
	project := []string{"project", "create", "df2", "--pool", e.Pool}
	if driver == "reflink" {
		project = append(project, "--storage", "reflink")
	}
	for _, args := range [][]string{
		{"branch", "create", "df/more"},
		{"branch", "create", "df/more", "--parent", "df/other"},
		{"snapshot", "create", "df/other", "--label", "full"},
		{"branch", "reset", "df/other"},
		project,
	} {
		before := e.SnapshotState("df/full")
		r := e.Run(args...)
		e.assertClean(r, args, 1)
		if !strings.Contains(strings.ToLower(r.Stderr), "no space") {
			t.Errorf("velo %s on a full pool does not say there is no space:\n%s", strings.Join(args, " "), r)
		}
		if after := e.SnapshotState("df/full"); after != before {
			t.Errorf("velo %s on a full pool changed the state:\nbefore %s\nafter  %s", strings.Join(args, " "), before, after)
		}
	}
	assertRows("after velo commands on the full pool")
	e.AssertNoLeaks()

	// A write on another branch: it commits or fails (its server may stop),
	// and either way what was committed before stays.
	if out, err := e.PsqlErr("df/other", "INSERT INTO keep VALUES ('other-2')"); err == nil {
		otherRows += ",other-2"
	} else {
		t.Logf("a write on df/other with the pool full: %s", out)
	}

	// Deleting the full branch gives its space back, and every server the
	// full pool stopped starts again.
	e.OK("branch", "delete", "df/full")
	freed := harness.WaitFreed(t, e.Pool, driver == "btrfs", full, written/2)
	t.Logf("pool free after delete: %d MB", freed>>20)
	e.settle("df/main")
	e.settle("df/other")
	e.OK("branch", "start", "--all")
	assertRows("after the full branch was deleted")
	e.OK("branch", "create", "df/after")
	if got := e.Rows("df/after", "SELECT v FROM keep ORDER BY v"); got != mainRows {
		t.Errorf("df/after = %s, want %s", got, mainRows)
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
}

// settle waits until ref's server answers (true) or has stopped (false):
// a server that Postgres stopped for want of space restarts and replays
// its WAL, and stops for good if that fails too.
func (e *env) settle(ref string) bool {
	e.T.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := e.PsqlErr(ref, "SELECT 1"); err == nil {
			return true
		}
		if e.DoctorBranch(ref).State != "running" {
			return false
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%s neither answers nor stops", ref)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logServerTrouble logs what the servers' logs say went wrong.
func (e *env) logServerTrouble() {
	logs, _ := filepath.Glob(filepath.Join(e.Home, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "PANIC") || strings.Contains(line, "FATAL") || strings.Contains(line, "ERROR") || strings.Contains(line, "LOG:  database system") {
				e.T.Logf("%s: %s", filepath.Base(l), line)
			}
		}
	}
}

// logsSay reports whether one server log line holds every one of words.
func (e *env) logsSay(words ...string) bool {
	logs, _ := filepath.Glob(filepath.Join(e.Home, "logs", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
	lines:
		for _, line := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if !strings.Contains(line, w) {
					continue lines
				}
			}
			return true
		}
	}
	return false
}
