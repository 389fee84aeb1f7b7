package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/objstore"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
)

// MainBranch is the branch every project starts with.
const MainBranch = "main"

// CreateProjectOptions are the flags of `velo project create`.
type CreateProjectOptions struct {
	Name      string
	Pool      string
	Storage   string
	PGVersion int
	Image     string
	// ArchiveTimeout bounds how old the newest archived WAL may be; 0 means 60 s.
	ArchiveTimeout time.Duration
	// Listen is what the servers listen on besides 127.0.0.1 (pg.ParseListen).
	Listen string
	// From is the SOURCE to import (a libpq URL or service=NAME); "" makes
	// an empty project. See import.go.
	From string
	// Logical imports with a dump and restore instead of a base backup.
	Logical bool
	// NoFollow takes one copy and promotes it instead of following.
	NoFollow bool
	// Slot makes a replication slot on the source for main to stream from.
	Slot bool
	// Databases are the databases a logical import takes (all when empty).
	Databases []string
	// IfNotExists makes an existing project a success, returned unchanged,
	// unless a --pool, --storage or --pg-version given says otherwise.
	IfNotExists bool
	// Archive is --archive (s3://BUCKET/PREFIX, none or ""), with
	// ArchiveEndpoint (SetArchive).
	Archive, ArchiveEndpoint string
	// FromArchive restores another host's project from its archive in
	// object storage (s3://BUCKET/PREFIX, at ArchiveEndpoint): to PITR (a
	// time or LSN) if given, and with Follow main stays a standby fed from
	// it. See fromarchive.go.
	FromArchive string
	PITR        string
	Follow      bool
}

// Conn is how to reach a branch's server.
type Conn struct {
	Branch   string
	Host     string
	Port     int
	User     string
	Password string
	Database string
	URL      string
	// CACert is the project's CA certificate, for sslmode=verify-full
	// sslrootcert=CACert.
	CACert string
	// RouterURL reaches the branch through velo serve's one port, routed
	// by the database name; RouterTLSURL by the TLS server name.
	RouterURL, RouterTLSURL string
}

// conn is how to reach b, with the project's CA certificate.
func (e *Engine) conn(p state.Project, b state.Branch, withPassword bool) Conn {
	c := conn(p, b, withPassword)
	c.CACert = e.caCert(p)
	addr := e.routerAddr()
	c.RouterURL = routerURL(addr, p, b, withPassword)
	c.RouterTLSURL = routerTLSURL(addr, c.CACert, p, b, withPassword)
	return c
}

func conn(p state.Project, b state.Branch, withPassword bool) Conn {
	c := Conn{Branch: p.Name + "/" + b.Name, Host: "localhost", Port: b.Port, User: "postgres", Database: "postgres"}
	if withPassword {
		c.Password = b.Password
		c.URL = pg.ConnString(c.Host, c.Port, b.Password)
	} else {
		c.URL = pg.MaskedConnString(c.Host, c.Port)
	}
	return c
}

// ValidateArchiveTimeout checks --archive-timeout: whole seconds from 1s
// to 24h (Postgres's archive_timeout counts seconds; 0 would turn it off).
func ValidateArchiveTimeout(d time.Duration) error {
	if d < time.Second || d > 24*time.Hour || d%time.Second != 0 {
		return errdefs.Invalid("--archive-timeout %s must be whole seconds between 1s and 24h", d)
	}
	return nil
}

