// Package engine holds Velo's use cases: create a project, branch, reset,
// delete. It is the one place that sequences storage, runtime and state,
// journals each step before taking it, and undoes what it did when a step
// fails.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

// Pools builds the storage of a pool. cmd/velo passes drivers.Pools (the
// four drivers); tests may pass what they need.
type Pools interface {
	// Resolve decides the driver and pool of a new project (drivers.Resolve).
	Resolve(ctx context.Context, pool, force, defaultPath string) (driver, resolvedPool string, err error)
	// Open builds the driver of a pool a project records.
	Open(ctx context.Context, driver, pool string) (storage.Driver, error)
}

// Config is what an Engine is built from; cmd/velo builds the runtime and
// the pools, so that the engine never picks them itself.
type Config struct {
	Home     string
	Runtime  runtime.Runtime
	Pools    Pools
	Progress *ui.Progress
	// Command is the command line, recorded in the journal and the lock.
	Command string
	// Containers connects to the container engine that projects made with
	// --image run in; nil refuses --image.
	Containers ConnectContainers
}

// Engine runs Velo's use cases against one VELO_HOME.
type Engine struct {
	Home     string
	Store    *state.Store
	Runtime  runtime.Runtime
	Pools    Pools
	Progress *ui.Progress
	// Command is the command line, recorded in the journal and the lock.
	Command string
	// LockWait is how long a changing command waits for another to finish.
	LockWait time.Duration

	// mu guards installs, runAs and drivers, which status fills from many
	// goroutines.
	mu       sync.Mutex
	installs []pg.Install
	runAs    *pg.OSUser
	runAsSet bool

	// connect, ctr and images: the container runtime, connected to on
	// first use (under mu), and the images inspected.
	connect ConnectContainers
	ctr     Containers
	images  map[string]docker.Image

	// driversMu guards drivers, which status's goroutines read; it is not
	// mu, which install holds while it runs programs.
	driversMu sync.Mutex
	drivers   map[string]storage.Driver
}

// New opens the state under c.Home.
func New(ctx context.Context, c Config) (*Engine, error) {
	if c.Runtime == nil || c.Pools == nil {
		return nil, errors.New("engine: a runtime and pools are needed")
	}
	st, err := state.Open(ctx, c.Home)
	if err != nil {
		return nil, err
	}
	e := newEngine(c)
	e.Store = st
	return e, nil
}

// newEngine is an Engine of c without its state opened.
func newEngine(c Config) *Engine {
	e := &Engine{Home: c.Home, Pools: c.Pools, Progress: c.Progress, Command: c.Command,
		LockWait: 5 * time.Minute, drivers: map[string]storage.Driver{}, connect: c.Containers, images: map[string]docker.Image{}}
	e.Runtime = &runtimes{e: e, native: c.Runtime}
	return e
}

// Close releases the state database.
func (e *Engine) Close() error { return e.Store.Close() }

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

const nameRule = "names are 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"

// ValidateName checks a project or branch name.
func ValidateName(kind, name string) error {
	if !namePattern.MatchString(name) {
		return errdefs.Invalid("%s name %s is not allowed: %s", kind, quote(name), nameRule)
	}
	return nil
}

// ParseRef splits "project/branch" and validates both names.
func ParseRef(ref string) (project, branch string, err error) {
	p, b, ok := strings.Cut(ref, "/")
	if !ok {
		return "", "", errdefs.Invalid("branch %s must be written PROJECT/BRANCH, e.g. demo/dev", quote(ref))
	}
	if err := ValidateName("project", p); err != nil {
		return "", "", err
	}
	if err := ValidateName("branch", b); err != nil {
		return "", "", err
	}
	return p, b, nil
}

// quote shows user input safely: control characters escaped, long input cut.
func quote(s string) string { return ui.Quote(s) }

func newID(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

func (e *Engine) install(ctx context.Context, major int) (pg.Install, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.installs == nil {
		in, err := pg.FindInstalls(ctx)
		if err != nil {
			return pg.Install{}, err
		}
		e.installs = in
	}
	return pg.Pick(e.installs, major)
}

func (e *Engine) osUser() (*pg.OSUser, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.runAsSet {
		u, err := pg.LookupRunAs()
		if err != nil {
			return nil, err
		}
		e.runAs, e.runAsSet = u, true
	}
	return e.runAs, nil
}

// driver opens p's storage once per engine. The driver's own message names
// the pool and the fix; the project is added for those that exist.
func (e *Engine) driver(ctx context.Context, p state.Project) (storage.Driver, error) {
	d, err := e.openDriver(ctx, p.Driver, p.Pool)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", p.Name, err)
	}
	return d, nil
}

