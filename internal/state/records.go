package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/velohq/velo/internal/errdefs"
)

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errdefs.NotFound("%s does not exist", what)
	}
	return err
}

// scanner is a row or rows being read.
type scanner interface{ Scan(...any) error }

// queryAll runs query and reads every row with scan.
func queryAll[T any](ctx context.Context, t *Tx, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := t.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanString(row scanner) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}

// InsertProject records a new project.
func (t *Tx) InsertProject(ctx context.Context, p Project) error {
	if p.ArchiveTimeout == 0 {
		p.ArchiveTimeout = 60
	}
	src, err := encodeSource(p.Source)
	if err != nil {
		return err
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO projects (id, name, driver, pool, pg_major, archive_timeout, listen, created_at, source, runtime, image, archive_url, archive_endpoint, mask, idle_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Name, p.Driver, p.Pool, p.PGMajor, p.ArchiveTimeout, p.Listen, fmtTime(p.CreatedAt), src, runtimeName(p.Runtime), p.Image, p.Archive, p.ArchiveEndpoint, p.Mask, p.IdleSeconds)
	return err
}

// SetMask records a project's default mask script ("" for none).
func (t *Tx) SetMask(ctx context.Context, projectID, mask string) error {
	_, err := t.q.ExecContext(ctx, `UPDATE projects SET mask = ? WHERE id = ?`, mask, projectID)
	return err
}

// SetSource records where a project's data now comes from (a refresh, or
// main no longer following).
func (t *Tx) SetSource(ctx context.Context, projectID string, s *Source) error {
	src, err := encodeSource(s)
	if err != nil {
		return err
	}
	_, err = t.q.ExecContext(ctx, `UPDATE projects SET source = ? WHERE id = ?`, src, projectID)
	return err
}

func encodeSource(s *Source) (string, error) {
	if s == nil {
		return "", nil
	}
	b, err := json.Marshal(s)
	return string(b), err
}

const projectCols = `id, name, driver, pool, pg_major, archive_timeout, listen, created_at, source, runtime, image, archive_url, archive_endpoint, idle_seconds, mask`

func scanProject(row scanner) (Project, error) {
	var p Project
	var created, src string
	err := row.Scan(&p.ID, &p.Name, &p.Driver, &p.Pool, &p.PGMajor, &p.ArchiveTimeout, &p.Listen, &created, &src, &p.Runtime, &p.Image, &p.Archive, &p.ArchiveEndpoint, &p.IdleSeconds, &p.Mask)
	p.CreatedAt = parseTime(created)
	if err == nil && src != "" {
		p.Source = &Source{}
		if jerr := json.Unmarshal([]byte(src), p.Source); jerr != nil {
			return p, fmt.Errorf("project %s: its source record: %w", p.Name, jerr)
		}
	}
	return p, err
}

// Project returns the project named name.
func (t *Tx) Project(ctx context.Context, name string) (Project, error) {
	p, err := scanProject(t.q.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE name = ?`, name))
	return p, notFound(err, "project "+name)
}

// ProjectByID returns the project with id.
func (t *Tx) ProjectByID(ctx context.Context, id string) (Project, error) {
	p, err := scanProject(t.q.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
	return p, notFound(err, "project "+id)
}

// Projects lists all projects by name.
func (t *Tx) Projects(ctx context.Context) ([]Project, error) {
	return queryAll(ctx, t, scanProject, `SELECT `+projectCols+` FROM projects ORDER BY name`)
}

// DeleteProject removes a project record and every record under it.
func (t *Tx) DeleteProject(ctx context.Context, id string) error {
	for _, q := range []string{
		`DELETE FROM retired_volumes WHERE project_id = ?`,
		`DELETE FROM archive_objects WHERE project_id = ?`,
		`DELETE FROM archive_status WHERE project_id = ?`,
		`DELETE FROM snapshots WHERE project_id = ?`,
		`UPDATE branches SET parent_id = NULL WHERE project_id = ?`,
		`DELETE FROM branches WHERE project_id = ?`,
		`DELETE FROM projects WHERE id = ?`,
	} {
		if _, err := t.q.ExecContext(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}

// InsertBranch records a new branch.
func (t *Tx) InsertBranch(ctx context.Context, b Branch) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO branches (id, project_id, name, parent_id, volume_id, origin_snapshot_id, port, password, want_running, created_at, pitr_target, protected, expires_at, suspended_at, idle_seconds, pitr_lsn, masked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.ProjectID, b.Name, nullable(b.ParentID), b.VolumeID, nullable(b.OriginSnapshotID), b.Port, b.Password, b.WantRunning, fmtTime(b.CreatedAt), fmtOptionalTime(b.PITRTarget), b.Protected, fmtOptionalTime(b.ExpiresAt),
		fmtOptionalTime(b.SuspendedAt), b.IdleSeconds, b.PITRLSN, b.Masked)
	return err
}

// SetWantRunning records whether the user wants b's server running; a
// branch started, or stopped by the user, is no longer suspended.
func (t *Tx) SetWantRunning(ctx context.Context, branchID string, want bool) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET want_running = ?, suspended_at = '' WHERE id = ?`, want, branchID)
	return err
}

// SetSuspended records that velo serve stopped a branch for want of
// clients, at at.
func (t *Tx) SetSuspended(ctx context.Context, branchID string, at time.Time) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET suspended_at = ? WHERE id = ?`, fmtTime(at), branchID)
	return err
}

// SetBranchIdle records a branch's idle timeout (0 its project's default,
// IdleNever never).
func (t *Tx) SetBranchIdle(ctx context.Context, branchID string, seconds int) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET idle_seconds = ? WHERE id = ?`, seconds, branchID)
	return err
}

