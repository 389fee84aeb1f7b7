package state

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestUploadRecords: an upload is recorded only while the project's
// archive is the one uploaded to; changing or clearing the archive drops
// the records of the old one; a project's delete drops them too.
func TestUploadRecords(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := s.Q()
	if err := q.InsertProject(ctx, Project{ID: "p1", Name: "demo", Driver: "copy", Pool: "/x", PGMajor: 17, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	o := ArchiveObject{VolumeID: "v1", Name: "000000010000000000000001", Size: 16, SHA256: "ab", ArchivedAt: time.Now(), UploadedAt: time.Now()}
	if ok, err := q.RecordUpload(ctx, "p1", "s3://b/demo", o); err != nil || ok {
		t.Fatalf("record with no archive set = %v, %v; want nothing recorded", ok, err)
	}
	if err := q.SetArchive(ctx, "p1", "s3://b/demo", "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if p, err := q.Project(ctx, "demo"); err != nil || p.Archive != "s3://b/demo" || p.ArchiveEndpoint != "http://127.0.0.1:1" {
		t.Fatalf("project = %+v, %v", p, err)
	}
	if ok, err := q.RecordUpload(ctx, "p1", "s3://b/demo", o); err != nil || !ok {
		t.Fatalf("record = %v, %v", ok, err)
	}
	if ok, _ := q.RecordUpload(ctx, "p1", "s3://b/other", o); ok {
		t.Fatal("an upload to another location was recorded")
	}
	if objs, err := q.ArchiveObjects(ctx, "p1", "v1"); err != nil || len(objs) != 1 || objs[0].Size != 16 || objs[0].SHA256 != "ab" {
		t.Fatalf("objects = %+v, %v", objs, err)
	}
	if err := q.RecordUploadRound(ctx, "p1", time.Now(), "store down"); err != nil {
		t.Fatal(err)
	}
	if st, err := q.UploadStatus(ctx, "p1"); err != nil || st.LastError != "store down" || st.LastErrorAt.IsZero() {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if err := q.RecordUploadRound(ctx, "p1", time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.UploadStatus(ctx, "p1"); st.LastError != "" || st.LastUploadAt.IsZero() {
		t.Fatalf("status after a good round = %+v", st)
	}
	if err := q.SetArchive(ctx, "p1", "s3://b/elsewhere", ""); err != nil {
		t.Fatal(err)
	}
	if objs, _ := q.ArchiveObjects(ctx, "p1", "v1"); len(objs) != 0 {
		t.Fatalf("records of the old location kept: %+v", objs)
	}
	if _, err := q.RecordUpload(ctx, "p1", "s3://b/elsewhere", o); err != nil {
		t.Fatal(err)
	}
	if err := q.ForgetUpload(ctx, "p1", "v1", o.Name); err != nil {
		t.Fatal(err)
	}
	if objs, _ := q.ArchiveObjects(ctx, "p1", "v1"); len(objs) != 0 {
		t.Fatalf("forgotten record kept: %+v", objs)
	}
	if _, err := q.RecordUpload(ctx, "p1", "s3://b/elsewhere", o); err != nil {
		t.Fatal(err)
	}
	if err := q.DeleteProject(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM archive_objects) + (SELECT count(*) FROM archive_status)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d archive records left after the project's delete (%v)", n, err)
	}
}