func (e *Engine) openDriver(ctx context.Context, driver, pool string) (storage.Driver, error) {
	e.driversMu.Lock()
	defer e.driversMu.Unlock()
	key := driver + ":" + pool
	if d, ok := e.drivers[key]; ok {
		return d, nil
	}
	d, err := e.Pools.Open(ctx, driver, pool)
	if err != nil {
		return nil, err
	}
	e.drivers[key] = d
	return d, nil
}

// dataDir is where a volume holds its Postgres data directory.
func dataDir(volumePath string) string { return filepath.Join(volumePath, "pgdata") }

func (e *Engine) socketDir(b state.Branch) string { return filepath.Join(e.runDir(), b.ID) }

// runDir holds the servers' socket directories: $VELO_HOME/run, unless the
// Postgres user cannot reach into VELO_HOME (root's home is 0700), then
// /run/velo.
func (e *Engine) runDir() string {
	if e.homeReachable() {
		return filepath.Join(e.Home, "run")
	}
	return "/run/velo"
}

// homeReachable reports whether the Postgres user can pass through VELO_HOME.
func (e *Engine) homeReachable() bool {
	u, err := e.osUser()
	return err != nil || pg.CanTraverse(e.Home, u)
}

// defaultPool is where a project's data goes without --pool:
// $VELO_HOME/data, or /var/lib/velo/data when the Postgres user cannot
// reach into VELO_HOME.
func (e *Engine) defaultPool() string {
	if e.homeReachable() {
		return filepath.Join(e.Home, "data")
	}
	return "/var/lib/velo/data"
}
func (e *Engine) logFile(b state.Branch) string { return filepath.Join(e.Home, "logs", b.ID+".log") }

// spec is how a branch's server runs.
func (e *Engine) spec(ctx context.Context, p state.Project, b state.Branch) (runtime.Spec, error) {
	return e.specFor(ctx, p, b, true)
}

// observeSpec is spec for telling whether b's server runs and for
// stopping it. Both are read from postmaster.pid and /proc and done by
// signals, without the Postgres binaries, so a project whose major is no
// longer found (VELO_PG_BIN unset in a new shell, the major uninstalled)
// still has its servers seen, stopped and deleted. Without the binaries
// its Install holds the major alone.
func (e *Engine) observeSpec(ctx context.Context, p state.Project, b state.Branch) (runtime.Spec, error) {
	return e.specFor(ctx, p, b, false)
}

func (e *Engine) specFor(ctx context.Context, p state.Project, b state.Branch, needBinaries bool) (runtime.Spec, error) {
	d, err := e.driver(ctx, p)
	if err != nil {
		return runtime.Spec{}, err
	}
	vol, err := d.Path(ctx, b.VolumeID)
	if errors.Is(err, errdefs.ErrNotFound) {
		// Still ErrNotFound: delete goes on without the volume.
		return runtime.Spec{}, errdefs.NotFound("the volume of branch %s/%s (%s) is gone from its storage (%s on %s); velo doctor says what to do", p.Name, b.Name, b.VolumeID, p.Driver, p.Pool)
	} else if err != nil {
		return runtime.Spec{}, fmt.Errorf("branch %s/%s: its volume %s: %w", p.Name, b.Name, b.VolumeID, err)
	}
	if !needBinaries {
		return e.observeSpecPath(ctx, p, b, vol)
	}
	return e.specPath(ctx, p, b, vol)
}

// observeSpecPath is observeSpec for a volume path already known.
func (e *Engine) observeSpecPath(ctx context.Context, p state.Project, b state.Branch, volumePath string) (runtime.Spec, error) {
	if p.Image != "" {
		// Seen and stopped through the engine alone.
		return e.specAt(p, pg.Install{Major: p.PGMajor}, nil, b, volumePath), nil
	}
	in, err := e.install(ctx, p.PGMajor)
	if errors.Is(err, errdefs.ErrEnvironment) {
		in, err = pg.Install{Major: p.PGMajor}, nil
	}
	if err != nil {
		return runtime.Spec{}, err
	}
	u, err := e.osUser()
	if err != nil {
		return runtime.Spec{}, err
	}
	return e.specAt(p, in, u, b, volumePath), nil
}

// specPath is spec for a branch whose volume path is already known.
func (e *Engine) specPath(ctx context.Context, p state.Project, b state.Branch, volumePath string) (runtime.Spec, error) {
	in, u, err := e.server(ctx, p)
	if err != nil {
		return runtime.Spec{}, err
	}
	return e.specAt(p, in, u, b, volumePath), nil
}

func (e *Engine) specAt(p state.Project, in pg.Install, u *pg.OSUser, b state.Branch, volumePath string) runtime.Spec {
	s := runtime.Spec{
		Install:   in,
		DataDir:   dataDir(volumePath),
		Port:      b.Port,
		SocketDir: e.socketDir(b),
		LogFile:   e.logFile(b),
		RunAs:     u,
		Password:  b.Password,
	}
	e.dress(p, b, &s)
	return s
}

