package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/dockerapi"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
)

// Image is what Velo needs of an image: the Postgres in it and the user
// that runs it.
type Image struct {
	Ref     string     // as the user named it ("postgis/postgis:15-3.4")
	ID      string     // the engine's image ID
	Install pg.Install // BinDir as inside the image
	User    pg.OSUser  // the image's postgres user: 999 in Debian-based images, 70 in Alpine ones
}

// binDirs are where an image may keep its postgres binary besides the
// directories on its PATH (the official images put it there): Debian's
// layout, one directory per major.
func binDirs(env []string) []string {
	var dirs []string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			dirs = append(dirs, strings.Split(v, ":")...)
		}
	}
	for major := 20; major >= 10; major-- {
		dirs = append(dirs, fmt.Sprintf("/usr/lib/postgresql/%d/bin", major))
	}
	return append(dirs, "/usr/local/pgsql/bin")
}

// InspectImage finds the Postgres in the image ref and its postgres user,
// by reading the image's /etc/passwd and running `postgres --version` in a
// throwaway container (no network, nothing mounted). Errors name the fix:
// an image the engine lacks is errdefs.ErrNotFound with the `docker pull`
// to run, one without Postgres errdefs.ErrInvalid.
func (r *Runtime) InspectImage(ctx context.Context, ref string) (Image, error) {
	img, err := r.c.ImageInspect(ctx, ref)
	if dockerapi.IsNotFound(err) {
		return Image{}, errdefs.NotFound("image %s is not in the Docker engine at %s; fetch it first: docker pull %s", ref, r.c.Host(), ref)
	}
	if err != nil {
		return Image{}, errdefs.Environment("the Docker engine at %s: %v", r.c.Host(), err)
	}
	if c, ok := r.cachedImage(img.ID); ok {
		c.Ref = ref
		return c, nil
	}
	found, err := r.probeImage(ctx, ref, img)
	if err == nil {
		r.cacheImage(found)
	}
	return found, err
}