// SetProjectIdle records a project's default idle timeout (0 never).
func (t *Tx) SetProjectIdle(ctx context.Context, projectID string, seconds int) error {
	_, err := t.q.ExecContext(ctx, `UPDATE projects SET idle_seconds = ? WHERE id = ?`, seconds, projectID)
	return err
}

// SwapVolume points a branch at a new volume (a reset). The new volume is
// a copy of the parent's current data, so the branch is no longer the
// parent as it was at a moment: its PITR target goes.
func (t *Tx) SwapVolume(ctx context.Context, branchID, volumeID, originSnapshotID string) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET volume_id = ?, origin_snapshot_id = ?, pitr_target = '', pitr_lsn = '' WHERE id = ?`, volumeID, nullable(originSnapshotID), branchID)
	return err
}

const branchCols = `id, project_id, name, COALESCE(parent_id, ''), volume_id, COALESCE(origin_snapshot_id, ''), port, password, want_running, created_at, pitr_target, protected, expires_at, suspended_at, idle_seconds, pitr_lsn, masked`

func scanBranch(row scanner) (Branch, error) {
	var b Branch
	var created, pitr, expires, suspended string
	err := row.Scan(&b.ID, &b.ProjectID, &b.Name, &b.ParentID, &b.VolumeID, &b.OriginSnapshotID, &b.Port, &b.Password, &b.WantRunning, &created, &pitr, &b.Protected, &expires, &suspended, &b.IdleSeconds, &b.PITRLSN, &b.Masked)
	if suspended != "" {
		b.SuspendedAt = parseTime(suspended)
	}
	b.CreatedAt = parseTime(created)
	if pitr != "" {
		b.PITRTarget = parseTime(pitr)
	}
	if expires != "" {
		b.ExpiresAt = parseTime(expires)
	}
	return b, err
}

// SetProtected records whether a branch is protected.
func (t *Tx) SetProtected(ctx context.Context, branchID string, protected bool) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET protected = ? WHERE id = ?`, protected, branchID)
	return err
}

// SetExpiry records when velo prune deletes a branch (zero: never).
func (t *Tx) SetExpiry(ctx context.Context, branchID string, at time.Time) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET expires_at = ? WHERE id = ?`, fmtOptionalTime(at), branchID)
	return err
}

// RenameBranch gives a branch a new name in its project.
func (t *Tx) RenameBranch(ctx context.Context, branchID, name string) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET name = ? WHERE id = ?`, name, branchID)
	return err
}

