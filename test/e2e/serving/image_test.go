package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/testenv"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestImage: a project made with --image runs main and every branch in
// containers of a Docker image (the tests' Debian PostgreSQL 15 with
// PostGIS, which the host's Postgres lacks), on btrfs and zfs: refusals
// that change nothing, PostGIS created and used in a branch and gone after
// a reset, stop and start, a container killed under load keeping every
// commit, point-in-time recovery from the mounted archive, start --all
// after every container died (a reboot), and doctor finding and removing
// a container no branch owns.
func TestImage(t *testing.T) {
	d := testenv.RequireDocker(t)
	image := testenv.PostGISImage(t, d)
	noPostgres := testenv.NoPostgresImage(t, d)
	for _, drv := range []string{"btrfs", "zfs"} {
		t.Run(drv, func(t *testing.T) {
			e := newEnv(t, drv)
			e.Extra = append(e.Extra, "DOCKER_HOST="+d.Host)
			t.Cleanup(func() { removeContainers(t, d, e.Home) })
			testImageRefusals(e, d, image, noPostgres)
			testImageDemo(e, image)
			testImageBranches(e, d, image)
			testImageWake(e, d, image)
		})
	}
}

func testImageRefusals(e *env, d *testenv.Docker, image, noPostgres string) {
	e.Refused([]string{"docker pull velo-test-no-such-image:1"}, "project", "create", "x", "--pool", e.Pool, "--image", "velo-test-no-such-image:1")
	e.Refused([]string{noPostgres, "PostgreSQL image"}, "project", "create", "x", "--pool", e.Pool, "--image", noPostgres)
	e.Refused([]string{"--pg-version 17", "PostgreSQL 15"}, "project", "create", "x", "--pool", e.Pool, "--image", image, "--pg-version", "17")
	e.Refused([]string{"--image with --from"}, "project", "create", "x", "--pool", e.Pool, "--image", image, "--from", "postgresql://u@127.0.0.1:1/db")
	saved := e.Extra
	e.Extra = append(append([]string{}, saved...), "DOCKER_HOST=unix:///nonexistent/velo-test-docker.sock")
	e.Refused([]string{"no Docker engine answers", "drop --image"}, "project", "create", "x", "--pool", e.Pool, "--image", image)
	e.Extra = saved
	if out := e.OK("project", "list", "--json").Stdout; strings.TrimSpace(out) != "[]" {
		e.T.Errorf("projects after the refusals: %s", out)
	}
}

// testImageDemo runs the seed's demo (scripts/demo.sh, which checks its
// own rows) on a project of the image.
func testImageDemo(e *env, image string) {
	script, err := filepath.Abs("../../../scripts/demo.sh")
	if err != nil {
		e.T.Fatal(err)
	}
	cmd := exec.Command("bash", script, "--pool", e.Pool, "--image", image)
	cmd.Env = append(append(os.Environ(), "VELO="+harness.VeloBin, "VELO_HOME="+e.Home), e.Extra...)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Done:") {
		e.T.Fatalf("demo.sh --image %s: %v\n%s", image, err, out)
	}
	e.OK("project", "delete", "demo", "--force")
}