func (e *Engine) ensureDirs() error {
	for _, d := range []string{e.runDir(), filepath.Join(e.Home, "logs")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	return nil
}

// configure writes the server settings Velo controls into a data
// directory: port, sockets, and the continuous archive of b's volume into
// a directory of its own (a clone never archives into its parent's); extra
// adds settings for the next start only (recovery).
func (e *Engine) configure(p state.Project, b state.Branch, spec runtime.Spec, extra map[string]string) error {
	return e.configureLoad(p, b, spec, extra, false)
}

// configureLoad is configure, with bulkLoad for a server being loaded by
// an import (pg.Config.BulkLoad).
func (e *Engine) configureLoad(p state.Project, b state.Branch, spec runtime.Spec, extra map[string]string, bulkLoad bool) error {
	return e.configureWith(p, b, spec, extra, bulkLoad, false)
}

// configureWith is configure; noTCP writes a server that listens on its
// socket alone (pg.Config.NoTCP), for the start that masks a branch.
func (e *Engine) configureWith(p state.Project, b state.Branch, spec runtime.Spec, extra map[string]string, bulkLoad, noTCP bool) error {
	dir := e.archiveDir(b.VolumeID)
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Archives are readable by their server's user only.
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if err := pg.Chown(dir, spec.RunAs); err != nil {
		return err
	}
	settings := map[string]string{
		"archive_mode":                    "on",
		"archive_library":                 "basic_archive",
		"basic_archive.archive_directory": dir,
		"archive_timeout":                 fmt.Sprintf("%ds", p.ArchiveTimeout),
	}
	maxSenders := 0
	if imported(p) {
		e.importedSettings(p, b, settings)
		maxSenders = p.Source.StandbyMin["max_wal_senders"]
	}
	for k, v := range extra {
		settings[k] = v
	}
	// TLS and pg_hba.conf are rewritten too, so that a project from an
	// older velo, or an edited pg_hba.conf, is brought back to the rules:
	// scram-sha-256 everywhere, TLS from other addresses than loopback.
	if err := e.ensureTLS(p, spec); err != nil {
		return err
	}
	if imported(p) {
		// Velo's own way in: the source's passwords are not Velo's.
		peer, err := pg.CurrentPeer(p.Source.Superuser)
		if err != nil {
			return err
		}
		if err := pg.WriteHBAPeer(spec.DataDir, spec.RunAs, peer); err != nil {
			return err
		}
	} else if err := pg.WriteHBA(spec.DataDir, spec.RunAs); err != nil {
		return err
	}
	if err := pg.WriteConfig(spec.DataDir, pg.Config{Port: spec.Port, ListenAddresses: pg.ListenAddresses(listenOf(p)), SocketDir: spec.SocketDir, TLS: true, Extra: settings, BulkLoad: bulkLoad, MaxWALSenders: maxSenders, CopyOnWrite: e.copyOnWrite(p), NoTCP: noTCP}, spec.RunAs); err != nil {
		return err
	}
	return e.writeIdentity(p, b, spec.DataDir)
}

// copyOnWrite reports whether p's storage shares blocks between clones
// (pg.Config.CopyOnWrite). The driver is open already wherever a data
// directory is configured; if it cannot be opened, Postgres's defaults stay.
func (e *Engine) copyOnWrite(p state.Project) bool {
	d, err := e.driver(context.Background(), p)
	return err == nil && d.Capabilities().SpaceEfficient
}

// freePort picks a port no branch holds and nothing listens on.
func (e *Engine) freePort(ctx context.Context) (int, error) {
	used, err := e.Store.Q().Ports(ctx)
	if err != nil {
		return 0, err
	}
	return pg.FreePort(used)
}

func (e *Engine) project(ctx context.Context, name string) (state.Project, error) {
	p, err := e.Store.Q().Project(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return p, errdefs.NotFound("project %s does not exist; see velo project list", name)
	}
	return p, err
}

func (e *Engine) branch(ctx context.Context, p state.Project, name string) (state.Branch, error) {
	b, err := e.Store.Q().Branch(ctx, p.ID, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return b, errdefs.NotFound("branch %s/%s does not exist; see velo branch list %s", p.Name, name, p.Name)
	}
	return b, err
}

// ref resolves "project/branch" to its records.
func (e *Engine) ref(ctx context.Context, ref string) (state.Project, state.Branch, error) {
	pn, bn, err := ParseRef(ref)
	if err != nil {
		return state.Project{}, state.Branch{}, err
	}
	p, err := e.project(ctx, pn)
	if err != nil {
		return p, state.Branch{}, err
	}
	b, err := e.branch(ctx, p, bn)
	return p, b, err
}
