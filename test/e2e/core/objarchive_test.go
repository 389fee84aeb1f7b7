package core

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohq/velo/internal/objstore/s3test"
	"github.com/velohq/velo/test/e2e/harness"
)

// The WAL archive in object storage (velo project set --archive), against
// a real S3 server (versitygw, s3test) and real Postgres under pgbench.

// archiveJSON is the archive document of status, project get and wal info.
type archiveJSON struct {
	URL          string  `json:"url"`
	LocalOnly    int     `json:"local_only"`
	InBucket     int     `json:"in_bucket"`
	LagSeconds   float64 `json:"lag_seconds"`
	Behind       bool    `json:"behind"`
	LastError    string  `json:"last_error"`
	LastUploadAt *string `json:"last_upload_at"`
}

type walJSON struct {
	Branch    string       `json:"branch"`
	Directory string       `json:"directory"`
	Archive   *archiveJSON `json:"archive"`
}

func (e *env) walInfo(ref string) walJSON {
	e.T.Helper()
	var ws []walJSON
	if err := json.Unmarshal([]byte(e.OK("wal", "info", ref, "--json").Stdout), &ws); err != nil || len(ws) != 1 {
		e.T.Fatalf("wal info %s --json: %v", ref, err)
	}
	return ws[0]
}

// projectArchive is project get --json's archive (nil: none).
func (e *env) projectArchive(name string) *archiveJSON {
	e.T.Helper()
	var p struct {
		Archive *archiveJSON `json:"archive"`
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", name, "--json").Stdout), &p); err != nil {
		e.T.Fatalf("project get %s --json: %v", name, err)
	}
	return p.Archive
}