// CreateProject makes a project and its main branch, running.
func (e *Engine) CreateProject(ctx context.Context, o CreateProjectOptions) (Conn, error) {
	if err := ValidateName("project", o.Name); err != nil {
		return Conn{}, err
	}
	// The pool's and driver's names, before the lock; the host is asked later.
	if err := drivers.Check(o.Pool, o.Storage); err != nil {
		return Conn{}, err
	}
	if o.Image != "" {
		if err := ValidateImage(o.Image); err != nil {
			return Conn{}, err
		}
	}
	if o.Image != "" && (o.From != "" || o.Logical || o.NoFollow || o.Slot || len(o.Databases) > 0) {
		return Conn{}, errdefs.Invalid("--image with --from is not supported: an import runs the host's PostgreSQL; drop --image")
	}
	if o.ArchiveTimeout == 0 {
		o.ArchiveTimeout = time.Minute
	}
	if err := ValidateArchiveTimeout(o.ArchiveTimeout); err != nil {
		return Conn{}, err
	}
	if o.PGVersion < 0 {
		return Conn{}, errdefs.Invalid("--pg-version %d is not a Postgres major version", o.PGVersion)
	}
	listen, err := parseListen(o.Listen)
	if err != nil {
		return Conn{}, err
	}
	if err := checkFromArchiveFlags(o); err != nil {
		return Conn{}, err
	}
	if o.FromArchive != "" {
		if err := objstore.ValidateEndpoint(o.ArchiveEndpoint); err != nil {
			return Conn{}, err
		}
		if c, found, err := e.existingProject(ctx, o); found || err != nil {
			return c, err
		}
		return e.createFromArchive(ctx, o, listen)
	}
	var archive ArchiveSetting
	if o.Archive != "" || o.ArchiveEndpoint != "" {
		if archive, err = ParseArchive(o.Archive, o.ArchiveEndpoint); err != nil {
			return Conn{}, err
		}
		if o.From != "" && !archive.Off {
			return Conn{}, errdefs.Invalid("--archive with --from is not supported yet: import first, then velo project set %s --archive %s", o.Name, archive.Loc)
		}
		if !archive.Off {
			// The bucket is checked before anything is made.
			if err := claimBucket(ctx, archive, ""); err != nil {
				return Conn{}, err
			}
		}
	}
	if o.From != "" || o.Logical || o.NoFollow || o.Slot || len(o.Databases) > 0 {
		// An import runs long and takes the lock in steps: an existing
		// project is looked for first (a create racing it is refused by
		// the import's own check).
		if c, found, err := e.existingProject(ctx, o); found || err != nil {
			return c, err
		}
		if !o.Logical {
			return e.createPhysical(ctx, o, listen)
		}
		return e.importProject(ctx, o, listen)
	}
	var result Conn
	err = e.mutate(ctx, func(op *op) error {
		if c, found, err := e.existingProject(ctx, o); found || err != nil {
			result = c
			return err
		}
		e.Progress.Title("Creating project %s...", o.Name)
		in, u, err := e.newServer(ctx, o)
		if err != nil {
			return err
		}
		p := state.Project{ID: newID("p"), Name: o.Name, PGMajor: in.Major, ArchiveTimeout: int(o.ArchiveTimeout / time.Second), Listen: strings.Join(listen, ","), CreatedAt: time.Now(),
			Runtime: state.RuntimeNative, Image: o.Image}
		if o.Image != "" {
			p.Runtime = state.RuntimeDocker
		}
		d, b, err := e.placeMain(ctx, o, &p, func(d storage.Driver) error { return e.requireSpace(ctx, p, d, "a new server") })
		if err != nil {
			return err
		}
		if spec, err := e.initVolume(ctx, op, p, d, in, u, b, true, false); err != nil {
			return err
		} else if err := e.startNew(ctx, op, spec); err != nil {
			return err
		}
		base, err := e.takeBase(ctx, op, p, d, b)
		if err != nil {
			return err
		}
		if o.Archive != "" && !archive.Off {
			if err := claimBucket(ctx, archive, p.ID); err != nil {
				return err
			}
			p.Archive, p.ArchiveEndpoint = archive.Loc.String(), archive.Endpoint
		}
		if err := op.record(ctx, stepWriteState, subject{Record: "project", ID: p.Name}); err != nil {
			return err
		}
		if err := e.insertNewProject(ctx, p, b, base); err != nil {
			return err
		}
		if p.Archive != "" {
			// The identity written at initdb did not know it yet.
			e.refreshIdentities(ctx, p.ID)
		}
		op.commit()
		result = e.conn(p, b, false)
		return nil
	})
	return result, err
}

// existingProject looks for the project o names: found with its main's
// connection under --if-not-exists when what o asks for matches it,
// otherwise refused as existing; not found is no error.
func (e *Engine) existingProject(ctx context.Context, o CreateProjectOptions) (Conn, bool, error) {
	p, err := e.Store.Q().Project(ctx, o.Name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return Conn{}, false, nil
	} else if err != nil {
		return Conn{}, false, err
	}
	if !o.IfNotExists {
		return Conn{}, true, errdefs.AlreadyExists("project %s already exists; see velo project get %s", o.Name, o.Name)
	}
	differs := func(flag, asked, has string) error {
		return errdefs.AlreadyExists("project %s already exists with %s %s, not %s; delete it (velo project delete %s --force) or leave %s out", o.Name, flag, has, asked, o.Name, flag)
	}
	switch {
	case o.Pool != "" && filepath.Clean(o.Pool) != p.Pool:
		return Conn{}, true, differs("--pool", o.Pool, p.Pool)
	case o.Storage != "" && o.Storage != p.Driver:
		return Conn{}, true, differs("--storage", o.Storage, p.Driver)
	case o.PGVersion != 0 && o.PGVersion != p.PGMajor:
		return Conn{}, true, differs("--pg-version", fmt.Sprint(o.PGVersion), fmt.Sprint(p.PGMajor))
	case o.Image != "" && o.Image != p.Image:
		has := p.Image
		if has == "" {
			has = "none (the host's PostgreSQL)"
		}
		return Conn{}, true, differs("--image", o.Image, has)
	}
	main, err := e.branch(ctx, p, MainBranch)
	if err != nil {
		return Conn{}, true, err
	}
	e.Progress.Note("project %s already exists: left as it is", o.Name)
	return e.conn(p, main, false), true, nil
}