// SetParent gives a branch a new parent ("" for none: a project's main).
func (t *Tx) SetParent(ctx context.Context, branchID, parentID string) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET parent_id = ? WHERE id = ?`, nullable(parentID), branchID)
	return err
}

// RenameProject gives a project a new name.
func (t *Tx) RenameProject(ctx context.Context, projectID, name string) error {
	_, err := t.q.ExecContext(ctx, `UPDATE projects SET name = ? WHERE id = ?`, name, projectID)
	return err
}

// Branch returns the branch name of a project.
func (t *Tx) Branch(ctx context.Context, projectID, name string) (Branch, error) {
	b, err := scanBranch(t.q.QueryRowContext(ctx, `SELECT `+branchCols+` FROM branches WHERE project_id = ? AND name = ?`, projectID, name))
	return b, notFound(err, "branch "+name)
}

// BranchByID returns the branch with id.
func (t *Tx) BranchByID(ctx context.Context, id string) (Branch, error) {
	b, err := scanBranch(t.q.QueryRowContext(ctx, `SELECT `+branchCols+` FROM branches WHERE id = ?`, id))
	return b, notFound(err, "branch "+id)
}

// Branches lists a project's branches (all projects' when projectID is ""),
// oldest first.
func (t *Tx) Branches(ctx context.Context, projectID string) ([]Branch, error) {
	q := `SELECT ` + branchCols + ` FROM branches`
	var args []any
	if projectID != "" {
		q += ` WHERE project_id = ?`
		args = append(args, projectID)
	}
	return queryAll(ctx, t, scanBranch, q+` ORDER BY created_at, name`, args...)
}

// DeleteBranch removes a branch record; its snapshots stay, unowned.
func (t *Tx) DeleteBranch(ctx context.Context, id string) error {
	if _, err := t.q.ExecContext(ctx, `UPDATE snapshots SET branch_id = NULL WHERE branch_id = ?`, id); err != nil {
		return err
	}
	_, err := t.q.ExecContext(ctx, `DELETE FROM branches WHERE id = ?`, id)
	return err
}

// Ports returns the ports every branch holds.
func (t *Tx) Ports(ctx context.Context) (map[int]bool, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT port FROM branches`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out[p] = true
	}
	return out, rows.Err()
}

// InsertSnapshot records a snapshot.
func (t *Tx) InsertSnapshot(ctx context.Context, projectID string, s Snapshot) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO snapshots (id, project_id, branch_id, volume_id, label, user, backup_label, wal_start, created_at, end_lsn, masked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, projectID, nullable(s.BranchID), s.VolumeID, s.Label, s.User, s.BackupLabel, s.WALStart, fmtTime(s.CreatedAt), s.EndLSN, s.Masked)
	return err
}

const snapshotCols = `id, COALESCE(branch_id, ''), volume_id, label, user, backup_label, wal_start, created_at, end_lsn, masked`

func scanSnapshot(row scanner) (Snapshot, error) {
	var s Snapshot
	var created string
	err := row.Scan(&s.ID, &s.BranchID, &s.VolumeID, &s.Label, &s.User, &s.BackupLabel, &s.WALStart, &created, &s.EndLSN, &s.Masked)
	s.CreatedAt = parseTime(created)
	return s, err
}

// Snapshot returns the snapshot with id.
func (t *Tx) Snapshot(ctx context.Context, id string) (Snapshot, error) {
	s, err := scanSnapshot(t.q.QueryRowContext(ctx, `SELECT `+snapshotCols+` FROM snapshots WHERE id = ?`, id))
	return s, notFound(err, "snapshot "+id)
}

// Snapshots lists a project's snapshots, newest first.
func (t *Tx) Snapshots(ctx context.Context, projectID string) ([]Snapshot, error) {
	return queryAll(ctx, t, scanSnapshot, `SELECT `+snapshotCols+` FROM snapshots WHERE project_id = ? ORDER BY created_at DESC`, projectID)
}

// AllSnapshots lists every project's snapshots, newest first.
func (t *Tx) AllSnapshots(ctx context.Context) ([]Snapshot, error) {
	return queryAll(ctx, t, scanSnapshot, `SELECT `+snapshotCols+` FROM snapshots ORDER BY created_at DESC`)
}

