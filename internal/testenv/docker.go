package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/dockerapi"
)

// DockerDir is where the tests keep the Docker engine they start when none
// answers: its data root (and so the images built for the tests, built
// once per machine), exec root, socket, pid file and log. The daemon is
// left running after the tests, as zfs-fuse is: the next run finds it.
const DockerDir = "/var/lib/velo-test-docker"

// Docker is an engine the tests may use.
type Docker struct {
	Client *dockerapi.Client
	// Host is the engine's address, for DOCKER_HOST in the environment of
	// the velo commands a test runs.
	Host string
}

// RequireDocker returns a Docker engine (what="docker"): the one
// DOCKER_HOST or the default socket names when it answers, else one the
// tests start themselves (dockerd, with a data root and socket of their
// own under DockerDir, no iptables and no bridge: containers use host
// networking).
func RequireDocker(t testing.TB) *Docker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if c, err := dockerapi.FromEnv(); err == nil && pingQuick(ctx, c) == nil {
		return &Docker{Client: c, Host: c.Host()}
	}
	if os.Getenv(dockerapi.HostEnv) != "" {
		Skip(t, "docker", fmt.Sprintf("the Docker engine %s=%s names does not answer", dockerapi.HostEnv, os.Getenv(dockerapi.HostEnv)))
	}
	RequireRoot(t)
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		Skip(t, "docker", "no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
	}
	host := "unix://" + filepath.Join(DockerDir, "docker.sock")
	c, err := dockerapi.New(host)
	if err != nil {
		t.Fatal(err)
	}
	unlock := lockFile(t, filepath.Join(DockerDir, "start.lock"))
	defer unlock()
	if pingQuick(ctx, c) == nil {
		return &Docker{Client: c, Host: host}
	}
	logf, err := os.OpenFile(filepath.Join(DockerDir, "dockerd.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(dockerd,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--data-root", filepath.Join(DockerDir, "root"),
		"--exec-root", filepath.Join(DockerDir, "exec"),
		"--pidfile", filepath.Join(DockerDir, "docker.pid"),
		"-H", host)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if pingQuick(ctx, c) == nil {
			t.Logf("started dockerd (PID %d) on %s", cmd.Process.Pid, host)
			return &Docker{Client: c, Host: host}
		}
		select {
		case err := <-exited:
			t.Fatalf("dockerd exited at start (%v); see %s", err, filepath.Join(DockerDir, "dockerd.log"))
		case <-ctx.Done():
			t.Fatalf("dockerd not answering on %s: %v; see %s", host, ctx.Err(), filepath.Join(DockerDir, "dockerd.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pingQuick(ctx context.Context, c *dockerapi.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

// lockFile takes an exclusive flock on path (made with its directory),
// held until the returned function is called: test binaries of several
// packages run at once and must not start two engines or build one image
// twice.
func lockFile(t testing.TB, path string) func() {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// PostGISImageRepo is the repository of the tests' image.
const PostGISImageRepo = "velo-test-postgis"

// postgisRecipe is how the tests' image is made; its hash (with the
// versions of the packages it installs) is the image's tag, so that a
// changed recipe or a Debian update builds a new image and an unchanged
// one is built once per machine.
var postgisRecipe = []string{"debootstrap", "--variant=minbase", "--include=postgresql-15,postgresql-15-postgis-3", "bookworm"}

// PostGISImage returns an image of Debian's PostgreSQL 15 with PostGIS (an
// extension the host's Postgres lacks), built on d when missing: debootstrap
// of bookworm from the host's Debian mirror, then imported as `docker
// import` does. The first build takes a minute or two and about 900 MB.
func PostGISImage(t testing.TB, d *Docker) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tag := recipeTag(ctx)
	name := PostGISImageRepo + ":" + tag
	if _, err := d.Client.ImageInspect(ctx, name); err == nil {
		return name
	}
	RequireRoot(t)
	debootstrap, err := exec.LookPath("debootstrap")
	if err != nil {
		Skip(t, "docker", "the test image "+name+" is missing and debootstrap is not installed to build it (apt-get install debootstrap)")
	}
	unlock := lockFile(t, filepath.Join(DockerDir, "image.lock"))
	defer unlock()
	if _, err := d.Client.ImageInspect(ctx, name); err == nil {
		return name
	}
	rootfs := filepath.Join(DockerDir, "rootfs-"+tag)
	os.RemoveAll(rootfs) // a build killed half way
	defer os.RemoveAll(rootfs)
	began := time.Now()
	args := append(append([]string{}, postgisRecipe[1:]...), rootfs, debianMirror())
	if out, err := exec.CommandContext(ctx, debootstrap, args...).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap for the test image: %v\n%s", err, lastLines(string(out), 30))
	}
	// The cluster Debian's package made is not used: Velo initdb's its own.
	os.RemoveAll(filepath.Join(rootfs, "var/lib/postgresql/15"))
	os.RemoveAll(filepath.Join(rootfs, "var/cache/apt/archives"))
	tarCmd := exec.CommandContext(ctx, "tar", "-C", rootfs, "--numeric-owner", "-c", ".")
	stdout, err := tarCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	ierr := d.Client.ImportImage(ctx, PostGISImageRepo, tag, stdout, []string{
		"ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8",
	})
	io.Copy(io.Discard, stdout)
	if err := tarCmd.Wait(); err != nil {
		t.Fatalf("tar of the test image's root: %v: %s", err, tarErr.String())
	}
	if ierr != nil {
		t.Fatalf("import the test image: %v", ierr)
	}
	t.Logf("built the test image %s in %v", name, time.Since(began).Round(time.Second))
	return name
}

// recipeTag hashes the recipe and the versions the mirror offers of the
// packages it installs (as apt knows them on this host).
func recipeTag(ctx context.Context) string {
	h := sha256.New()
	fmt.Fprintln(h, strings.Join(postgisRecipe, " "))
	out, _ := exec.CommandContext(ctx, "apt-cache", "policy", "postgresql-15", "postgresql-15-postgis-3").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "Candidate:") {
			fmt.Fprintln(h, strings.TrimSpace(l))
		}
	}
	return "pg15-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// debianMirror returns the first Debian mirror in the host's apt sources.
func debianMirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			fs := strings.Fields(l)
			switch {
			case len(fs) >= 2 && fs[0] == "URIs:" && !strings.Contains(fs[1], "security"):
				return fs[1]
			case len(fs) >= 3 && fs[0] == "deb" && strings.Contains(fs[1], "debian") && !strings.Contains(fs[1], "security"):
				return fs[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NoPostgresImage returns an image with an /etc/passwd naming root alone
// and nothing else: what a user might give --image by mistake.
func NoPostgresImage(t testing.TB, d *Docker) string {
	t.Helper()
	const repo, tag = "velo-test-no-postgres", "1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.Client.ImageInspect(ctx, repo+":"+tag); err == nil {
		return repo + ":" + tag
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	passwd := "root:x:0:0:root:/root:/nonexistent\n"
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))})
	tw.Write([]byte(passwd))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Client.ImportImage(ctx, repo, tag, &buf, nil); err != nil {
		t.Fatal(err)
	}
	return repo + ":" + tag
}