// placeMain is the start every way of making a project shares: it picks
// p's storage, checks the pool has room (space says how much a new main
// needs), and makes the record of main with a new password and a free
// port. Nothing is made on disk yet but Velo's own directories.
func (e *Engine) placeMain(ctx context.Context, o CreateProjectOptions, p *state.Project, space func(storage.Driver) error) (storage.Driver, state.Branch, error) {
	if err := e.selectStorage(ctx, o, p); err != nil {
		return nil, state.Branch{}, err
	}
	d, err := e.driver(ctx, *p)
	if err != nil {
		return nil, state.Branch{}, err
	}
	if err := space(d); err != nil {
		return nil, state.Branch{}, err
	}
	password, err := pg.GeneratePassword()
	if err != nil {
		return nil, state.Branch{}, err
	}
	port, err := e.freePort(ctx)
	if err != nil {
		return nil, state.Branch{}, err
	}
	b := state.Branch{ID: newID("b"), ProjectID: p.ID, Name: MainBranch, VolumeID: newID("v"), Port: port, Password: password, WantRunning: true, CreatedAt: p.CreatedAt}
	return d, b, e.ensureDirs()
}

// selectStorage picks p's driver and pool from --pool and --storage.
func (e *Engine) selectStorage(ctx context.Context, o CreateProjectOptions, p *state.Project) error {
	err := e.Progress.Step("Select storage", func() error {
		driverName, pool, err := e.Pools.Resolve(ctx, o.Pool, o.Storage, e.defaultPool())
		if err != nil {
			return err
		}
		p.Driver, p.Pool = driverName, pool
		var d storage.Driver
		d, err = e.openDriver(ctx, p.Driver, p.Pool)
		if err == nil {
			// Refused, the pool the user named cannot be used: bad input.
			return errdefs.Mark(errdefs.ErrInvalid, e.probePool(ctx, d))
		}
		switch {
		case p.Driver == "zfs" && errors.Is(err, errdefs.ErrNotFound):
			// A bare word is read as a pool name: it may have been meant
			// as a directory.
			return errdefs.Invalid("%v; give --pool a pool that exists, or a directory by its absolute path", err)
		case errors.Is(err, errdefs.ErrUnsupported) || errors.Is(err, errdefs.ErrNotFound):
			// The pool the user named cannot hold this driver's volumes.
			return errdefs.Mark(errdefs.ErrInvalid, err)
		}
		return err
	})
	if err == nil {
		e.Progress.Note("storage: %s on %s", p.Driver, p.Pool)
		if p.Driver == "copy" && o.Storage != "copy" {
			e.Progress.Note("%s cannot clone files: every branch will be a full copy of its parent, taking time and space in proportion to the data; for copy-on-write branches make a pool (sudo velo setup --pool-file /var/lib/velo/pool.img --size 20G) and give it with --pool /var/lib/velo/pool", p.Pool)
		}
	}
	return err
}

// probePool tries, before a project's first volume, that this user can
// destroy what it makes in the pool (storage.Prober): refused, the pool
// is left as it was found.
func (e *Engine) probePool(ctx context.Context, d storage.Driver) error {
	pr, ok := d.(storage.Prober)
	if !ok {
		return nil
	}
	err := pr.Probe(ctx)
	if err != nil {
		e.releasePool(d)
	}
	return err
}

// releasePool removes the bookkeeping a driver made in a pool that holds
// nothing (storage.Releaser); something left there keeps it.
func (e *Engine) releasePool(d storage.Driver) {
	if r, ok := d.(storage.Releaser); ok {
		_ = r.Release()
	}
}

