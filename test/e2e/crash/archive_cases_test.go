package crash

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/objstore/s3test"
	"github.com/velohq/velo/test/e2e/harness"
)

// archiveCases are snapshot push and project create --from-archive for
// the crash test, against a real S3 server (btrfs only: their storage
// steps are a clone and project create's). The restored project is made
// in the same home as the one pushed: the bucket is all they share.
func (c *crashRun) archiveCases() []crashCase {
	e := c.e
	if e.Storage != "btrfs" {
		return nil
	}
	srv := s3test.Start(e.T, "velo-crash")
	var snap string
	manifest := func() string { return srv.Dir("up/snapshots/" + snap + "/manifest.json") }
	from := []string{"--from-archive", srv.URL("up"), "--archive-endpoint", srv.Endpoint}
	return []crashCase{{
		name:    "snapshot push",
		drivers: []string{"btrfs"},
		setup: func() {
			e.Extra = append(e.Extra, srv.Env(harness.TmpDir(e.T, "velo-aws-"))...)
			e.OK("project", "create", "up", "--pool", e.Pool, "--archive", srv.URL("up"), "--archive-endpoint", srv.Endpoint)
			e.Psql("up/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2)")
			var s struct{ ID string }
			if err := json.Unmarshal([]byte(e.OK("snapshot", "create", "up/main", "--json").Stdout), &s); err != nil {
				e.T.Fatal(err)
			}
			snap = s.ID
			e.Psql("up/main", "INSERT INTO t VALUES (3)")
		},
		args: func() []string { return []string{"snapshot", "push", snap} },
		done: func() bool { _, err := os.Stat(manifest()); return err == nil },
		check: func() {
			parts, _ := filepath.Glob(srv.Dir("up/snapshots/" + snap + "/data.tar.*"))
			if len(parts) == 0 {
				e.T.Fatalf("snapshot %s pushed without its data", snap)
			}
		},
		undo: func() { srv.Delete(e.T, "up/snapshots/"+snap+"/") },
		keep: true, // the restore below reads it
	}, {
		name:    "project create --from-archive",
		drivers: []string{"btrfs"},
		setup: func() {
			// The segment of the last commit archived, then uploaded.
			seg := e.Psql("up/main", "SELECT pg_walfile_name(pg_switch_wal())")
			deadline := time.Now().Add(30 * time.Second)
			for e.Psql("up/main", "SELECT coalesce(last_archived_wal, '') >= '"+seg+"' FROM pg_stat_archiver") != "t" {
				if time.Now().After(deadline) {
					e.T.Fatalf("segment %s not archived within 30s", seg)
				}
				time.Sleep(200 * time.Millisecond)
			}
			e.OK("wal", "push", "up")
		},
		args: func() []string { return append([]string{"project", "create", "far", "--pool", e.Pool}, from...) },
		done: func() bool { return e.Run("project", "get", "far").Code == 0 },
		check: func() {
			if got := e.Rows("far/main", "SELECT v FROM t ORDER BY v"); got != "1,2,3" {
				e.T.Fatalf("far/main has rows %s, want 1,2,3", got)
			}
		},
		undo: func() { e.OK("project", "delete", "far") },
	}}
}
