package pg_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/testenv"
)

// These tests run real Postgres: as root, with the servers run as the
// postgres user, once per install found.

type cluster struct {
	install  pg.Install
	runAs    *pg.OSUser
	dir      string // 0711, holds data, the socket directory and the log
	data     string
	password string
	spec     runtime.Spec
}

func installs(t *testing.T) []pg.Install {
	t.Helper()
	testenv.RequireRoot(t)
	found, err := pg.FindInstalls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		testenv.Skip(t, "postgres", "no PostgreSQL install found")
	}
	return found
}

func forEachInstall(t *testing.T, fn func(t *testing.T, in pg.Install)) {
	for _, in := range installs(t) {
		t.Run(in.Version, func(t *testing.T) { fn(t, in) })
	}
}

// newCluster initdb's a cluster with velo's configuration, not started.
func newCluster(t *testing.T, in pg.Install) *cluster {
	t.Helper()
	runAs, err := pg.LookupRunAs()
	if err != nil {
		testenv.Skip(t, "postgres", err.Error())
	}
	dir, err := os.MkdirTemp("/tmp", "velo-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	password, err := pg.GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{install: in, runAs: runAs, dir: dir, data: filepath.Join(dir, "data"), password: password}
	if err := pg.InitDB(context.Background(), pg.InitOptions{Install: in, DataDir: c.data, Password: password, RunAs: runAs}); err != nil {
		t.Fatal(err)
	}
	c.configure(t, "")
	return c
}

// configure gives the cluster (or a clone at data) a port and velo's files.
func (c *cluster) configure(t *testing.T, data string) {
	t.Helper()
	if data != "" {
		c.data = data
	}
	port, err := pg.FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(c.dir, "s-"+filepath.Base(c.data))
	cfg := pg.Config{Port: port, SocketDir: sock, Extra: map[string]string{"cluster_name": "velo's test", "work_mem": "8MB"}}
	if err := pg.WriteConfig(c.data, cfg, c.runAs); err != nil {
		t.Fatal(err)
	}
	if err := pg.WriteHBA(c.data, c.runAs); err != nil {
		t.Fatal(err)
	}
	c.spec = runtime.Spec{
		Install: c.install, DataDir: c.data, Port: port, SocketDir: sock,
		LogFile: filepath.Join(c.dir, filepath.Base(c.data)+".log"), RunAs: c.runAs, Password: c.password,
	}
}

func (c *cluster) start(t *testing.T) {
	t.Helper()
	rt := native.New()
	spec := c.spec
	if _, err := rt.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Stop(context.Background(), spec, 10*time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

func (c *cluster) query(t *testing.T, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pg.Connect(ctx, c.spec.Port, c.password)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestInitDB(t *testing.T) {
	forEachInstall(t, func(t *testing.T, in pg.Install) {
		c := newCluster(t, in)
		fi, err := os.Stat(c.data)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("data directory mode %v, want 0700", fi.Mode().Perm())
		}
		if c.runAs != nil {
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != c.runAs.UID {
				t.Errorf("data directory owned by uid %d, want %d", st.Uid, c.runAs.UID)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(c.dir, ".velo-pwfile-*")); len(left) != 0 {
			t.Errorf("password file left behind: %v", left)
		}
		if v, _ := os.ReadFile(filepath.Join(c.data, "PG_VERSION")); strings.TrimSpace(string(v)) == "" {
			t.Error("no PG_VERSION")
		}
		// initdb into a directory that is not empty fails with initdb's words.
		err = pg.InitDB(context.Background(), pg.InitOptions{Install: in, DataDir: c.data, Password: c.password, RunAs: c.runAs})
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("initdb over a cluster: %v", err)
		}
	})
}

func TestConfigTakesEffect(t *testing.T) {
	forEachInstall(t, func(t *testing.T, in pg.Install) {
		c := newCluster(t, in)
		c.start(t)
		for setting, want := range map[string]string{
			"port":                    strconv.Itoa(c.spec.Port),
			"listen_addresses":        "127.0.0.1",
			"wal_level":               "replica",
			"wal_keep_size":           "256MB",
			"max_wal_senders":         "4",
			"fsync":                   "on",
			"cluster_name":            "velo's test",
			"work_mem":                "8MB",
			"password_encryption":     "scram-sha-256",
			"unix_socket_directories": c.spec.SocketDir,
		} {
			if got := c.query(t, "SELECT current_setting($1)", setting); got != want {
				t.Errorf("%s = %q, want %q", setting, got, want)
			}
		}
		// No trust: a wrong password is refused, by the server.
		ctx := context.Background()
		conn, err := pg.Connect(ctx, c.spec.Port, "wrong")
		if err == nil {
			conn.Close(ctx)
			t.Fatal("connected with a wrong password")
		}
		if code := pg.SQLState(err); code != "28P01" {
			t.Errorf("wrong password: SQLSTATE %q (%v), want 28P01", code, err)
		}
		if err := pg.Checkpoint(ctx, c.spec.Port, c.password); err != nil {
			t.Errorf("Checkpoint: %v", err)
		}
	})
}

// TestBackupClone copies a running server that is being written to, the way
// the reflink and copy drivers do, and starts the copy.
func TestBackupClone(t *testing.T) {
	forEachInstall(t, func(t *testing.T, in pg.Install) {
		c := newCluster(t, in)
		c.start(t)
		ctx := context.Background()
		execSQL(t, c, "CREATE TABLE t (id int, pad text); INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g")

		b, err := pg.BackupStart(ctx, c.spec.Port, c.password, "velo test clone")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		// Written during the copy: the clone gets it from the WAL.
		execSQL(t, c, "INSERT INTO t SELECT g, 'during' FROM generate_series(10001, 12000) g")
		c.query(t, "SELECT pg_switch_wal()::text") // so that the backup spans segments
		clone := filepath.Join(c.dir, "clone")
		if err := copyTree(c.data, clone); err != nil {
			t.Fatal(err)
		}
		execSQL(t, c, "INSERT INTO t SELECT g, 'also during' FROM generate_series(12001, 13000) g")
		res, err := b.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.LabelFile, "START WAL LOCATION: "+res.StartLSN) || res.StartWAL == "" || res.StopWAL <= res.StartWAL {
			t.Fatalf("backup result %+v", res)
		}
		t.Logf("backup %s..%s (%s..%s)", res.StartLSN, res.StopLSN, res.StartWAL, res.StopWAL)
		// After the stop: not in the clone.
		execSQL(t, c, "INSERT INTO t SELECT g, 'after' FROM generate_series(13001, 14000) g")

		if err := pg.WriteBackupLabel(clone, res.LabelFile, c.runAs); err != nil {
			t.Fatal(err)
		}
		if err := pg.CopyWAL(c.data, clone, res.StartWAL, res.StopWAL, c.runAs); err != nil {
			t.Fatal(err)
		}
		if err := pg.PrepareClone(clone); err != nil {
			t.Fatal(err)
		}
		if err := pg.Chown(clone, c.runAs); err != nil {
			t.Fatal(err)
		}
		parentPort := c.spec.Port
		c.configure(t, clone)
		if c.spec.Port == parentPort {
			t.Fatal("clone got the parent's port")
		}
		c.start(t)
		if got := c.query(t, "SELECT count(*)::text FROM t"); got != "13000" {
			t.Errorf("clone has %s rows, want 13000 (all written before pg_backup_stop)", got)
		}
		if got := c.query(t, "SELECT pg_is_in_recovery()::text"); got != "false" {
			t.Errorf("clone in recovery: %s", got)
		}
		if _, err := os.Stat(filepath.Join(clone, "backup_label")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("backup_label still in the started clone: %v", err)
		}
	})
}

func execSQL(t *testing.T, c *cluster, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pg.Connect(ctx, c.spec.Port, c.password)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// copyTree copies a running data directory as a plain copy driver would:
// files that vanish while it runs (temporary files, recycled WAL) are
// skipped.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func TestFindInstallsEmbedded(t *testing.T) {
	const bin = "/opt/velo/pg17/bin"
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		testenv.Skip(t, "pg17", "no embedded PostgreSQL 17 in /opt/velo/pg17 (scripts/install-embedded-postgres.sh 17 /opt/velo/pg17)")
	}
	t.Setenv(pg.BinEnv, bin)
	found, err := pg.FindInstalls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in, err := pg.Pick(found, 17)
	if err != nil {
		t.Fatal(err)
	}
	if in.BinDir != bin || in.LibDir != "/opt/velo/pg17/lib" || !strings.HasPrefix(in.Version, "17.") {
		t.Errorf("install %+v", in)
	}
	for i := 1; i < len(found); i++ {
		if found[i-1].Major <= found[i].Major {
			t.Errorf("not sorted by major descending: %+v", found)
		}
	}
	if sys, err := pg.Pick(found, 15); err == nil && sys.LibDir != "" {
		t.Errorf("system install got LibDir %q", sys.LibDir)
	}

	t.Setenv(pg.BinEnv, t.TempDir())
	if _, err := pg.FindInstalls(context.Background()); err == nil {
		t.Error("a VELO_PG_BIN entry without postgres is not an error")
	}
	t.Setenv(pg.BinEnv, "relative/bin")
	if _, err := pg.FindInstalls(context.Background()); err == nil {
		t.Error("a relative VELO_PG_BIN entry is not an error")
	}
}
