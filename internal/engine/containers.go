package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/state"
)

// Containers is the container runtime the servers of a project made with
// --image run in (package runtime/docker).
type Containers interface {
	runtime.Runtime
	runtime.Lister
	// InspectImage finds the Postgres in an image and its postgres user.
	InspectImage(ctx context.Context, ref string) (docker.Image, error)
	// Run runs a program to its end in a container of img, with dir
	// mounted (initdb).
	Run(ctx context.Context, img docker.Image, argv []string, dir string) ([]byte, error)
}

// ConnectContainers connects to the container engine for the home: the
// containers it makes carry the home's label. cmd/velo provides it; an
// error says how to reach or start an engine.
type ConnectContainers func(ctx context.Context, home string) (Containers, error)

// imageRef is the grammar of an image reference as docker pull takes it:
// [HOST[:PORT]/]NAME[/NAME...][:TAG][@sha256:DIGEST], names in lower case.
var imageRef = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)

// ValidateImage checks --image before anything is asked of the engine.
func ValidateImage(ref string) error {
	if len(ref) > 255 || !imageRef.MatchString(ref) {
		return errdefs.Invalid("--image %s is not an image reference: NAME[:TAG] or HOST/NAME[:TAG][@sha256:DIGEST], as docker pull takes it, names in lower case", quote(ref))
	}
	return nil
}

