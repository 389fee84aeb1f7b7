package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

// ModeLogical is the state.Source mode of a project made from a dump of
// its source.
const ModeLogical = "logical"

// logicalSource is SOURCE as a logical import reads it: read-only
// sessions for its catalogs, and conninfo for pg_dump and pg_dumpall whose
// password is in a 0600 passfile (never in an argument or the environment).
type logicalSource struct {
	src      pg.Source
	passfile string
	cleanup  func()
}

// openLogicalSource is src, its password not yet written anywhere.
func openLogicalSource(src pg.Source) (*logicalSource, error) {
	return &logicalSource{src: src, cleanup: func() {}}, nil
}

// writePassfile gives the client tools src's password in a 0600 file in a
// private directory under dir: the volume being loaded, so that whatever
// a kill leaves of it goes with the volume; removed by close.
func (ls *logicalSource) writePassfile(dir string) error {
	path, cleanup, err := pg.TempPassfile(dir, ls.src, nil)
	if err != nil {
		return err
	}
	ls.passfile, ls.cleanup = path, cleanup
	return nil
}

func (ls *logicalSource) close() { ls.cleanup() }

// conninfo reaches database db of the source.
func (ls *logicalSource) conninfo(db string) string {
	return ls.src.Conninfo(ls.passfile, map[string]string{"dbname": db, "application_name": "velo"})
}

