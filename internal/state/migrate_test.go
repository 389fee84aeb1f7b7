package state

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestOpenNewHomeAtOnce opens a new home from several stores at the same
// moment, as velo processes started together do: each opens it, and the
// migrations run once.
func TestOpenNewHomeAtOnce(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		home := filepath.Join(t.TempDir(), "home")
		const n = 8
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, err := Open(ctx, home)
				if err == nil {
					_, err = s.Q().Projects(ctx)
					s.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, open %d: %v", round, i, err)
			}
		}
		s, err := Open(ctx, home)
		if err != nil {
			t.Fatal(err)
		}
		var rows, v int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &v); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || v != len(migrations) {
			t.Errorf("round %d: schema_version has %d rows, version %d; want 1 row, version %d", round, rows, v, len(migrations))
		}
		s.Close()
	}
}

// TestPITRTargetMigration opens a home made before migration 6 (a branch
// recorded without a PITR target): the branch reads with none; a new
// point-in-time branch keeps its target, and a reset (SwapVolume) drops it.
func TestPITRTargetMigration(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the schema before pitr_target (migration 6) and what came
	// after it, as an older velo left it, with one branch.
	for _, q := range []string{
		`ALTER TABLE branches DROP COLUMN pitr_target`,
		`ALTER TABLE branches DROP COLUMN protected`,
		`ALTER TABLE branches DROP COLUMN expires_at`,
		`ALTER TABLE projects DROP COLUMN runtime`,
		`ALTER TABLE projects DROP COLUMN image`,
		`ALTER TABLE projects DROP COLUMN archive_url`,
		`ALTER TABLE projects DROP COLUMN archive_endpoint`,
		`DROP TABLE archive_objects`,
		`DROP TABLE archive_status`,
		`ALTER TABLE branches DROP COLUMN suspended_at`,
		`ALTER TABLE branches DROP COLUMN idle_seconds`,
		`ALTER TABLE projects DROP COLUMN idle_seconds`,
		`ALTER TABLE snapshots DROP COLUMN end_lsn`,
		`ALTER TABLE branches DROP COLUMN pitr_lsn`,
		`ALTER TABLE projects DROP COLUMN mask`,
		`ALTER TABLE branches DROP COLUMN masked`,
		`ALTER TABLE snapshots DROP COLUMN masked`,
		fmt.Sprintf(`UPDATE schema_version SET version = %d`, 5),
		`INSERT INTO projects (id, name, driver, pool, pg_major, created_at) VALUES ('p1', 'demo', 'copy', '/x', 17, '2026-01-01T00:00:00Z')`,
		`INSERT INTO branches (id, project_id, name, volume_id, port, password, created_at) VALUES ('b1', 'p1', 'main', 'v1', 20001, 'pw', '2026-01-01T00:00:00Z')`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s, err = Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A project from before --image runs natively.
	if p, err := s.Q().Project(ctx, "demo"); err != nil || p.Runtime != RuntimeNative || p.Image != "" {
		t.Fatalf("old project after migration: %+v, %v; want the native runtime, no image", p, err)
	}
	if p, err := s.Q().Project(ctx, "demo"); err != nil || p.Mask != "" {
		t.Fatalf("old project after migration: %+v, %v; want no mask", p, err)
	}
	if b, err := s.Q().Branch(ctx, "p1", "main"); err != nil || b.PITRLSN != "" || b.Masked {
		t.Fatalf("old branch after migration: %+v, %v; want no PITR LSN, unmasked", b, err)
	}
	if b, err := s.Q().Branch(ctx, "p1", "main"); err != nil || !b.PITRTarget.IsZero() || b.Protected || !b.ExpiresAt.IsZero() || !b.SuspendedAt.IsZero() || b.IdleSeconds != 0 {
		t.Fatalf("old branch after migration: %+v, %v; want no PITR target, unprotected, no expiry, not suspended, the project's idle timeout", b, err)
	}
	// Suspended until started or stopped by the user; idle timeouts kept.
	suspended := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := s.Q().SetSuspended(ctx, "b1", suspended); err != nil {
		t.Fatal(err)
	}
	if err := s.Q().SetBranchIdle(ctx, "b1", IdleNever); err != nil {
		t.Fatal(err)
	}
	if err := s.Q().SetProjectIdle(ctx, "p1", 600); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Q().Branch(ctx, "p1", "main"); !b.SuspendedAt.Equal(suspended) || b.IdleSeconds != IdleNever {
		t.Errorf("after suspend and --idle never: %+v", b)
	}
	if p, _ := s.Q().Project(ctx, "demo"); p.IdleSeconds != 600 {
		t.Errorf("project idle = %d, want 600", p.IdleSeconds)
	}
	if err := s.Q().SetWantRunning(ctx, "b1", true); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Q().Branch(ctx, "p1", "main"); !b.SuspendedAt.IsZero() {
		t.Errorf("a started branch is still suspended since %s", b.SuspendedAt)
	}
	expires := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := s.Q().SetProtected(ctx, "b1", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Q().SetExpiry(ctx, "b1", expires); err != nil {
		t.Fatal(err)
	}
	if err := s.Q().RenameBranch(ctx, "b1", "trunk"); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Q().Branch(ctx, "p1", "trunk"); err != nil || !b.Protected || !b.ExpiresAt.Equal(expires) {
		t.Fatalf("after protect, expiry and rename: %+v, %v", b, err)
	}
	if err := s.Q().SetExpiry(ctx, "b1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Q().RenameBranch(ctx, "b1", "main"); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Q().Branch(ctx, "p1", "main"); !b.ExpiresAt.IsZero() {
		t.Errorf("--no-expiry left %s", b.ExpiresAt)
	}
	target := time.Date(2026, 1, 2, 3, 4, 5, 678900000, time.UTC)
	at := Branch{ID: "b2", ProjectID: "p1", Name: "at", ParentID: "b1", VolumeID: "v2", OriginSnapshotID: "s1", Port: 20002, Password: "pw", CreatedAt: target.Add(time.Hour), PITRTarget: target}
	if err := s.Q().InsertBranch(ctx, at); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Q().Branch(ctx, "p1", "at"); err != nil || !got.PITRTarget.Equal(target) || got.OriginSnapshotID != "s1" {
		t.Errorf("point-in-time branch = %+v, %v; want target %s from s1", got, err, target)
	}
	if err := s.Q().SwapVolume(ctx, "b2", "v3", "s2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Q().Branch(ctx, "p1", "at"); !got.PITRTarget.IsZero() {
		t.Errorf("after a reset the branch still has PITR target %s", got.PITRTarget)
	}
}

// TestSnapshotMaskedMigration: snapshots taken of a masked branch before
// snapshots recorded it are marked masked by the migration.
func TestSnapshotMaskedMigration(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")
	s, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE snapshots DROP COLUMN masked`,
		fmt.Sprintf(`UPDATE schema_version SET version = %d`, len(migrations)-1),
		`INSERT INTO projects (id, name, driver, pool, pg_major, created_at) VALUES ('p1', 'demo', 'copy', '/x', 17, '2026-01-01T00:00:00Z')`,
		`INSERT INTO branches (id, project_id, name, volume_id, port, password, created_at, masked) VALUES ('b1', 'p1', 'main', 'v1', 20001, 'pw', '2026-01-01T00:00:00Z', 0), ('b2', 'p1', 'dev', 'v2', 20002, 'pw', '2026-01-01T00:00:00Z', 1)`,
		`INSERT INTO snapshots (id, project_id, branch_id, volume_id, label, user, backup_label, wal_start, created_at) VALUES ('s1', 'p1', 'b1', 'v1', '', 0, '', '', '2026-01-01T00:00:00Z'), ('s2', 'p1', 'b2', 'v2', '', 1, '', '', '2026-01-01T00:00:00Z')`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	if s, err = Open(ctx, home); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[string]bool{"s1": false, "s2": true} {
		if sn, err := s.Q().Snapshot(ctx, id); err != nil || sn.Masked != want {
			t.Errorf("snapshot %s after the migration: masked %v (%v), want %v", id, sn.Masked, err, want)
		}
	}
}