// containers connects to the container engine once per engine.
func (e *Engine) containers(ctx context.Context) (Containers, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctr != nil {
		return e.ctr, nil
	}
	if e.connect == nil {
		return nil, errdefs.Environment("this velo has no container runtime; drop --image to run the host's PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := e.connect(ctx, e.Home)
	if err != nil {
		return nil, err
	}
	e.ctr = c
	return c, nil
}

// image inspects ref once per engine.
func (e *Engine) image(ctx context.Context, ref string) (docker.Image, error) {
	c, err := e.containers(ctx)
	if err != nil {
		return docker.Image{}, err
	}
	e.mu.Lock()
	img, ok := e.images[ref]
	e.mu.Unlock()
	if ok {
		return img, nil
	}
	img, err = c.InspectImage(ctx, ref)
	if err != nil {
		return docker.Image{}, err
	}
	e.mu.Lock()
	e.images[ref] = img
	e.mu.Unlock()
	return img, nil
}

// server returns the binaries p's servers run and the user they run as:
// the host's install of p's major and Postgres user, or, for a project of
// an image, the Postgres in the image and the image's postgres user (who
// then owns the data directories).
func (e *Engine) server(ctx context.Context, p state.Project) (pg.Install, *pg.OSUser, error) {
	if p.Image != "" {
		img, err := e.image(ctx, p.Image)
		if err != nil {
			return pg.Install{}, nil, fmt.Errorf("project %s runs in containers of %s: %w", p.Name, p.Image, err)
		}
		if img.Install.Major != p.PGMajor {
			return pg.Install{}, nil, errdefs.FailedPrecondition("project %s holds PostgreSQL %d data but its image %s now holds PostgreSQL %d; tag the image of %d again",
				p.Name, p.PGMajor, p.Image, img.Install.Major, p.PGMajor)
		}
		u := img.User
		return img.Install, &u, nil
	}
	in, err := e.install(ctx, p.PGMajor)
	if err != nil {
		return pg.Install{}, nil, err
	}
	u, err := e.osUser()
	if err != nil {
		return pg.Install{}, nil, err
	}
	return in, u, nil
}

// newServer picks the binaries and user of a new project: the host's
// install of --pg-version (the newest without it) and Postgres user, or,
// with --image, the image's, its major checked against --pg-version. Every
// refusal is the user's input: the image, the version, or an --image
// without an engine to run it.
func (e *Engine) newServer(ctx context.Context, o CreateProjectOptions) (pg.Install, *pg.OSUser, error) {
	if o.Image == "" {
		in, err := e.install(ctx, o.PGVersion)
		if errors.Is(err, errdefs.ErrEnvironment) {
			// A major that is not there is, at create, a wrong --pg-version.
			return pg.Install{}, nil, errdefs.Mark(errdefs.ErrInvalid, err)
		} else if err != nil {
			return pg.Install{}, nil, err
		}
		u, err := e.osUser()
		return in, u, err
	}
	img, err := e.image(ctx, o.Image)
	if errors.Is(err, errdefs.ErrEnvironment) {
		return pg.Install{}, nil, errdefs.Mark(errdefs.ErrFailedPrecondition, fmt.Errorf("--image %s: %w", o.Image, err))
	} else if err != nil {
		return pg.Install{}, nil, fmt.Errorf("--image %s: %w", o.Image, err)
	}
	if o.PGVersion != 0 && o.PGVersion != img.Install.Major {
		return pg.Install{}, nil, errdefs.Invalid("--pg-version %d does not match --image %s, which holds PostgreSQL %s; drop --pg-version or pick an image of PostgreSQL %d",
			o.PGVersion, o.Image, img.Install.Version, o.PGVersion)
	}
	u := img.User
	return img.Install, &u, nil
}

// initOptions are pg.InitDB's options for a new cluster of p: initdb of
// the image, in a container, for a project of an image.
func (e *Engine) initOptions(ctx context.Context, p state.Project, in pg.Install, u *pg.OSUser, dataDir, password string) (pg.InitOptions, error) {
	o := pg.InitOptions{Install: in, DataDir: dataDir, Password: password, RunAs: u}
	if p.Image == "" {
		return o, nil
	}
	c, err := e.containers(ctx)
	if err != nil {
		return o, err
	}
	img, err := e.image(ctx, p.Image)
	if err != nil {
		return o, err
	}
	o.Run = func(ctx context.Context, argv []string, dir string) ([]byte, error) {
		return c.Run(ctx, img, argv, dir)
	}
	return o, nil
}

// dress adds to a spec of p what a container runtime needs: the image, the
// labels saying whose server it is, and the WAL archives (its own, and
// those recovery reads) mounted.
func (e *Engine) dress(p state.Project, b state.Branch, s *runtime.Spec) {
	if p.Image == "" {
		return
	}
	s.Image = p.Image
	s.Labels = map[string]string{docker.LabelProject: p.Name, docker.LabelBranch: b.Name}
	s.Mounts = []string{filepath.Dir(e.archiveDir(b.VolumeID))}
}

// runtimes is the engine's runtime: the native one for the host's servers,
// the container runtime for those of an image (the spec names the image),
// connected to on first use.
type runtimes struct {
	e      *Engine
	native runtime.Runtime
}

func (r *runtimes) Name() string { return r.native.Name() }

func (r *runtimes) pick(ctx context.Context, s runtime.Spec) (runtime.Runtime, error) {
	if s.Image == "" {
		return r.native, nil
	}
	return r.e.containers(ctx)
}

func (r *runtimes) Start(ctx context.Context, s runtime.Spec) (runtime.Handle, error) {
	rt, err := r.pick(ctx, s)
	if err != nil {
		return runtime.Handle{}, err
	}
	return rt.Start(ctx, s)
}

// Stop stops what runs on the data directory: for a spec without an image
// (doctor stopping an orphan it found by its data directory), a container
// of this home on it too, when an engine is configured and answers.
func (r *runtimes) Stop(ctx context.Context, s runtime.Spec, timeout time.Duration) error {
	rt, err := r.pick(ctx, s)
	if err != nil {
		return err
	}
	if err := rt.Stop(ctx, s, timeout); err != nil {
		return err
	}
	if s.Image == "" && r.e.connect != nil {
		if c, err := r.e.containers(ctx); err == nil {
			return c.Stop(ctx, s, timeout)
		}
	}
	return nil
}

func (r *runtimes) Status(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	rt, err := r.pick(ctx, s)
	if err != nil {
		return runtime.Status{}, err
	}
	return rt.Status(ctx, s)
}

func (r *runtimes) Peek(ctx context.Context, s runtime.Spec) (runtime.Status, error) {
	rt, err := r.pick(ctx, s)
	if err != nil {
		return runtime.Status{}, err
	}
	return rt.Peek(ctx, s)
}

// List lists the host's postmasters and this home's containers; a
// container's postmaster is a process of the host too, listed once.
func (r *runtimes) List(ctx context.Context) ([]runtime.Server, error) {
	var out []runtime.Server
	if l, ok := r.native.(runtime.Lister); ok {
		s, err := l.List(ctx)
		if err != nil {
			return nil, err
		}
		out = s
	}
	if r.e.connect == nil {
		return out, nil
	}
	c, err := r.e.containers(ctx)
	if err != nil {
		// No engine answers: no container runs that doctor could stop.
		return out, nil
	}
	cs, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, s := range cs {
		seen[s.PID] = true
	}
	merged := cs
	for _, s := range out {
		if !seen[s.PID] {
			merged = append(merged, s)
		}
	}
	return merged, nil
}

var (
	_ runtime.Runtime = (*runtimes)(nil)
	_ runtime.Lister  = (*runtimes)(nil)
)

// containerFindings is doctor's line on the container engine, when a
// project runs in containers (--image): whether the engine answers, and
// each image the projects name is there with its PostgreSQL.
func (e *Engine) containerFindings(ctx context.Context, s *survey) []Finding {
	var images []string
	for _, p := range s.projects {
		if p.Runtime == state.RuntimeDocker && !slices.Contains(images, p.Image) {
			images = append(images, p.Image)
		}
	}
	if len(images) == 0 {
		return nil
	}
	f := Finding{Section: SectionHost, Subject: "container engine", Status: LevelOK}
	if _, err := e.containers(ctx); err != nil {
		f.Status, f.Message = LevelFailed, err.Error()
		f.Fix = "start the Docker engine (or point DOCKER_HOST at it): the branches of projects made with --image cannot start without it"
		return []Finding{f}
	}
	var seen []string
	for _, ref := range images {
		img, err := e.image(ctx, ref)
		if err != nil {
			f.Status, f.Message, f.Fix = LevelFailed, err.Error(), "docker pull "+ref
			return []Finding{f}
		}
		seen = append(seen, fmt.Sprintf("%s (PostgreSQL %s)", ref, img.Install.Version))
	}
	f.Message = "the engine answers; images " + strings.Join(seen, ", ")
	return []Finding{f}
}
