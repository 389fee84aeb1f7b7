package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
)

// The snapshot a restore starts from: the newest, or the newest a
// recovery to --pitr (a time or an LSN) can start from; none before the
// oldest.
func TestPickManifest(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ms := []Manifest{ // oldest first, as readManifests lists them
		{Snapshot: "s1", CreatedAt: t0, EndLSN: "0/3000000"},
		{Snapshot: "s2", CreatedAt: t0.Add(time.Hour), EndLSN: "0/9000000"},
	}
	loc := objstore.Location{Bucket: "b", Prefix: "p"}
	at := func(tg *pitrTarget) string {
		m, err := pickManifest(ms, tg, loc)
		if err != nil {
			return "error: " + err.Error()
		}
		return m.Snapshot
	}
	lsn := func(s string) *pitrTarget {
		l, err := pg.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return &pitrTarget{LSN: l, IsLSN: true}
	}
	for _, c := range []struct {
		target *pitrTarget
		want   string
	}{
		{nil, "s2"},
		{&pitrTarget{Time: t0.Add(30 * time.Minute)}, "s1"},
		{&pitrTarget{Time: t0.Add(time.Hour)}, "s2"},
		{lsn("0/5000000"), "s1"},
		{lsn("0/9000000"), "s2"},
	} {
		if got := at(c.target); got != c.want {
			t.Errorf("target %v: %s, want %s", c.target, got, c.want)
		}
	}
	_, err := pickManifest(ms, &pitrTarget{Time: t0.Add(-time.Minute)}, loc)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "before the oldest snapshot pushed to s3://b/p") {
		t.Errorf("a target before the oldest: %v", err)
	}
}

// restore_command names the credentials file and the bucket, quoted, and
// no secret.
func TestFetchCommand(t *testing.T) {
	e := &Engine{Home: "/var/lib/velo it's"}
	p := state.Project{ID: "pabc", Source: &state.Source{Archive: "s3://b/p", ArchiveEndpoint: "http://127.0.0.1:7070", ArchiveVolume: "v123", ArchiveRegion: "eu-west-1"}}
	cmd := e.fetchCommand(p, true)
	for _, want := range []string{"AWS_SHARED_CREDENTIALS_FILE='", `it'\''s`, "pabc.aws'", " wal fetch --archive 's3://b/p' --archive-endpoint 'http://127.0.0.1:7070' --volume 'v123' --standby %f %p", "AWS_REGION='eu-west-1'"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("restore_command %s lacks %s", cmd, want)
		}
	}
	if strings.Contains(e.fetchCommand(p, false), "--standby") {
		t.Error("a recovery's restore_command says --standby")
	}
}

// velo wal fetch refuses what is no WAL file name or volume ID before
// reaching the store.
func TestFetchWALRefuses(t *testing.T) {
	ctx := context.Background()
	for _, o := range []FetchWALOptions{
		{Archive: "s3://bucket/p", Volume: "v1", Name: "../etc/passwd", Path: "x"},
		{Archive: "s3://bucket/p", Volume: "v1", Name: "RECOVERYHISTORY", Path: "x"},
		{Archive: "s3://bucket/p", Volume: "../v", Name: "000000010000000000000001", Path: "x"},
	} {
		if err := FetchWAL(ctx, o); err == nil || errors.Is(err, errdefs.ErrStopRecovery) {
			t.Errorf("FetchWAL(%+v) = %v, want a plain refusal", o, err)
		}
	}
}