// initVolume creates b's volume and a new cluster in it, its superuser's
// password b's, configured to run as b (bulkLoad: to be loaded by an
// import, see importSettings); freshCA makes the project a new certificate
// authority first. The server is not started.
func (e *Engine) initVolume(ctx context.Context, op *op, p state.Project, d storage.Driver, in pg.Install, u *pg.OSUser, b state.Branch, freshCA, bulkLoad bool) (runtime.Spec, error) {
	vol, err := e.newVolume(ctx, op, p, d, b.VolumeID)
	if err != nil {
		return runtime.Spec{}, err
	}
	spec := e.specAt(p, in, u, b, vol)
	if err := op.record(ctx, stepInitdb, subject{Path: spec.DataDir}); err != nil {
		return spec, err
	}
	err = e.Progress.Step(fmt.Sprintf("Initialize PostgreSQL %s", in.Version), func() error {
		o, err := e.initOptions(ctx, p, in, u, spec.DataDir, b.Password)
		if err != nil {
			return err
		}
		if err := pg.InitDB(ctx, o); err != nil {
			return err
		}
		if freshCA {
			// A new CA, whatever a project of this name left behind; the
			// server's certificate comes from it in configure.
			if err := e.newCA(p.Name); err != nil {
				return err
			}
			op.onFail(func(context.Context) error { return os.RemoveAll(e.caDir(p.Name)) })
		}
		if bulkLoad {
			return e.configureLoad(p, b, spec, importSettings, true)
		}
		return e.configure(p, b, spec, nil)
	})
	if err != nil {
		return spec, err
	}
	op.onFail(func(ctx context.Context) error { return os.RemoveAll(e.archiveDir(b.VolumeID)) })
	return spec, nil
}

// newVolume makes volume id in p's pool, journalled and undone on
// failure, and returns its path.
func (e *Engine) newVolume(ctx context.Context, op *op, p state.Project, d storage.Driver, id string) (string, error) {
	if err := op.record(ctx, stepCreateVolume, subject{Driver: d.Name(), Pool: p.Pool, ID: id}); err != nil {
		return "", err
	}
	var vol string
	if err := e.Progress.Step("Create volume", func() error {
		var err error
		vol, err = d.CreateVolume(ctx, id)
		return err
	}); err != nil {
		return "", err
	}
	op.onFail(func(ctx context.Context) error { return d.DestroyVolume(ctx, id) })
	return vol, nil
}

// startNew starts a server made by this operation, undone on failure.
func (e *Engine) startNew(ctx context.Context, op *op, spec runtime.Spec) error {
	if err := op.record(ctx, stepStartServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	err := e.Progress.Step("PostgreSQL ready", func() error {
		_, err := e.Runtime.Start(ctx, spec)
		return err
	})
	if err != nil {
		_ = e.Runtime.Stop(context.WithoutCancel(ctx), spec, 5*time.Second)
		return err
	}
	op.onFail(func(ctx context.Context) error { return e.Runtime.Stop(ctx, spec, 5*time.Second) })
	return nil
}

// DeleteProject removes a project: servers, volumes, snapshots, records.
func (e *Engine) DeleteProject(ctx context.Context, name string, force bool) error {
	if err := ValidateName("project", name); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, name)
		if err != nil {
			return err
		}
		branches, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return err
		}
		if err := refuseProtected(p, branches, "deleted, nor its project "+p.Name); err != nil {
			return err
		}
		var others []string
		for _, b := range branches {
			if b.Name != MainBranch {
				others = append(others, p.Name+"/"+b.Name)
			}
		}
		if len(others) > 0 && !force {
			return errdefs.FailedPrecondition("project %s has %s besides main (%s); add --force to delete them too", p.Name, plural(len(others), "branch", "branches"), strings.Join(others, ", "))
		}
		e.Progress.Title("Deleting project %s...", p.Name)
		// A slot on a source that cannot be reached stops the delete
		// before anything goes, unless forced.
		if err := e.checkSourceReachable(ctx, p); err != nil && !force {
			return errdefs.FailedPrecondition("%v; or add --force to delete the project anyway, then drop the slot on the source by hand", err)
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		// Leaves first: a branch's volume outlives the clones of its snapshots.
		for _, b := range leavesFirst(branches) {
			if err := e.deleteBranch(ctx, op, p, d, b); err != nil {
				return err
			}
		}
		// main no longer streams from its slot: it can go.
		if err := e.forgetSource(ctx, op, p); err != nil {
			if !force {
				return err
			}
			e.Progress.Note("%v", err)
		}
		snaps, err := e.Store.Q().Snapshots(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if err := e.destroySnapshot(ctx, op, p, d, s); err != nil {
				return err
			}
		}
		if err := e.gc(ctx, op, p, d); err != nil {
			return err
		}
		if err := op.record(ctx, stepDeleteProject, subject{ID: p.Name}); err != nil {
			return err
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.DeleteProject(ctx, p.ID) }); err != nil {
			return err
		}
		// The last project of a pool leaves it as it was found: no empty
		// velo/{vol,snap,meta,tmp,trash} behind.
		if others, err := e.Store.Q().Projects(ctx); err == nil && !poolInUse(others, p) {
			e.releasePool(d)
		}
		// The CA goes with the project: no server it signed for is left.
		return os.RemoveAll(e.caDir(p.Name))
	})
}