// statusArchive is velo status --json's archive of project name.
func (e *env) statusArchive(name string) *archiveJSON {
	e.T.Helper()
	var st struct {
		Projects []struct {
			Name    string       `json:"name"`
			Archive *archiveJSON `json:"archive"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(e.OK("status", "--json").Stdout), &st); err != nil {
		e.T.Fatalf("status --json: %v", err)
	}
	for _, p := range st.Projects {
		if p.Name == name {
			return p.Archive
		}
	}
	e.T.Fatalf("status has no project %s", name)
	return nil
}

// startServeUploading starts velo serve with the uploader every second,
// in e's environment; its stderr is returned as it grows.
func (e *env) startServeUploading() func() string {
	e.T.Helper()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.T.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	cmd := exec.Command(harness.VeloBin, "serve", "--listen", free(), "--http", free(), "--upload-interval", "1s")
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home), e.Extra...)
	var mu sync.Mutex
	var log bytes.Buffer
	pr, err := cmd.StderrPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "routing on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	e.T.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		e.T.Fatal("velo serve did not start within 30s")
	}
	return func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
}

// eventually polls cond every half second until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// localFiles lists the archive files in dir (segments, .history, .backup).
func localFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		if !strings.HasPrefix(en.Name(), "archtemp") {
			out = append(out, en.Name())
		}
	}
	return out
}

// checkInBucket asserts every named file of the local archive dir is an
// object of the store with the same content.
func checkInBucket(t *testing.T, srv *s3test.Server, prefix, dir string, names []string) {
	t.Helper()
	vol := filepath.Base(dir)
	for _, n := range names {
		obj := srv.Dir(prefix + "/wal/" + vol + "/" + n)
		if _, err := os.Stat(obj); err != nil {
			t.Errorf("%s is not in the bucket: %v", n, err)
			continue
		}
		if got, want := fileSHA(t, obj), fileSHA(t, filepath.Join(dir, n)); got != want {
			t.Errorf("object of %s has sha256 %s, the local file %s", n, got, want)
		}
	}
}

// switchWAL closes the current segment of ref, so that it is archived.
func (e *env) switchWAL(ref string) {
	e.T.Helper()
	e.Psql(ref, "SELECT txid_current(); SELECT pg_switch_wal()")
}

// TestObjectArchive: a project's WAL archive copied to a real S3 server
// under pgbench writes, on demand (wal push) and by velo serve; the store
// stopped: segments wait locally, Postgres goes on archiving, status says
// uploads are behind, wal cleanup keeps what is not uploaded; the store
// back: velo serve catches up. Then the refusals.
func TestObjectArchive(t *testing.T) {
	pgbench := harness.PgbenchPath(t)
	srv := s3test.Start(t, "velo-wal-e2e")
	e := newEnv(t, "copy")
	awsHome := harness.TmpDir(t, "velo-aws-")
	e.Extra = srv.Env(awsHome)
	e.Create("demo")
	c := e.Conn("demo/main")
	if out, err := e.Pgbench(pgbench, c, "-i", "-q", "-s", "2"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}

	// Set it: the project records it and the marker names the project.
	e.OK("project", "set", "demo", "--archive", srv.URL("demo"), "--archive-endpoint", srv.Endpoint)
	if a := e.projectArchive("demo"); a == nil || a.URL != srv.URL("demo") {
		t.Fatalf("project get after set: archive %+v", a)
	}
	if b, err := os.ReadFile(srv.Dir("demo/velo-project.json")); err != nil || !strings.Contains(string(b), `"project_id":"p`) {
		t.Fatalf("marker: %q, %v", b, err)
	}
	// The same again is no change.
	e.OK("project", "set", "demo", "--archive", srv.URL("demo"), "--archive-endpoint", srv.Endpoint)

	// Under pgbench: wal push uploads what the archive holds.
	if out, err := e.Pgbench(pgbench, c, "-T", "4", "-c", "2"); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	e.switchWAL("demo/main")
	main := e.walInfo("demo/main")
	eventually(t, 30*time.Second, "the switched segment archived", func() bool {
		return len(localFiles(t, main.Directory)) >= 3
	})
	// What the archive holds before the push is in the bucket after it
	// (a segment archive_timeout closes meanwhile may be too).
	pushed := localFiles(t, main.Directory)
	type pushJSON []struct {
		Project  string   `json:"project"`
		Uploaded int      `json:"uploaded"`
		Already  int      `json:"already_uploaded"`
		Errors   []string `json:"errors"`
	}
	var push pushJSON
	r := e.OK("wal", "push", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &push); err != nil || len(push) != 1 || push[0].Uploaded < len(pushed) || len(push[0].Errors) != 0 {
		t.Fatalf("wal push --json: %v; want at least %d uploaded\n%s", err, len(pushed), r)
	}
	checkInBucket(t, srv, "demo", main.Directory, pushed)
	if a := e.walInfo("demo/main").Archive; a == nil || a.InBucket < len(pushed) {
		t.Fatalf("wal info after push: %+v; want %d in the bucket", a, len(pushed))
	}
	// Again: what was uploaded is not uploaded again.
	first := push[0].Uploaded
	r = e.OK("wal", "push", "demo", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &push); err != nil || len(push) != 1 || push[0].Already < first || len(push[0].Errors) != 0 {
		t.Errorf("second push: want the %d files of the first counted as uploaded before: %v\n%s", first, err, r)
	}

	// A branch whose archive no snapshot needs, for retention below.
	e.OK("branch", "create", "demo/dev")
	e.Psql("demo/dev", "CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g")
	e.switchWAL("demo/dev")
	dev := e.walInfo("demo/dev")
	eventually(t, 30*time.Second, "dev's segment archived", func() bool { return len(localFiles(t, dev.Directory)) > 0 })

	// velo serve uploads while it runs.
	serveLog := e.startServeUploading()
	eventually(t, 60*time.Second, "velo serve uploading everything", func() bool {
		a := e.statusArchive("demo")
		return a != nil && a.LocalOnly == 0 && a.LastUploadAt != nil
	})
	devUploaded := localFiles(t, dev.Directory)
	inBucket := func(dir, n string) bool {
		_, err := os.Stat(srv.Dir("demo/wal/" + filepath.Base(dir) + "/" + n))
		return err == nil
	}
	eventually(t, 60*time.Second, "dev's files in the bucket", func() bool {
		for _, n := range devUploaded {
			if !inBucket(dev.Directory, n) {
				return false
			}
		}
		return true
	})
	checkInBucket(t, srv, "demo", dev.Directory, devUploaded)

	// The store stops: Postgres is not blocked, segments wait locally.
	srv.Stop()
	if out, err := e.Pgbench(pgbench, c, "-T", "3", "-c", "2"); err != nil {
		t.Fatalf("pgbench with the store down: %v\n%s", err, out)
	}
	e.switchWAL("demo/main")
	e.Psql("demo/dev", "INSERT INTO t SELECT g FROM generate_series(1, 100000) g")
	e.switchWAL("demo/dev")
	if got := e.Psql("demo/main", "SELECT failed_count FROM pg_stat_archiver"); got != "0" {
		t.Errorf("archiving failed on main with the store down: failed_count %s", got)
	}
	eventually(t, 60*time.Second, "status saying uploads are behind", func() bool {
		a := e.statusArchive("demo")
		return a != nil && a.Behind && a.LocalOnly > 0 && a.LastError != ""
	})
	// The documents with an archive keep the JSON contract.
	for _, args := range [][]string{{"status"}, {"project", "get", "demo"}, {"wal", "info"}, {"wal", "cleanup", "demo/dev", "--days", "0", "--dry-run"}} {
		dec := json.NewDecoder(strings.NewReader(e.OK(append(args, "--json")...).Stdout))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%v --json: %v", args, err)
		}
		checkKeys(t, strings.Join(args, " ")+" --json", "", doc)
	}
	st := e.OK("status")
	if !strings.Contains(st.Stdout, "uploads BEHIND") {
		t.Errorf("status text does not say uploads are behind:\n%s", st.Stdout)
	}
	if r := e.Run("wal", "push", "demo"); r.Code != 1 || !strings.Contains(r.Stderr, "upload(s) failed") {
		t.Errorf("wal push with the store down: want exit 1 and the failure, got %s", r)
	}

	// Retention while the store is down: only what is in the bucket may
	// leave the local archive.
	devNow := localFiles(t, dev.Directory)
	var waiting []string
	for _, n := range devNow {
		// What the store's own disk lacks is what waits.
		if !inBucket(dev.Directory, n) && !strings.HasSuffix(n, ".history") && !strings.HasSuffix(n, ".backup") {
			waiting = append(waiting, n)
		}
	}
	if len(waiting) == 0 {
		t.Fatalf("no new segment of dev waits locally: %v (uploaded %v)", devNow, devUploaded)
	}
	var dry struct {
		Removed       []string `json:"removed"`
		RemovedRemote []string `json:"removed_from_bucket"`
		NotUploaded   []string `json:"kept_not_uploaded"`
	}
	if err := json.Unmarshal([]byte(e.OK("wal", "cleanup", "demo/dev", "--days", "0", "--dry-run", "--json").Stdout), &dry); err != nil {
		t.Fatal(err)
	}
	for _, n := range waiting {
		if slices.Contains(dry.Removed, n) || !slices.Contains(dry.NotUploaded, n) {
			t.Errorf("dry run: %s is not uploaded but would be removed (%+v)", n, dry)
		}
	}
	if len(dry.Removed) == 0 || len(dry.RemovedRemote) == 0 {
		t.Errorf("dry run removes nothing uploaded: %+v", dry)
	}
	if now := localFiles(t, dev.Directory); !slices.Equal(now, devNow) {
		t.Errorf("the dry run changed the local archive: %v -> %v", devNow, now)
	}
	r = e.Run("wal", "cleanup", "demo/dev", "--days", "0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "from the bucket") {
		t.Errorf("wal cleanup with the store down: want exit 1 saying the bucket's part failed, got %s", r)
	}
	for _, n := range waiting {
		if _, err := os.Stat(filepath.Join(dev.Directory, n)); err != nil {
			t.Errorf("wal cleanup removed %s, which is not in the bucket yet: %v", n, err)
		}
	}
	for _, n := range dry.Removed {
		if _, err := os.Stat(filepath.Join(dev.Directory, n)); err == nil {
			t.Errorf("wal cleanup kept %s, which is in the bucket", n)
		}
	}

	// The store is back: velo serve catches up by itself.
	srv.Restart()
	eventually(t, 120*time.Second, "velo serve catching up", func() bool {
		a := e.statusArchive("demo")
		return a != nil && a.LocalOnly == 0 && !a.Behind && a.LastError == ""
	})
	checkInBucket(t, srv, "demo", main.Directory, localFiles(t, main.Directory))
	checkInBucket(t, srv, "demo", dev.Directory, waiting)
	// Now the bucket's part too: dev's segments leave the bucket and the
	// local archive.
	e.OK("wal", "cleanup", "demo/dev", "--days", "0")
	for _, n := range append(waiting, dry.RemovedRemote...) {
		if _, err := os.Stat(srv.Dir("demo/wal/" + filepath.Base(dev.Directory) + "/" + n)); err == nil {
			t.Errorf("%s is still in the bucket after wal cleanup --days 0", n)
		}
	}
	// A snapshot pushed to the bucket keeps there the WAL a restore from
	// it replays, also once its local snapshot is deleted: a second host
	// restores from the bucket, not from this host.
	snap := strings.TrimSpace(e.OK("snapshot", "create", "demo/dev", "--push").Stdout)
	var manifest struct {
		Start string `json:"start_segment"`
	}
	if b, err := os.ReadFile(srv.Dir("demo/snapshots/" + snap + "/manifest.json")); err != nil || json.Unmarshal(b, &manifest) != nil || len(manifest.Start) != 24 {
		t.Fatalf("the pushed snapshot %s's manifest: %q, %v", snap, b, err)
	}
	e.Psql("demo/dev", "INSERT INTO t SELECT g FROM generate_series(1, 50000) g")
	e.switchWAL("demo/dev")
	e.switchWAL("demo/dev")
	var after []string // dev's segments from the pushed snapshot's start on
	eventually(t, 60*time.Second, "dev's new segments in the bucket", func() bool {
		after = nil
		for _, n := range localFiles(t, dev.Directory) {
			if len(n) == 24 && n[8:] >= manifest.Start[8:] {
				if !inBucket(dev.Directory, n) {
					return false
				}
				after = append(after, n)
			}
		}
		return len(after) >= 2
	})
	e.OK("snapshot", "delete", snap)
	var pc struct {
		Removed       []string `json:"removed"`
		RemovedRemote []string `json:"removed_from_bucket"`
		PushedFrom    string   `json:"kept_in_bucket_from"`
	}
	if err := json.Unmarshal([]byte(e.OK("wal", "cleanup", "demo/dev", "--days", "0", "--json").Stdout), &pc); err != nil || pc.PushedFrom != manifest.Start {
		t.Fatalf("wal cleanup demo/dev after a push: %+v, %v; want kept_in_bucket_from %s", pc, err, manifest.Start)
	}
	for _, n := range after {
		if !inBucket(dev.Directory, n) {
			t.Errorf("wal cleanup removed %s from the bucket, which the pushed snapshot %s (from %s) needs", n, snap, manifest.Start)
		}
		if _, err := os.Stat(filepath.Join(dev.Directory, n)); err == nil {
			t.Errorf("wal cleanup --days 0 kept %s locally: no local snapshot needs it and it is in the bucket", n)
		}
	}
	if r := e.OK("wal", "cleanup", "demo/dev", "--days", "0", "--dry-run"); !strings.Contains(r.Stdout, "Kept "+manifest.Start+" and later in "+srv.URL("demo")+": a pushed snapshot needs them") {
		t.Errorf("wal cleanup --dry-run does not say what the pushed snapshot keeps:\n%s", r.Stdout)
	}

	// snapshot cleanup in the bucket: the project's newest pushed snapshot
	// stays (what --from-archive restores); an older one goes, manifest
	// and parts; parts without a manifest (a push killed half way) go.
	type pushedJSON struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	var sc struct {
		Removed []pushedJSON `json:"removed_from_bucket"`
		Kept    []pushedJSON `json:"kept_in_bucket"`
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "cleanup", "demo/dev", "--days", "0", "--dry-run", "--json").Stdout), &sc); err != nil ||
		len(sc.Removed) != 0 || len(sc.Kept) != 1 || sc.Kept[0].ID != snap || !strings.Contains(sc.Kept[0].Reason, "newest") {
		t.Fatalf("snapshot cleanup --dry-run with one pushed snapshot: %+v, %v; want %s kept as the newest", sc, err, snap)
	}
	snap2 := strings.TrimSpace(e.OK("snapshot", "create", "demo/dev", "--push").Stdout)
	orphan := srv.Dir("demo/snapshots/s0123456789ab/data.tar.00000")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("a part whose push was killed"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.OK("snapshot", "cleanup", "demo/dev", "--days", "0")
	if !strings.Contains(r.Stdout, "Deleted "+snap) || !strings.Contains(r.Stdout, "from "+srv.URL("demo")) || !strings.Contains(r.Stdout, "Kept "+snap2+" in "+srv.URL("demo")) {
		t.Errorf("snapshot cleanup does not say what it did in the bucket:\n%s", r.Stdout)
	}
	if left, _ := filepath.Glob(srv.Dir("demo/snapshots/" + snap + "/*")); len(left) != 0 {
		t.Errorf("snapshot cleanup left %v of the older pushed snapshot %s", left, snap)
	}
	if _, err := os.Stat(srv.Dir("demo/snapshots/" + snap2 + "/manifest.json")); err != nil {
		t.Errorf("snapshot cleanup removed the newest pushed snapshot %s: %v", snap2, err)
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Errorf("snapshot cleanup left the orphan part %s", orphan)
	}
	if r := e.OK("snapshot", "list", "demo/dev"); strings.Contains(r.Stdout, snap2) {
		t.Errorf("snapshot cleanup --days 0 kept the local snapshot %s:\n%s", snap2, r.Stdout)
	}
	// main's archive from its snapshot's start on is needed: that stays,
	// locally and in the bucket; what is older goes from both.
	mainBefore := localFiles(t, main.Directory)
	var mc struct {
		Removed       []string `json:"removed"`
		RemovedRemote []string `json:"removed_from_bucket"`
		KeptFrom      string   `json:"kept_from"`
	}
	if err := json.Unmarshal([]byte(e.OK("wal", "cleanup", "demo/main", "--days", "0", "--json").Stdout), &mc); err != nil || mc.KeptFrom == "" {
		t.Fatalf("wal cleanup demo/main --json: %+v, %v", mc, err)
	}
	mainAfter := localFiles(t, main.Directory)
	for _, n := range mainBefore {
		needed := len(n) >= 24 && n[8:24] >= mc.KeptFrom[8:]
		_, local := os.Stat(filepath.Join(main.Directory, n))
		_, remote := os.Stat(srv.Dir("demo/wal/" + filepath.Base(main.Directory) + "/" + n))
		switch {
		case needed && (local != nil || remote != nil):
			t.Errorf("wal cleanup removed %s, which the snapshot from %s needs (local %v, bucket %v)", n, mc.KeptFrom, local, remote)
		case !needed && strings.HasPrefix(n, "0") && len(n) == 24 && (local == nil || remote == nil):
			t.Errorf("wal cleanup --days 0 kept %s, older than the snapshot's %s (local %v, bucket %v)", n, mc.KeptFrom, local, remote)
		}
	}
	checkInBucket(t, srv, "demo", main.Directory, mainAfter)

	// Refusals: nothing changes, and no secret shows anywhere.
	e.Create("other")
	refuse := func(code int, want string, env []string, args ...string) {
		t.Helper()
		before, beforeArchive := e.SnapshotState(), e.projectArchive("other")
		saved := e.Extra
		e.Extra = append(append([]string{}, e.Extra...), env...)
		r := e.Run(args...)
		e.Extra = saved
		if r.Code != code || !strings.Contains(r.Stderr, want) {
			t.Errorf("velo %s: want exit %d and %q, got %s", strings.Join(args, " "), code, want, r)
		}
		if strings.Contains(r.Stderr+r.Stdout, srv.SecretKey) || strings.Contains(r.Stderr+r.Stdout, "wrong-secret") {
			t.Errorf("velo %s shows a secret: %s", strings.Join(args, " "), r)
		}
		if after, afterArchive := e.SnapshotState(), e.projectArchive("other"); after != before || fmt.Sprint(afterArchive) != fmt.Sprint(beforeArchive) {
			t.Errorf("velo %s changed things: %s / %v -> %s / %v", strings.Join(args, " "), before, beforeArchive, after, afterArchive)
		}
	}
	ep := "--archive-endpoint=" + srv.Endpoint
	refuse(2, "holds the WAL archive of another project", nil, "project", "set", "other", "--archive", srv.URL("demo"), ep)
	refuse(2, "bucket velo-nosuch-bucket does not exist", nil, "project", "set", "other", "--archive", "s3://velo-nosuch-bucket/other", ep)
	refuse(2, "refused the credentials", []string{"AWS_SECRET_ACCESS_KEY=wrong-secret-value"}, "project", "set", "other", "--archive", srv.URL("other"), ep)
	refuse(2, "refused the credentials", []string{"AWS_ACCESS_KEY_ID=nobody"}, "project", "set", "other", "--archive", srv.URL("other"), ep)
	refuse(1, "object store", nil, "project", "set", "other", "--archive", srv.URL("other"), "--archive-endpoint=http://127.0.0.1:1")
	refuse(2, "has no use with --archive none", nil, "project", "set", "other", "--archive", "none", ep)
	refuse(2, "nothing to set", nil, "project", "set", "other")
	refuse(2, "must not hold credentials", nil, "project", "set", "other", "--archive", srv.URL("other"), "--archive-endpoint=http://k:s@127.0.0.1:1")
	refuse(2, "has no archive in object storage", nil, "wal", "push", "other")
	if _, err := os.Stat(srv.Dir("other/velo-project.json")); err == nil {
		t.Error("a refused project set left a marker in the bucket")
	}
	// project create with another project's prefix: no project made.
	refuse(2, "holds the WAL archive of another project", nil, "project", "create", "third", "--pool", e.Pool, "--storage", "copy", "--archive", srv.URL("demo"), ep)
	if r := e.Run("project", "get", "third"); r.Code != 2 {
		t.Errorf("project third exists after a refused create: %s", r)
	}
	// project create --archive on a free prefix.
	e.OK("project", "create", "third", "--pool", e.Pool, "--storage", "copy", "--archive", srv.URL("third"), ep)
	if a := e.projectArchive("third"); a == nil || a.URL != srv.URL("third") {
		t.Errorf("project create --archive: archive %+v", a)
	}
	e.OK("project", "delete", "third")

	// --archive none: off, and wal push has nothing to do for it.
	e.OK("project", "set", "demo", "--archive", "none")
	if a := e.projectArchive("demo"); a != nil {
		t.Errorf("archive after --archive none: %+v", a)
	}
	if r := e.Run("wal", "push", "demo"); r.Code != 2 {
		t.Errorf("wal push of a project with no archive: %s", r)
	}

	// No secret in the state, the logs, or what velo serve printed.
	if strings.Contains(serveLog(), srv.SecretKey) {
		t.Error("velo serve's output shows the secret key")
	}
	if !strings.Contains(serveLog(), "uploader: uploads failed") {
		t.Errorf("velo serve did not log the failed uploads:\n%s", serveLog())
	}
	_ = filepath.WalkDir(e.Home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(srv.SecretKey)) {
			t.Errorf("%s holds the secret key", p)
		}
		return nil
	})
}

