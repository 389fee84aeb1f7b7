package docker

import (
	"context"
	"fmt"
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

// findScript prints the directory of the image's postgres binary and its
// version: the one on PATH (the official images put it there), else
// Debian's layout. A fixed script; nothing is spliced into it.
const findScript = `for d in "$(dirname "$(command -v postgres 2>/dev/null || echo /nonexistent/postgres)")" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
	if [ -x "$d/postgres" ]; then echo "bindir=$d"; exec "$d/postgres" --version; fi
done
exit 3`

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
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	id, err := r.c.ContainerCreate(ctx, "", dockerapi.ContainerConfig{
		Image:      img.ID,
		Entrypoint: []string{"/bin/sh", "-c", findScript},
		User:       "0:0",
		Labels:     map[string]string{"dev.velo.probe": "1"},
		HostConfig: dockerapi.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return Image{}, errdefs.Invalid("image %s cannot run a shell (%v): Velo needs an image with PostgreSQL and /bin/sh", ref, err)
	}
	defer r.c.ContainerRemove(context.WithoutCancel(ctx), id, true)
	passwd, err := r.c.ReadFile(ctx, id, "/etc/passwd")
	if err != nil {
		return Image{}, errdefs.Invalid("image %s has no /etc/passwd (%v): Velo needs an image with PostgreSQL and its postgres user", ref, err)
	}
	user, ok := postgresUser(string(passwd))
	if !ok {
		return Image{}, errdefs.Invalid("image %s has no postgres user in /etc/passwd: is it a PostgreSQL image?", ref)
	}
	if err := r.c.ContainerStart(ctx, id); err != nil {
		return Image{}, errdefs.Invalid("image %s: start a probe container: %v", ref, err)
	}
	code, err := r.c.ContainerWait(ctx, id)
	if err != nil {
		return Image{}, errdefs.Environment("image %s: probe container: %v", ref, err)
	}
	out, _ := r.c.ContainerLogs(ctx, id)
	bindir := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "bindir="); ok {
			bindir = strings.TrimSpace(v)
		}
	}
	if code != 0 || bindir == "" {
		return Image{}, errdefs.Invalid("image %s has no PostgreSQL server (no postgres program on its PATH or under /usr/lib/postgresql): is it a PostgreSQL image?", ref)
	}
	_, rest, _ := strings.Cut(out, "bindir="+bindir)
	major, version, err := pg.ParseVersion(rest)
	if err != nil {
		return Image{}, errdefs.Invalid("image %s: postgres --version said %q: %v", ref, strings.TrimSpace(rest), err)
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
