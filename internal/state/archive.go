package state

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ArchiveObject is one file of a volume's WAL archive that is in the
// project's bucket, its checksum verified there after the upload.
type ArchiveObject struct {
	VolumeID   string
	Name       string // the file's name in the local archive
	Size       int64
	SHA256     string // hex
	ArchivedAt time.Time
	UploadedAt time.Time
}

// ArchiveStatus is how the project's last uploads went.
type ArchiveStatus struct {
	LastUploadAt time.Time // the last round that ended without an error
	LastError    string
	LastErrorAt  time.Time
}

// SetArchive records (or, with url "", clears) a project's archive in
// object storage. The records of uploads to any earlier location go: they
// describe another bucket.
func (t *Tx) SetArchive(ctx context.Context, projectID, url, endpoint string) error {
	if _, err := t.q.ExecContext(ctx, `UPDATE projects SET archive_url = ?, archive_endpoint = ? WHERE id = ?`, url, endpoint, projectID); err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM archive_objects WHERE project_id = ?`, `DELETE FROM archive_status WHERE project_id = ?`} {
		if _, err := t.q.ExecContext(ctx, q, projectID); err != nil {
			return err
		}
	}
	return nil
}

// RecordUpload records o as uploaded to url, only while the project's
// archive is still url: an uploader that raced a project set or delete
// records nothing. It reports whether it recorded.
func (t *Tx) RecordUpload(ctx context.Context, projectID, url string, o ArchiveObject) (bool, error) {
	res, err := t.q.ExecContext(ctx, `INSERT OR REPLACE INTO archive_objects (project_id, volume_id, name, size, sha256, archived_at, uploaded_at)
		SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM projects WHERE id = ? AND archive_url = ? AND archive_url != '')`,
		projectID, o.VolumeID, o.Name, o.Size, o.SHA256, fmtTime(o.ArchivedAt), fmtTime(o.UploadedAt), projectID, url)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// ArchiveObjects lists the uploaded files of one volume, by name.
func (t *Tx) ArchiveObjects(ctx context.Context, projectID, volumeID string) ([]ArchiveObject, error) {
	return queryAll(ctx, t, func(row scanner) (ArchiveObject, error) {
		var o ArchiveObject
		var archived, uploaded string
		err := row.Scan(&o.VolumeID, &o.Name, &o.Size, &o.SHA256, &archived, &uploaded)
		o.ArchivedAt, o.UploadedAt = parseTime(archived), parseTime(uploaded)
		return o, err
	}, `SELECT volume_id, name, size, sha256, archived_at, uploaded_at FROM archive_objects WHERE project_id = ? AND volume_id = ? ORDER BY name`, projectID, volumeID)
}

// ForgetUpload removes the record of an object deleted from the bucket.
func (t *Tx) ForgetUpload(ctx context.Context, projectID, volumeID, name string) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM archive_objects WHERE project_id = ? AND volume_id = ? AND name = ?`, projectID, volumeID, name)
	return err
}

// RecordUploadRound records how an upload round of the project ended:
// errText "" for a success (at is then the last upload), else its error.
func (t *Tx) RecordUploadRound(ctx context.Context, projectID string, at time.Time, errText string) error {
	if errText == "" {
		_, err := t.q.ExecContext(ctx, `INSERT INTO archive_status (project_id, last_upload_at) VALUES (?, ?)
			ON CONFLICT (project_id) DO UPDATE SET last_upload_at = excluded.last_upload_at, last_error = '', last_error_at = ''`, projectID, fmtTime(at))
		return err
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO archive_status (project_id, last_error, last_error_at) VALUES (?, ?, ?)
		ON CONFLICT (project_id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at`, projectID, errText, fmtTime(at))
	return err
}

// UploadStatus returns how the project's last uploads went (zero when
// none ran).
func (t *Tx) UploadStatus(ctx context.Context, projectID string) (ArchiveStatus, error) {
	var s ArchiveStatus
	var up, errAt string
	err := t.q.QueryRowContext(ctx, `SELECT last_upload_at, last_error, last_error_at FROM archive_status WHERE project_id = ?`, projectID).Scan(&up, &s.LastError, &errAt)
	if err != nil {
		return ArchiveStatus{}, notFoundOK(err)
	}
	if up != "" {
		s.LastUploadAt = parseTime(up)
	}
	if errAt != "" {
		s.LastErrorAt = parseTime(errAt)
	}
	return s, nil
}

// notFoundOK is nil for no row, else err.
func notFoundOK(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}