// probeImage is InspectImage for an image not in the cache.
func (r *Runtime) probeImage(ctx context.Context, ref string, img dockerapi.Image) (Image, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// A created container, never started, to read files from.
	look, err := r.c.ContainerCreate(ctx, "", dockerapi.ContainerConfig{Image: img.ID, Entrypoint: []string{"velo-no-such-program"}, Labels: map[string]string{LabelProbe: "1"}})
	if err != nil {
		return Image{}, errdefs.Environment("image %s: create a container to look into it: %v", ref, err)
	}
	defer r.c.ContainerRemove(context.WithoutCancel(ctx), look, true)
	passwd, err := r.c.ReadFile(ctx, look, "/etc/passwd")
	if err != nil {
		return Image{}, errdefs.Invalid("image %s has no /etc/passwd (%v): Velo needs a PostgreSQL image, with its postgres user", ref, err)
	}
	user, ok := postgresUser(string(passwd))
	if !ok {
		return Image{}, errdefs.Invalid("image %s has no postgres user in /etc/passwd: Velo needs a PostgreSQL image", ref)
	}
	bindir := ""
	for _, d := range binDirs(img.Config.Env) {
		if d == "" || !strings.HasPrefix(d, "/") {
			continue
		}
		if st, err := r.c.StatPath(ctx, look, path.Join(d, "postgres")); err == nil && !fs.FileMode(st.Mode).IsDir() {
			bindir = d
			break
		}
	}
	if bindir == "" {
		return Image{}, errdefs.Invalid("image %s has no PostgreSQL server (no postgres program on its PATH or under /usr/lib/postgresql): Velo needs a PostgreSQL image", ref)
	}
	// postgres --version, run in a throwaway container of the image.
	id, err := r.c.ContainerCreate(ctx, "", dockerapi.ContainerConfig{
		Image:      img.ID,
		Entrypoint: []string{path.Join(bindir, "postgres"), "--version"},
		User:       fmt.Sprintf("%d:%d", user.UID, user.GID),
		Labels:     map[string]string{LabelProbe: "1"},
		HostConfig: dockerapi.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return Image{}, errdefs.Environment("image %s: create a probe container: %v", ref, err)
	}
	defer r.c.ContainerRemove(context.WithoutCancel(ctx), id, true)
	if err := r.c.ContainerStart(ctx, id); err != nil {
		return Image{}, errdefs.Invalid("image %s: run %s/postgres --version: %v", ref, bindir, err)
	}
	code, err := r.c.ContainerWait(ctx, id)
	if err != nil {
		return Image{}, errdefs.Environment("image %s: probe container: %v", ref, err)
	}
	out, _ := r.c.ContainerLogs(ctx, id)
	major, version, err := pg.ParseVersion(out)
	if code != 0 || err != nil {
		return Image{}, errdefs.Invalid("image %s: %s/postgres --version exited %d saying %q: Velo needs a PostgreSQL image", ref, bindir, code, strings.TrimSpace(out))
	}
	return Image{Ref: ref, ID: img.ID, Install: pg.Install{Major: major, Version: version, BinDir: bindir}, User: user}, nil
}

// postgresUser finds the postgres user in an /etc/passwd.
func postgresUser(passwd string) (pg.OSUser, bool) {
	for _, l := range strings.Split(passwd, "\n") {
		f := strings.Split(l, ":")
		if len(f) < 4 || f[0] != "postgres" {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return pg.OSUser{}, false
		}
		return pg.OSUser{Name: "postgres", UID: uid, GID: gid}, true
	}
	return pg.OSUser{}, false
}

// String describes the image for messages.
func (i Image) String() string {
	return fmt.Sprintf("%s (PostgreSQL %s, user postgres uid %d)", i.Ref, i.Install.Version, i.User.UID)
}

// Run runs argv (the program, then its arguments) to its end in a
// throwaway container of img, as the image's postgres user, without a
// network, with dir bind-mounted at its own path, and returns its output.
// A non-zero exit is an error.
func (r *Runtime) Run(ctx context.Context, img Image, argv []string, dir string) ([]byte, error) {
	id, err := r.c.ContainerCreate(ctx, "", dockerapi.ContainerConfig{
		Image:      img.ID,
		Entrypoint: argv,
		User:       fmt.Sprintf("%d:%d", img.User.UID, img.User.GID),
		WorkingDir: dir,
		Labels:     map[string]string{LabelProbe: "1"},
		HostConfig: dockerapi.HostConfig{NetworkMode: "none", Mounts: []dockerapi.Mount{{Type: "bind", Source: dir, Target: dir}}},
	})
	if err != nil {
		return nil, fmt.Errorf("create a container of %s: %w", img.Ref, err)
	}
	defer r.c.ContainerRemove(context.WithoutCancel(ctx), id, true)
	if err := r.c.ContainerStart(ctx, id); err != nil {
		return nil, fmt.Errorf("start a container of %s: %w", img.Ref, err)
	}
	code, err := r.c.ContainerWait(ctx, id)
	out, _ := r.c.ContainerLogs(context.WithoutCancel(ctx), id)
	if err != nil {
		return []byte(out), err
	}
	if code != 0 {
		return []byte(out), fmt.Errorf("%s exited %d in a container of %s", path.Base(argv[0]), code, img.Ref)
	}
	return []byte(out), nil
}

// WithCache keeps what InspectImage finds in dir, by image ID: an ID is
// the hash of the image's content, so what was found for it stays true,
// and a command spares the two throwaway containers of a look.
func (r *Runtime) WithCache(dir string) *Runtime {
	r.cacheDir = dir
	return r
}

func (r *Runtime) cacheFile(id string) string {
	return filepath.Join(r.cacheDir, strings.TrimPrefix(id, "sha256:")+".json")
}

func (r *Runtime) cachedImage(id string) (Image, bool) {
	if r.cacheDir == "" || id == "" {
		return Image{}, false
	}
	data, err := os.ReadFile(r.cacheFile(id))
	if err != nil {
		return Image{}, false
	}
	var img Image
	if json.Unmarshal(data, &img) != nil || img.ID != id || img.Install.BinDir == "" || img.User.UID == 0 {
		return Image{}, false
	}
	return img, true
}

// cacheImage writes the entry under a temporary name and renames it into
// place; a failure only costs the next command a look.
func (r *Runtime) cacheImage(img Image) {
	if r.cacheDir == "" || img.ID == "" {
		return
	}
	data, err := json.Marshal(img)
	if err != nil || os.MkdirAll(r.cacheDir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(r.cacheDir, ".image-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), r.cacheFile(img.ID)) != nil {
		os.Remove(tmp.Name())
	}
}