// SnapshotProject returns the ID of the project a snapshot belongs to.
func (t *Tx) SnapshotProject(ctx context.Context, id string) (string, error) {
	var pid string
	err := t.q.QueryRowContext(ctx, `SELECT project_id FROM snapshots WHERE id = ?`, id).Scan(&pid)
	return pid, notFound(err, "snapshot "+id)
}

// DeleteSnapshot removes a snapshot record.
func (t *Tx) DeleteSnapshot(ctx context.Context, id string) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM snapshots WHERE id = ?`, id)
	return err
}

// RetireVolume records a volume a reset replaced.
func (t *Tx) RetireVolume(ctx context.Context, projectID, volumeID string) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO retired_volumes (id, project_id, retired_at) VALUES (?, ?, ?)`, volumeID, projectID, fmtTime(time.Now()))
	return err
}

// RetiredVolumes lists a project's retired volumes.
func (t *Tx) RetiredVolumes(ctx context.Context, projectID string) ([]string, error) {
	return queryAll(ctx, t, scanString, `SELECT id FROM retired_volumes WHERE project_id = ?`, projectID)
}

// DeleteRetiredVolume forgets a retired volume once it is destroyed.
func (t *Tx) DeleteRetiredVolume(ctx context.Context, id string) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM retired_volumes WHERE id = ?`, id)
	return err
}

// Operation is one journalled run of a changing command.
type Operation struct {
	ID        int64
	Command   string
	PID       int
	StartedAt time.Time
	Steps     []Step
}

// Step is one action an operation recorded before taking it, as stored:
// the engine's journal (engine/journal.go) writes and reads these strings
// through its typed step kinds and subjects.
type Step struct {
	Action  string // the step's kind, e.g. "create-volume", "start-server"
	Subject string // what it acts on, in the kind's layout, e.g. DRIVER:POOL:ID
	At      time.Time
}

// BeginOperation opens a journal entry for command.
func (s *Store) BeginOperation(ctx context.Context, command string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO operations (command, pid, started_at) VALUES (?, ?, ?)`, command, os.Getpid(), fmtTime(time.Now()))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// RecordStep journals an action before it is taken.
func (s *Store) RecordStep(ctx context.Context, op int64, action, subject string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO operation_steps (operation_id, seq, action, subject, at)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM operation_steps WHERE operation_id = ?), ?, ?, ?)`,
		op, op, action, subject, fmtTime(time.Now()))
	return err
}

// FinishOperation closes a journal entry: its steps need no repair.
func (s *Store) FinishOperation(ctx context.Context, op int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE operations SET finished_at = ? WHERE id = ?`, fmtTime(time.Now()), op)
	return err
}

// UnfinishedOperations lists journal entries whose command never finished.
func (s *Store) UnfinishedOperations(ctx context.Context) ([]Operation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, command, pid, started_at FROM operations WHERE finished_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var ops []Operation
	for rows.Next() {
		var o Operation
		var started string
		if err := rows.Scan(&o.ID, &o.Command, &o.PID, &started); err != nil {
			rows.Close()
			return nil, err
		}
		o.StartedAt = parseTime(started)
		ops = append(ops, o)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, err
	}
	for i := range ops {
		srows, err := s.db.QueryContext(ctx, `SELECT action, subject, at FROM operation_steps WHERE operation_id = ? ORDER BY seq`, ops[i].ID)
		if err != nil {
			return nil, err
		}
		for srows.Next() {
			var st Step
			var at string
			if err := srows.Scan(&st.Action, &st.Subject, &at); err != nil {
				srows.Close()
				return nil, err
			}
			st.At = parseTime(at)
			ops[i].Steps = append(ops[i].Steps, st)
		}
		err = srows.Err()
		srows.Close()
		if err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// SetPort gives a branch another port (a rebuild that found its own taken).
func (t *Tx) SetPort(ctx context.Context, branchID string, port int) error {
	_, err := t.q.ExecContext(ctx, `UPDATE branches SET port = ? WHERE id = ?`, port, branchID)
	return err
}

// runtimeName is the runtime recorded for a project: native unless named.
func runtimeName(r string) string {
	if r == "" {
		return RuntimeNative
	}
	return r
}