// plural is n and its noun: "1 branch", "2 branches".
func plural(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, form(n, one, many))
}

// form is the words for one or for many, without the count: "that branch
// was", "those branches were".
func form(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ProjectInfo is what `project list` and `project get` show.
type ProjectInfo struct {
	// Archive is the project's archive in object storage (nil: none);
	// project get and status fill it in.
	Archive   *ArchiveSummary
	Name      string
	Storage   string
	Pool      string
	PGMajor   int
	Branches  int
	CreatedAt time.Time
	// Listen is listen_addresses of the project's servers.
	Listen string
	// CACert verifies the servers' certificates (sslrootcert).
	CACert string
	// Source is where an imported project's data came from; nil for one
	// made empty.
	Source *SourceInfo
	// Runtime runs the servers ("native", "docker"); Image is the
	// container image of a docker project.
	Runtime, Image string
	// Idle is the idle timeout of the branches but main that have none of
	// their own (0: never).
	Idle time.Duration
	// Mask is the project's default mask script ("" none).
	Mask string
}

// Projects lists the projects.
func (e *Engine) Projects(ctx context.Context) ([]ProjectInfo, error) {
	ps, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return nil, err
	}
	out := []ProjectInfo{}
	for _, p := range ps {
		bs, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		info := e.projectInfo(p, len(bs))
		e.followView(ctx, p, info.Source)
		out = append(out, info)
	}
	return out, nil
}

// Project returns one project's details.
func (e *Engine) Project(ctx context.Context, name string) (ProjectInfo, error) {
	if err := ValidateName("project", name); err != nil {
		return ProjectInfo{}, err
	}
	p, err := e.project(ctx, name)
	if err != nil {
		return ProjectInfo{}, err
	}
	bs, err := e.Store.Q().Branches(ctx, p.ID)
	if err != nil {
		return ProjectInfo{}, err
	}
	info := e.projectInfo(p, len(bs))
	e.followView(ctx, p, info.Source)
	info.Archive = e.describeArchive(ctx, p)
	return info, nil
}

func (e *Engine) projectInfo(p state.Project, branches int) ProjectInfo {
	return ProjectInfo{Name: p.Name, Storage: p.Driver, Pool: p.Pool, PGMajor: p.PGMajor, Branches: branches, CreatedAt: p.CreatedAt,
		Listen: pg.ListenAddresses(listenOf(p)), CACert: e.caCert(p), Source: sourceInfo(p.Source), Runtime: p.Runtime, Image: p.Image,
		Idle: time.Duration(p.IdleSeconds) * time.Second, Mask: p.Mask}
}

func removeBranchFiles(e *Engine, b state.Branch) {
	_ = os.RemoveAll(e.socketDir(b))
	_ = os.Remove(e.logFile(b))
	_ = os.Remove(e.secretFile(b.ID))
}

// poolInUse reports whether a project of ps other than p keeps its data in
// p's pool.
func poolInUse(ps []state.Project, p state.Project) bool {
	for _, o := range ps {
		if o.ID != p.ID && o.Pool == p.Pool {
			return true
		}
	}
	return false
}

// takeBase takes a new project's base snapshot of main, undone with op: main
// can then be recovered to any moment after its creation (or import), not
// only after someone's first snapshot; window.go says why nothing removes
// it on the side.
func (e *Engine) takeBase(ctx context.Context, op *op, p state.Project, d storage.Driver, b state.Branch) (state.Snapshot, error) {
	base, _, err := e.takeSnapshot(ctx, op, p, d, b, "", false)
	if err != nil {
		return base, err
	}
	op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroySnapshot(ctx, base.ID)) })
	return base, nil
}

// insertNewProject records a new project, its main and main's base
// snapshot in one transaction: all three or none.
func (e *Engine) insertNewProject(ctx context.Context, p state.Project, b state.Branch, base state.Snapshot) error {
	return e.Store.Tx(ctx, func(tx *state.Tx) error {
		if err := tx.InsertProject(ctx, p); err != nil {
			return err
		}
		if err := tx.InsertBranch(ctx, b); err != nil {
			return err
		}
		return tx.InsertSnapshot(ctx, p.ID, base)
	})
}