func testImageBranches(e *env, d *testenv.Docker, image string) {
	t := e.T
	e.Create("gis", "--image", image, "--pg-version", "15")
	var info struct {
		Runtime string `json:"runtime"`
		Image   string `json:"image"`
		PG      int    `json:"pg_version"`
	}
	if err := json.Unmarshal([]byte(e.OK("project", "get", "gis", "--json").Stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Runtime != "docker" || info.Image != image || info.PG != 15 {
		t.Errorf("project get: %+v, want runtime docker, image %s, PostgreSQL 15", info, image)
	}
	e.Psql("gis/main", "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100)")
	e.OK("branch", "create", "gis/geo")
	// Every branch's server is a container of the image, labelled with this
	// home, project and branch.
	for _, b := range []string{"main", "geo"} {
		cts, err := d.Client.ContainerList(context.Background(), []string{docker.LabelHome + "=" + e.Home, docker.LabelProject + "=gis", docker.LabelBranch + "=" + b})
		if err != nil || len(cts) != 1 || cts[0].State != "running" {
			t.Errorf("containers of gis/%s: %+v (%v), want one running", b, cts, err)
		}
	}
	e.Psql("gis/geo", "CREATE EXTENSION postgis; CREATE TABLE places (name text, at geometry(Point, 4326)); INSERT INTO places VALUES ('a', ST_SetSRID(ST_MakePoint(0, 0), 4326)), ('b', ST_SetSRID(ST_MakePoint(3, 4), 4326))")
	if got := e.Psql("gis/geo", "SELECT ST_Distance(a.at, b.at) FROM places a, places b WHERE a.name = 'a' AND b.name = 'b'"); got != "5" {
		t.Errorf("ST_Distance in the branch = %q, want 5", got)
	}
	if got := e.Psql("gis/main", "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"); got != "0" {
		t.Errorf("postgis reached main")
	}
	e.OK("branch", "reset", "gis/geo")
	if got := e.Psql("gis/geo", "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'") + "/" + e.Psql("gis/geo", "SELECT count(*) FROM t"); got != "0/100" {
		t.Errorf("after reset: postgis count/rows = %s, want 0/100", got)
	}
	e.OK("branch", "stop", "gis/geo")
	e.OK("branch", "start", "gis/geo")
	if got := e.Psql("gis/geo", "SELECT count(*) FROM t"); got != "100" {
		t.Errorf("rows after stop and start: %s", got)
	}

	// A container killed under load: every acknowledged commit is there
	// after the next start.
	e.Psql("gis/geo", "CREATE TABLE acked (id int PRIMARY KEY)")
	var acked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.PsqlErr("gis/geo", fmt.Sprintf("INSERT INTO acked VALUES (%d)", w*1_000_000+i)); err != nil {
					return
				}
				acked.Add(1)
			}
		}(w)
	}
	time.Sleep(2 * time.Second)
	ct, err := d.Client.ContainerInspect(context.Background(), containerOf(e, "gis/geo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(ct.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	e.OK("branch", "start", "gis/geo")
	if got, min := e.Psql("gis/geo", "SELECT count(*) FROM acked"), acked.Load(); atoi(t, got) < min || min == 0 {
		t.Errorf("after a kill under load: %s rows, %d commits acknowledged", got, min)
	}

	// Point in time, from the archive mounted into the container: three
	// more rows in main's t, one commit each; the branch at the second has
	// two of them.
	times := harness.CommitTimes(e.Env, "gis/main", 1001, 3)
	e.OK("branch", "create", "gis/at2", "--pitr", times[1].UTC().Format(time.RFC3339Nano))
	if got := e.Rows("gis/at2", "SELECT v FROM t WHERE v > 1000 ORDER BY v"); got != "1001,1002" {
		t.Errorf("branch at commit 2 holds %s", got)
	}

	// A reboot: every container gone; start --all brings each branch back.
	cts, err := d.Client.ContainerList(context.Background(), []string{docker.LabelHome + "=" + e.Home})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cts {
		if err := d.Client.ContainerKill(context.Background(), c.ID, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
	}
	waitStopped(e, "gis/main")
	e.OK("branch", "start", "--all")
	for b, want := range map[string]string{"gis/main": "103", "gis/geo": "100", "gis/at2": "102"} {
		if got := e.Psql(b, "SELECT count(*) FROM t"); got != want {
			t.Errorf("%s after start --all: %s rows, want %s", b, got, want)
		}
	}

	// The volume's identity (what --rebuild-state reads when state.db is
	// lost) names the image, so a rebuilt project still runs in it.
	idFile, err := os.ReadFile(filepath.Join(filepath.Dir(dataDirOf(e, "gis/geo")), "velo-volume.json"))
	if err != nil || !strings.Contains(string(idFile), image) {
		t.Errorf("gis/geo's identity file lacks the image %s (%v):\n%s", image, err, idFile)
	}

	// An orphan: a container of this home on a data directory no branch
	// has (what a command killed half way leaves); doctor finds it by its
	// label and --repair removes it.
	orphan := startOrphan(e, d, image)
	r := e.Run("doctor")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, orphan) {
		t.Errorf("doctor with an orphan container on %s: %s", orphan, r)
	}
	e.OK("doctor", "--repair")
	if cts, _ := d.Client.ContainerList(context.Background(), []string{docker.LabelDataDir + "=" + orphan}); len(cts) != 0 {
		t.Errorf("after doctor --repair the orphan container remains: %+v", cts)
	}
	if got := e.Psql("gis/geo", "SELECT count(*) FROM t"); got != "100" {
		t.Errorf("gis/geo after the repair: %s rows", got)
	}
	// Doctor's line on the engine: it answers with the image, and without
	// an engine the line fails naming how to mend it.
	if r := e.OK("doctor"); !strings.Contains(r.Stdout, "container engine") || !strings.Contains(r.Stdout, image+" (PostgreSQL 15") {
		t.Errorf("doctor does not report the engine and the image:\n%s", r.Stdout)
	}
	saved := e.Extra
	e.Extra = append(append([]string{}, saved...), "DOCKER_HOST=unix:///nonexistent/velo-test-docker.sock")
	if r := e.Run("doctor"); r.Code != 1 || !strings.Contains(r.Stdout, "start the Docker engine") {
		t.Errorf("doctor without an engine: want exit 1 naming the engine, got %s", r)
	}
	e.Extra = saved

	e.OK("project", "delete", "gis", "--force")
	if cts, _ := d.Client.ContainerList(context.Background(), []string{docker.LabelHome + "=" + e.Home}); len(cts) != 0 {
		t.Errorf("containers after project delete: %+v", cts)
	}
}

// removeContainers removes every container of the home, whatever a failed
// test left running.
// testImageWake: velo serve suspends an idle branch of an --image project
// (its container goes) and a client through the one port wakes it (a
// container again) and gets its rows.
func testImageWake(e *env, d *testenv.Docker, image string) {
	t := e.T
	e.Create("wk", "--image", image, "--pg-version", "15")
	e.Psql("wk/main", "CREATE TABLE t(v text); INSERT INTO t VALUES ('main')")
	e.OK("branch", "create", "wk/dev")
	e.Psql("wk/dev", "UPDATE t SET v = 'dev'")
	e.OK("branch", "set", "wk/dev", "--idle", "3s")
	name := containerOf(e, "wk/dev")
	running := func() bool {
		ct, err := d.Client.ContainerInspect(context.Background(), name)
		return err == nil && ct.State.Running
	}
	s := e.runServe(0)
	url, pw := e.routerURL("wk/dev"), e.Conn("wk/dev").Password
	e.waitState("wk/dev", "suspended", 30*time.Second)
	if running() {
		t.Errorf("suspended wk/dev still has its container %s running", name)
	}
	if out, err := psqlVia(url, pw, "SELECT v FROM t"); err != nil || out != "dev" {
		t.Fatalf("psql waking wk/dev through velo serve: %q, %v\n%s", out, err, s.output())
	}
	if !running() {
		t.Errorf("woken wk/dev has no running container %s", name)
	}
	e.waitState("wk/dev", "suspended", 30*time.Second)
	e.OK("project", "delete", "wk", "--force")
}

func removeContainers(t *testing.T, d *testenv.Docker, home string) {
	cts, err := d.Client.ContainerList(context.Background(), []string{docker.LabelHome + "=" + home})
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, c := range cts {
		d.Client.ContainerRemove(context.Background(), c.ID, true)
	}
}

func dataDirOf(e *env, ref string) string {
	var b struct {
		DataDir string `json:"data_dir"`
	}
	if err := json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b); err != nil || b.DataDir == "" {
		e.T.Fatalf("branch get %s --json: %v (data_dir %q)", ref, err, b.DataDir)
	}
	return b.DataDir
}