// connect opens a session on the source whose transactions are read-only:
// Velo never writes to a source.
func (ls *logicalSource) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pg.ConnectSource(ctx, ls.src)
	if err != nil {
		return nil, sourceError(err)
	}
	if _, err := conn.Exec(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

func (ls *logicalSource) name() string { return ls.src.Display() }

// sourceFacts is what a logical import learnt of its source before
// anything was made.
type sourceFacts struct {
	major     int
	version   string
	superuser bool
	databases []string // the ones to import, in order
	size      int64    // their sizes' sum
	tools     pg.Install
}

// inspectSource reads the source's version, whether Velo's role there is
// a superuser, and its databases: want, each of which must exist, or every
// database that is not a template and accepts connections. refreshing
// names the project a refresh is for, whose databases were asked for at
// its creation.
func (e *Engine) inspectSource(ctx context.Context, src *logicalSource, want []string, refreshing string) (sourceFacts, error) {
	var f sourceFacts
	conn, err := src.connect(ctx)
	if err != nil {
		return f, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var num int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version'),
		COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)`).Scan(&num, &f.version, &f.superuser); err != nil {
		return f, fmt.Errorf("read the source's version: %w", err)
	}
	f.major = num / 10000 // 9 for 9.6 (90600), as pg.ParseVersion counts
	rows, err := conn.Query(ctx, `SELECT datname, CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname) ELSE 0 END
		FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname`)
	if err != nil {
		return f, fmt.Errorf("list the source's databases: %w", err)
	}
	sizes := map[string]int64{}
	var all []string
	for rows.Next() {
		var name string
		var size int64
		if err := rows.Scan(&name, &size); err != nil {
			rows.Close()
			return f, err
		}
		sizes[name] = size
		all = append(all, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("list the source's databases: %w", err)
	}
	f.databases = all
	if len(want) > 0 {
		f.databases = nil
		for _, d := range want {
			if _, ok := sizes[d]; !ok && refreshing == "" {
				return f, errdefs.Invalid("--database %s: the source %s has no such database (or it is a template or refuses connections); it has %s",
					ui.Quote(d), src.name(), strings.Join(all, ", "))
			} else if !ok {
				return f, errdefs.FailedPrecondition("project %s was imported with database %s, which the source %s no longer has (or it is a template or refuses connections now; it has %s); import what it has into a new project with velo project create NAME --from SOURCE --logical --database ...",
					refreshing, ui.Quote(d), src.name(), strings.Join(all, ", "))
			}
			if !slices.Contains(f.databases, d) {
				f.databases = append(f.databases, d)
			}
		}
	}
	for _, d := range f.databases {
		f.size += sizes[d]
	}
	in, err := e.installs0(ctx)
	if err != nil {
		return f, err
	}
	f.tools, err = pg.DumpTools(in, f.major)
	if err != nil {
		return f, errdefs.Invalid("%v", err)
	}
	return f, nil
}

// installs0 is every install found, newest first.
func (e *Engine) installs0(ctx context.Context) ([]pg.Install, error) {
	if _, err := e.install(ctx, 0); err != nil && !errors.Is(err, errdefs.ErrEnvironment) {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.installs, nil
}

// targetInstall is the install of the new cluster: --pg-version, or the
// newest installed; never older than the source (a dump loads only into
// the same or a newer major).
func (e *Engine) targetInstall(ctx context.Context, want int, f sourceFacts) (pg.Install, error) {
	if want != 0 && want < f.major {
		return pg.Install{}, errdefs.Invalid("--pg-version %d is older than the source's PostgreSQL %s; a dump loads only into the same major or a newer one: use --pg-version %d or later",
			want, f.version, f.major)
	}
	in, err := e.install(ctx, want)
	if err != nil {
		return in, errdefs.Invalid("%v", err)
	}
	if in.Major < f.major {
		if want == 0 {
			return in, errdefs.Invalid("the source runs PostgreSQL %s, newer than any installed here (newest %d); install PostgreSQL %d or later, or set %s",
				f.version, in.Major, f.major, pg.BinEnv)
		}
		return in, errdefs.Invalid("--pg-version %d is older than the source's PostgreSQL %s; a dump loads only into the same major or a newer one: use --pg-version %d or later",
			want, f.version, f.major)
	}
	return in, nil
}

// importSettings are the settings of a server while a dump is restored
// into it: no WAL archive (a restore writes as much WAL as data, and no
// moment of it is worth recovering to) and wal_level minimal, with which
// pg_restore -j loads each new table's rows without writing them to the
// WAL. The server is restarted with the project's settings afterwards.
var importSettings = map[string]string{"archive_mode": "off"}

// importInto makes tmp's volume, a new cluster of in whose superuser has
// tmp's password, and loads the source's roles and databases into it. It
// returns with the server stopped, configured as tmp; the caller
// configures and starts it as what it becomes. freshCA makes the project
// a new certificate authority (a new project).
func (e *Engine) importInto(ctx context.Context, op *op, p state.Project, d storage.Driver, in pg.Install, src *logicalSource, f sourceFacts, tmp state.Branch, freshCA bool) (runtime.Spec, error) {
	u, err := e.osUser()
	if err != nil {
		return runtime.Spec{}, err
	}
	spec, err := e.initVolume(ctx, op, p, d, in, u, tmp, freshCA, true)
	if err != nil {
		return spec, err
	}
	if err := e.startNew(ctx, op, spec); err != nil {
		return spec, err
	}
	op.onFail(func(context.Context) error { removeBranchFiles(e, tmp); return nil })
	// The restore's own pgpass and the dumps sit in the volume, beside the
	// data directory: whatever a kill leaves of them goes with the volume.
	work := filepath.Dir(spec.DataDir)
	target, err := targetConninfo(work, spec.Port, tmp.Password)
	if err != nil {
		return spec, err
	}
	defer os.Remove(filepath.Join(work, ".velo-restore.pgpass"))
	if err := src.writePassfile(work); err != nil {
		return spec, err
	}
	defer src.close()
	noOwner, err := e.restoreRoles(ctx, op, src, f, spec.Port, tmp.Password)
	if err != nil {
		return spec, err
	}
	jobs := max(2, goruntime.NumCPU())
	for _, db := range f.databases {
		dir := filepath.Join(work, "dump")
		if err := os.RemoveAll(dir); err != nil {
			return spec, err
		}
		if err := op.record(ctx, stepDump, subject{ID: db}); err != nil {
			return spec, err
		}
		if err := e.Progress.Step("Dump "+db, func() error {
			return pg.Dump(ctx, pg.DumpOptions{Tools: f.tools, Conninfo: src.conninfo(db), Dir: dir, Jobs: jobs})
		}); err != nil {
			return spec, fmt.Errorf("dump database %s of the source %s: %w", db, src.name(), err)
		}
		if err := op.record(ctx, stepRestore, subject{ID: db}); err != nil {
			return spec, err
		}
		if err := e.Progress.Step("Restore "+db, func() error {
			return pg.Restore(ctx, pg.RestoreOptions{Tools: f.tools, Conninfo: target, Dir: dir, Database: db, Create: db != pg.Superuser, Jobs: jobs, NoOwner: noOwner})
		}); err != nil {
			return spec, fmt.Errorf("restore database %s into PostgreSQL %d failed, so nothing of the import is kept (the source is untouched); fix on the source what the error names (pg_restore runs with an empty search_path, so a function that relies on it is a common cause), or leave that database out with --database: %w", db, in.Major, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return spec, err
		}
	}
	if err := op.record(ctx, stepStopServer, subject{Path: spec.DataDir}); err != nil {
		return spec, err
	}
	if err := e.Progress.Step("Stop after the import", func() error { return e.Runtime.Stop(ctx, spec, time.Minute) }); err != nil {
		return spec, err
	}
	return spec, nil
}

// targetConninfo reaches the new server as its superuser (no dbname), its
// password in a 0600 pgpass file under dir.
func targetConninfo(dir string, port int, password string) (string, error) {
	path := filepath.Join(dir, ".velo-restore.pgpass")
	line := fmt.Sprintf("%s:%d:*:%s:%s\n", pg.LocalHost, port, pg.Superuser, password)
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("host=%s port=%d user=%s sslmode=disable application_name=velo passfile='%s'", pg.LocalHost, port, pg.Superuser,
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(path)), nil
}

// restoreRoles loads the source's roles into the new server. The target's
// superuser postgres stays as Velo made it (its password is the branch's),
// and the role Velo reads the source as keeps no password: no branch holds
// even a verifier of the credential used on the source. It reports whether
// the roles are missing, so that ownership must be left out of the restore.
func (e *Engine) restoreRoles(ctx context.Context, op *op, src *logicalSource, f sourceFacts, port int, password string) (noOwner bool, err error) {
	if err := op.record(ctx, stepRestoreRoles, subject{ID: src.name()}); err != nil {
		return false, err
	}
	var restored int
	var skipped []string
	err = e.Progress.Step("Restore roles", func() error {
		sql, err := pg.DumpRoles(ctx, f.tools, src.conninfo(src.src.Database), f.superuser)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("all roles: pg_dumpall --roles-only failed (%v)", firstLine(err.Error())))
			noOwner = true
			return nil
		}
		conn, err := pg.Connect(ctx, port, password)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		seen := map[string]bool{}
		for _, st := range pg.RoleStatements(sql) {
			if st.Role == pg.Superuser {
				continue
			}
			stmt := st.SQL
			if st.Role == src.src.User {
				stmt = pg.WithoutPassword(stmt)
			}
			if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "42710" { // duplicate_object: a built-in role
					continue
				}
				skipped = append(skipped, fmt.Sprintf("%s (%v)", pg.WithoutPassword(firstLine(stmt)), err))
				continue
			}
			if st.Role != "" && !seen[st.Role] {
				seen[st.Role] = true
				restored++
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	e.Progress.Note("roles: %s restored", plural(restored, "role", "roles"))
	if !f.superuser && !noOwner {
		e.Progress.Warn("roles: passwords not copied (%s is not a superuser on the source, so pg_authid is not readable); set them with ALTER ROLE ... PASSWORD", src.src.User)
	}
	if src.src.User != pg.Superuser && !noOwner {
		e.Progress.Note("roles: %s has no password here (the role the import reads the source as)", src.src.User)
	}
	for _, s := range skipped {
		e.Progress.Note("roles: skipped %s", s)
	}
	if noOwner {
		e.Progress.Warn("roles: objects are owned by postgres, and grants left out, since the roles could not be read")
	}
	return noOwner, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// checkImportSpace refuses, before anything is made, a pool without room
// for the source's databases beside the room Velo keeps free: a restored
// database takes about the space it takes on the source (its dump, kept in
// the volume until it is restored, is compressed and smaller).
func (e *Engine) checkImportSpace(ctx context.Context, p state.Project, d storage.Driver, f sourceFacts) error {
	st, err := d.Pool(ctx)
	if err != nil {
		return nil // unreadable figures: the import fails on its own if it must
	}
	need := f.size + minPoolFree
	if st.Free >= need {
		return nil
	}
	return errdefs.NoSpace("no space left on pool %s for project %s: the source's %s take %s, and the pool has %s free of %s (Velo keeps %s free besides); free space (velo status shows what uses it) or pick a roomier --pool",
		st.Name, p.Name, plural(len(f.databases), "database", "databases"), ui.Bytes(f.size), ui.Bytes(st.Free), ui.Bytes(st.Size), ui.Bytes(minPoolFree))
}

// createLogical makes project o.Name from a dump of src (project create
// --from SOURCE --logical). Everything about the source is read, and the
// pool's room checked, before anything is made.
func (e *Engine) createLogical(ctx context.Context, o CreateProjectOptions, src pg.Source, listen []string) (Conn, error) {
	ls, err := openLogicalSource(src)
	if err != nil {
		return Conn{}, err
	}
	defer ls.close()
	var result Conn
	err = e.mutate(ctx, func(op *op) error {
		if _, err := e.Store.Q().Project(ctx, o.Name); err == nil {
			return errdefs.AlreadyExists("project %s already exists; see velo project get %s", o.Name, o.Name)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		e.Progress.Title("Importing %s into project %s...", ls.name(), o.Name)
		f, err := e.inspectSource(ctx, ls, o.Databases, "")
		if err != nil {
			return err
		}
		in, err := e.targetInstall(ctx, o.PGVersion, f)
		if err != nil {
			return err
		}
		e.Progress.Note("source: PostgreSQL %s, %s (%s), %s; client tools of PostgreSQL %d", f.version,
			plural(len(f.databases), "database", "databases"), strings.Join(f.databases, ", "), ui.Bytes(f.size), f.tools.Major)
		now := time.Now()
		p := state.Project{ID: newID("p"), Name: o.Name, PGMajor: in.Major, ArchiveTimeout: int(o.ArchiveTimeout / time.Second),
			Listen: strings.Join(listen, ","), CreatedAt: now, Source: f.record(src, o.Databases, now)}
		d, b, err := e.placeMain(ctx, o, &p, func(d storage.Driver) error {
			if err := e.requireSpace(ctx, p, d, "a new server"); err != nil {
				return err
			}
			return e.checkImportSpace(ctx, p, d, f)
		})
		if err != nil {
			return err
		}
		spec, err := e.importInto(ctx, op, p, d, in, ls, f, b, true)
		if err != nil {
			return err
		}
		if err := e.configure(p, b, spec, nil); err != nil {
			return err
		}
		if err := e.startNew(ctx, op, spec); err != nil {
			return err
		}
		// A base snapshot, as project create takes: main's point-in-time
		// window opens at the import.
		base, err := e.takeBase(ctx, op, p, d, b)
		if err != nil {
			return err
		}
		if err := op.record(ctx, stepWriteState, subject{Record: "project", ID: p.Name}); err != nil {
			return err
		}
		if src.Password != "" {
			// Kept for velo project refresh where a following project keeps
			// its own (standbyPassfile): outside every volume, removed with
			// the project, and by doctor when a kill left it without one.
			path := e.standbyPassfile(p.ID)
			if err := op.record(ctx, stepWriteSourcePassfile, subject{Path: path}); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
				return err
			}
			if err := pg.WritePassfile(path, src, nil); err != nil {
				return err
			}
			op.onFail(func(context.Context) error { return removeIfExists(path) })
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

// record is what the project keeps of its source: where, what, when;
// no secret.
func (f sourceFacts) record(src pg.Source, asked []string, at time.Time) *state.Source {
	return &state.Source{Mode: ModeLogical, Host: src.Host, Port: src.Port, User: src.User, Database: src.Database,
		Databases: asked, Imported: f.databases, SSL: src.SSL, Service: src.Service, Version: f.version, ImportedAt: at}
}