// Hostile cases of the archive's commands and flags (TestHostileInput
// merges them into its own). The bucket named is never reached: every
// value varied is refused before anything is asked of a store.
var archiveLeaves = map[string]leaf{
	"project set": {kind: argName, arg: "demo", flags: [][2]string{{"archive", "s3://velo-hostile/x"}}},
	"wal push":    {kind: argName, optional: true, arg: "demo"},
	// PATH varied; the file and every flag valid, so that each hostile
	// value is refused before the store (never reached) is asked.
	"wal fetch": {kind: argPath, first: "000000010000000000000001", arg: "pg_wal/RECOVERYXLOG",
		flags: [][2]string{{"archive", "s3://velo-hostile/x"}, {"volume", "v1"}}},
}

var archiveRules = []string{"use s3://BUCKET/PREFIX", "--archive: give s3://BUCKET/PREFIX"}

var archiveStringFlags = map[string]stringFlag{
	"from-archive": {rules: archiveRules, extra: []string{"s3://", "s3://UPPER/x", "s3://ab", "s3://velo-wal/../x", "NONE", "http://velo-wal/x"}},
	"volume":       {rules: []string{"is not a volume ID"}, extra: []string{"V1", "v/1", "../v"}},
	"archive":      {rules: archiveRules, extra: []string{"s3://", "s3://UPPER/x", "s3://ab", "s3://velo-wal/../x", "s3://velo-wal/a b", "s3://velo-wal/x?y", "s3://velo..wal/x", "NONE", "http://velo-wal/x", "s3://velo-wal/dеmo"}},
	"archive-endpoint": {rules: append([]string{"use an http:// or https:// URL", "must not hold credentials"}, archiveRules...),
		extra: []string{"ftp://x", "http://", "http://h:0", "http://h:99999", "http://k:s@h", "http://h/?a=b", "http://dеmo.example", "http://h#x", "s3.example.com"}},
}
