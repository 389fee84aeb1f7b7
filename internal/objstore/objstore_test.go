package objstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/objstore/s3test"
)

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]objstore.Location{
		"s3://velo-wal":           {Bucket: "velo-wal"},
		"s3://velo-wal/":          {Bucket: "velo-wal"},
		"s3://velo-wal/team/demo": {Bucket: "velo-wal", Prefix: "team/demo"},
		"s3://velo.wal/demo/":     {Bucket: "velo.wal", Prefix: "demo"},
	} {
		got, err := objstore.ParseLocation(in)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "velo-wal", "http://velo-wal/x", "s3://", "s3://UPPER/x", "s3://ab", "s3://velo-wal/../x", "s3://velo-wal/a b", "s3://velo-wal/x?y"} {
		if _, err := objstore.ParseLocation(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseLocation(%q) = %v; want an invalid-input error", in, err)
		}
	}
	for _, in := range []string{"ftp://x", "s3.example.com", "http://key:secret@s3.example.com", "http://", "http://h:0", "http://h:99999", "http://h/?a=b", "http://dеmo.example", "http://h/a b", "http://h#x"} {
		if err := objstore.ValidateEndpoint(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ValidateEndpoint(%q) = %v; want an invalid-input error", in, err)
		}
	}
	for _, in := range []string{"", "http://127.0.0.1:9000", "https://s3.example.com", "https://s3.example.com/base", "http://[::1]:7070"} {
		if err := objstore.ValidateEndpoint(in); err != nil {
			t.Errorf("ValidateEndpoint(%q) = %v; want it accepted", in, err)
		}
	}
}

func open(t *testing.T, srv *s3test.Server, url string) *objstore.Store {
	t.Helper()
	for _, kv := range srv.Env(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	loc, err := objstore.ParseLocation(url)
	if err != nil {
		t.Fatal(err)
	}
	st, err := objstore.Open(context.Background(), loc, srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStoreRoundTrip writes, reads back, refuses to overwrite with other
// content and refuses corrupt content on a real S3 server.
func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "velo-s3-test")
	st := open(t, srv, srv.URL("proj"))
	if err := st.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "seg")
	if err := os.WriteFile(src, []byte(strings.Repeat("wal", 100000)), 0o600); err != nil {
		t.Fatal(err)
	}
	obj, err := st.PutFile(ctx, "wal/v1/000000010000000000000001", src)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if obj.Size != 300000 || len(obj.SHA256) != 64 || obj.Key != "proj/wal/v1/000000010000000000000001" {
		t.Fatalf("put returned %+v", obj)
	}
	// Again, same content: fine, nothing written.
	if _, err := st.PutFile(ctx, "wal/v1/000000010000000000000001", src); err != nil {
		t.Fatalf("second put of the same content: %v", err)
	}
	// Other content under the same name: refused, the object unchanged.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("different"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutFile(ctx, "wal/v1/000000010000000000000001", other); !errors.Is(err, objstore.ErrConflict) {
		t.Fatalf("put of other content = %v; want ErrConflict", err)
	}
	back := filepath.Join(dir, "back")
	if err := st.GetFile(ctx, "wal/v1/000000010000000000000001", back); err != nil {
		t.Fatalf("get: %v", err)
	}
	if b, _ := os.ReadFile(back); string(b) != strings.Repeat("wal", 100000) {
		t.Fatalf("got back %d bytes that differ from what was written", len(b))
	}
	objs, err := st.List(ctx, "wal/v1")
	if err != nil || len(objs) != 1 || objs[0].Key != "proj/wal/v1/000000010000000000000001" {
		t.Fatalf("list = %+v, %v", objs, err)
	}
	// Corrupt the object behind the server's back: the download is refused
	// by name and nothing is left at the destination.
	if err := os.WriteFile(srv.Dir("proj/wal/v1/000000010000000000000001"), []byte(strings.Repeat("waX", 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	err = st.GetFile(ctx, "wal/v1/000000010000000000000001", bad)
	if err == nil || !strings.Contains(err.Error(), "proj/wal/v1/000000010000000000000001 is corrupt") {
		t.Fatalf("get of corrupt object = %v; want a refusal naming it", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a corrupt download left %s behind", bad)
	}
	if err := st.GetFile(ctx, "wal/v1/missing", bad); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "proj/wal/v1/missing") {
		t.Fatalf("get of missing object = %v; want not found naming it", err)
	}
}

// TestStoreRefusals: a missing bucket and wrong credentials give errors
// that say so, and never show the secret.
func TestStoreRefusals(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "velo-s3-test")
	st := open(t, srv, "s3://velo-s3-nosuch/x")
	if err := st.Check(ctx); err == nil || !strings.Contains(err.Error(), "velo-s3-nosuch") {
		t.Fatalf("check of a missing bucket = %v", err)
	}
	st = open(t, srv, srv.URL("x"))
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
	st, _ = objstore.Open(ctx, st.Loc, srv.Endpoint)
	err := st.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("check with a wrong secret = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("the error shows a secret: %v", err)
	}
	_, err = st.PutBytes(ctx, "x", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("put with a wrong secret = %v", err)
	}
}

// BenchmarkPutFile uploads WAL-segment-sized files (16 MiB) to a real
// versitygw on loopback, each written, checksummed by the store and read
// back: the upload throughput velo wal push and velo serve reach here.
func BenchmarkPutFile(b *testing.B) {
	ctx := context.Background()
	srv := s3test.Start(b, "velo-s3-bench")
	for _, kv := range srv.Env(b.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	loc, _ := objstore.ParseLocation(srv.URL("bench"))
	st, err := objstore.Open(ctx, loc, srv.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	seg := filepath.Join(b.TempDir(), "seg")
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.PutFile(ctx, "wal/v1/seg"+strconv.Itoa(i), seg); err != nil {
			b.Fatal(err)
		}
	}
}