func containerOf(e *env, ref string) string {
	dir, err := filepath.EvalSymlinks(dataDirOf(e, ref))
	if err != nil {
		e.T.Fatal(err)
	}
	return docker.ContainerName(dir)
}

func atoi(t testing.TB, s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// waitStopped waits until velo sees ref's server stopped.
func waitStopped(e *env, ref string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var b struct {
			State string `json:"state"`
		}
		_ = json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b)
		if b.State == "stopped" {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%s still %s 20s after its container was killed", ref, b.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startOrphan starts a container of this home on a copy of a branch's
// data directory inside the pool (in main's volume, beside its data
// directory: a place in the pool on every driver), configured as no branch
// is (no archive, its own socket): a server no record owns. It returns the
// data directory.
func startOrphan(e *env, d *testenv.Docker, image string) string {
	t := e.T
	e.OK("branch", "create", "gis/orph")
	password := e.Conn("gis/orph").Password
	e.OK("branch", "stop", "gis/orph")
	src := dataDirOf(e, "gis/orph")
	dst := filepath.Join(filepath.Dir(dataDirOf(e, "gis/main")), "velo-test-orphan", "pgdata")
	if err := os.MkdirAll(filepath.Dir(dst), 0o711); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(dst)) })
	e.OK("branch", "delete", "gis/orph")
	rt := docker.New(d.Client, map[string]string{docker.LabelHome: e.Home})
	ctx := context.Background()
	img, err := rt.InspectImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	port, err := pg.FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	run := harness.TmpDir(t, "velo-orphan-")
	if err := pg.WriteConfig(dst, pg.Config{Port: port, SocketDir: filepath.Join(run, "s")}, &img.User); err != nil {
		t.Fatal(err)
	}
	spec := runtime.Spec{Install: img.Install, DataDir: dst, Port: port, SocketDir: filepath.Join(run, "s"), LogFile: filepath.Join(run, "log"),
		RunAs: &img.User, Password: password, Image: image}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	return dst
}
