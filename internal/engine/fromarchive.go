package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/velohq/velo/internal/ui"
)

// A project restored on a second host from the first one's archive in
// object storage (project create --from-archive): main's volume gets the
// tar of a pushed snapshot (snappush.go), then replays the WAL of the
// snapshot's volume from the bucket, fetched by restore_command running
// velo wal fetch. Without --follow main is promoted at the end of that
// WAL (or at --pitr) and is an ordinary writable project; with --follow it
// stays a hot standby fed from the bucket, as a following import is fed
// by streaming (imported: p.Source, Mode physical, with Archive set).
// Credentials are the AWS chain's, written for restore_command into a
// 0600 file of the server's user outside every volume, as a following
// import keeps its source's password; never in an argument.

// archivePlan is what --from-archive learned before taking the lock.
type archivePlan struct {
	loc      objstore.Location
	endpoint string
	m        Manifest
	target   *pitrTarget
	creds    []byte
	region   string
}

// checkFromArchiveFlags refuses what does not go with --from-archive.
func checkFromArchiveFlags(o CreateProjectOptions) error {
	switch {
	case o.FromArchive == "" && (o.Follow || o.PITR != ""):
		return errdefs.Invalid("--follow and --pitr go with --from-archive s3://BUCKET/PREFIX")
	case o.FromArchive == "":
		return nil
	case o.From != "" || o.Logical || o.NoFollow || o.Slot || len(o.Databases) > 0:
		return errdefs.Invalid("--from-archive restores another host's project; it does not go with --from, --logical, --no-follow, --slot or --database")
	case o.Image != "":
		return errdefs.Invalid("--from-archive with --image is not supported: the restore runs the host's PostgreSQL; drop --image")
	case o.Archive != "":
		return errdefs.Invalid("--archive with --from-archive is not supported: the prefix is the first host's; restore first, then give the new project its own with velo project set %s --archive s3://BUCKET/OTHER", o.Name)
	case o.PGVersion != 0:
		return errdefs.Invalid("--from-archive runs the major of the pushed snapshot; drop --pg-version")
	case o.Follow && o.PITR != "":
		return errdefs.Invalid("--follow keeps replaying new WAL; --pitr stops at a moment: give one of them")
	}
	return nil
}

// planFromArchive reads the bucket and picks the snapshot to restore: the
// newest pushed, or the newest taken before --pitr. Nothing is made.
func (e *Engine) planFromArchive(ctx context.Context, o CreateProjectOptions) (*archivePlan, error) {
	loc, err := objstore.ParseLocationFlag("--from-archive", o.FromArchive)
	if err != nil {
		return nil, err
	}
	pl := &archivePlan{loc: loc, endpoint: o.ArchiveEndpoint}
	if o.PITR != "" {
		t, err := e.parseTarget("--pitr", o.PITR)
		if err != nil {
			return nil, err
		}
		if !t.IsLSN && t.Time.After(time.Now()) {
			return nil, errdefs.Invalid("--pitr %s is in the future (now is %s)", utc(t.Time), utc(time.Now()))
		}
		pl.target = &t
	}
	st, err := objstore.Open(ctx, loc, o.ArchiveEndpoint)
	if err != nil {
		return nil, err
	}
	e.Progress.Title("Restoring project %s from %s...", o.Name, loc)
	var ms []Manifest
	if err := e.Progress.Step("Read the bucket", func() error {
		if err := st.Check(ctx); err != nil {
			return err
		}
		ms, _, err = e.readManifests(ctx, st)
		return err
	}); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errdefs.FailedPrecondition("%s holds no pushed snapshot: on the first host, push one with velo snapshot push ID (or velo snapshot create P/B --push) into the project's archive there", loc)
	}
	m, err := pickManifest(ms, pl.target, loc)
	if err != nil {
		return nil, err
	}
	pl.m = m
	if _, err := e.install(ctx, m.PGMajor); err != nil {
		return nil, errdefs.Invalid("snapshot %s holds PostgreSQL %d data, which is not installed here (%v); install it (or add its bin directory to VELO_PG_BIN)", m.Snapshot, m.PGMajor, err)
	}
	if pl.creds, pl.region, err = objstore.CredentialsFile(ctx); err != nil {
		return nil, err
	}
	e.Progress.Note("restoring snapshot %s of %s/%s (taken %s, %s)", m.Snapshot, m.Project, orDash(m.Branch), utc(m.CreatedAt), ui.Bytes(m.Size))
	return pl, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pickManifest is the snapshot a restore starts from (ms oldest first):
// the newest, or the newest a recovery to target can start from.
func pickManifest(ms []Manifest, target *pitrTarget, loc objstore.Location) (Manifest, error) {
	if target == nil {
		return ms[len(ms)-1], nil
	}
	var snaps []state.Snapshot // newest first, as pitrBase wants
	for i := len(ms) - 1; i >= 0; i-- {
		snaps = append(snaps, state.Snapshot{ID: ms[i].Snapshot, CreatedAt: ms[i].CreatedAt, EndLSN: ms[i].EndLSN})
	}
	var base *state.Snapshot
	if target.IsLSN {
		base = lsnBase(snaps, target.LSN)
	} else {
		base = pitrBase(snaps, target.Time)
	}
	if base == nil {
		first := ms[0]
		return Manifest{}, errdefs.FailedPrecondition("--pitr %s is before the oldest snapshot pushed to %s (%s, taken %s at LSN %s): the earliest reachable moment is %s",
			target, loc, first.Snapshot, utc(first.CreatedAt), first.EndLSN, earliestBound(first.CreatedAt))
	}
	for _, m := range ms {
		if m.Snapshot == base.ID {
			return m, nil
		}
	}
	return Manifest{}, errors.New("internal: picked snapshot not found")
}

// createFromArchive makes project o.Name from a pushed snapshot and the
// WAL in the bucket (see the top of this file).
func (e *Engine) createFromArchive(ctx context.Context, o CreateProjectOptions, listen []string) (Conn, error) {
	pl, err := e.planFromArchive(ctx, o)
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
		in, err := e.install(ctx, pl.m.PGMajor)
		if err != nil {
			return errdefs.Invalid("%v", err)
		}
		u, err := e.osUser()
		if err != nil {
			return err
		}
		p := state.Project{ID: newID("p"), Name: o.Name, PGMajor: in.Major, ArchiveTimeout: int(o.ArchiveTimeout / time.Second), Listen: strings.Join(listen, ","), CreatedAt: time.Now(), Runtime: state.RuntimeNative}
		p.Source = &state.Source{Mode: ModePhysical, Following: o.Follow, Superuser: pl.m.Superuser, Version: fmt.Sprint(pl.m.PGMajor), ImportedAt: time.Now(),
			Archive: pl.loc.String(), ArchiveEndpoint: pl.endpoint, ArchiveRegion: pl.region, ArchiveSnapshot: pl.m.Snapshot, ArchiveVolume: pl.m.Volume}
		d, b, err := e.placeMain(ctx, o, &p, func(d storage.Driver) error { return e.requireImportSpace(ctx, p, d, pl.m.Size) })
		if err != nil {
			return err
		}
		vol, err := e.newVolume(ctx, op, p, d, b.VolumeID)
		if err != nil {
			return err
		}
		spec := e.specAt(p, in, u, b, vol)
		if err := e.populateFromArchive(ctx, op, p, spec, pl); err != nil {
			return err
		}
		var extra map[string]string
		if !o.Follow {
			var target map[string]string
			if pl.target != nil {
				target = pl.target.settings()
			}
			extra = recoveryFrom("", target)
			extra["restore_command"] = e.fetchCommand(p, false)
		}
		if err := e.configure(p, b, spec, extra); err != nil {
			return err
		}
		op.onFail(func(ctx context.Context) error { return os.RemoveAll(e.archiveDir(b.VolumeID)) })
		// A start that fails has its reason quoted in the error: its
		// socket directory and log go with the rest.
		op.onFail(func(context.Context) error { removeBranchFiles(e, b); return nil })
		if err := e.startNew(ctx, op, spec); err != nil {
			return fmt.Errorf("%w (the WAL after snapshot %s is read from %s/wal/%s/; velo wal push on the first host uploads what is missing)", err, pl.m.Snapshot, pl.loc, pl.m.Volume)
		}
		if !o.Follow {
			// Promoted: the recovery settings were for that start only,
			// and the credentials with them.
			if err := e.configure(p, b, spec, nil); err != nil {
				return err
			}
			if err := e.adoptCopy(ctx, p, b); err != nil {
				return err
			}
			if err := removeIfExists(e.archiveCredsFile(p.ID)); err != nil {
				return err
			}
		}
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

// populateFromArchive fills main's new volume with the pushed snapshot's
// data and readies it to replay the bucket's WAL: the credentials file
// restore_command reads, the backup_label of a non-atomic snapshot, and
// standby.signal (--follow) or recovery.signal.
func (e *Engine) populateFromArchive(ctx context.Context, op *op, p state.Project, spec runtime.Spec, pl *archivePlan) error {
	creds := e.archiveCredsFile(p.ID)
	if err := op.record(ctx, stepWriteSourcePassfile, subject{Path: creds}); err != nil {
		return err
	}
	if err := writeSecretFile(creds, pl.creds, spec.RunAs); err != nil {
		return err
	}
	op.onFail(func(context.Context) error { return removeIfExists(creds) })
	st, err := objstore.Open(ctx, pl.loc, pl.endpoint)
	if err != nil {
		return err
	}
	if err := op.record(ctx, stepDownload, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return err
	}
	err = e.Progress.Transfer("Download snapshot "+pl.m.Snapshot, func(report func(done, total int64)) error {
		// A corrupt part fails the stream at its end, its bytes already
		// in the new volume, which the failure destroys.
		r := st.GetStream(ctx, pl.m.Parts)
		defer r.Close()
		var done int64
		if err := pg.UntarDataDir(r, spec.DataDir, spec.RunAs, func(n int64) { done += n; report(done, pl.m.Size) }); err != nil {
			return err
		}
		// The tar's end is not the stream's: the last part's checksum is
		// checked once the stream has been read to its end.
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if errors.Is(err, errdefs.ErrNoSpace) {
		return fmt.Errorf("%w; no space left on pool %s; nothing is kept: free space or pick a larger --pool, then retry", err, p.Pool)
	}
	if err != nil {
		return fmt.Errorf("%w (nothing is kept)", err)
	}
	if err := op.record(ctx, stepConfigure, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	return e.Progress.Step("Configure", func() error {
		if err := pg.PrepareImported(spec.DataDir, spec.RunAs); err != nil {
			return err
		}
		if err := e.newCA(p.Name); err != nil {
			return err
		}
		op.onFail(func(context.Context) error { return os.RemoveAll(e.caDir(p.Name)) })
		if pl.m.BackupLabel != "" {
			if err := pg.WriteBackupLabel(spec.DataDir, pl.m.BackupLabel, spec.RunAs); err != nil {
				return err
			}
		}
		signal := pg.RecoverySignal
		if p.Source.Following {
			signal = pg.StandbySignal
		}
		return pg.WriteSignal(spec.DataDir, signal, spec.RunAs)
	})
}

// fromArchive reports whether p was restored from an archive in object
// storage (--from-archive).
func fromArchive(p state.Project) bool { return imported(p) && p.Source.Archive != "" }

// sourceName is where an imported project's data comes from, for
// messages: HOST:PORT, or the bucket a restored project replays.
func sourceName(s *state.Source) string {
	if s.Archive != "" {
		return s.Archive
	}
	return fmt.Sprintf("%s:%d", s.Host, s.Port)
}

// archiveCredsFile is where a project restored from an archive keeps the
// store's credentials for restore_command, beside standbyPassfile.
func (e *Engine) archiveCredsFile(projectID string) string {
	return strings.TrimSuffix(e.standbyPassfile(projectID), ".pgpass") + ".aws"
}

// fetchCommand is the restore_command of p's main: velo wal fetch of the
// volume the pushed snapshot was taken of, with the credentials file in
// its environment. standby: a fetch that fails is retried by Postgres;
// otherwise it ends the recovery with an error (errdefs.ErrStopRecovery).
func (e *Engine) fetchCommand(p state.Project, standby bool) string {
	exe, err := os.Executable()
	if err != nil {
		exe = "velo"
	}
	s := p.Source
	var b strings.Builder
	fmt.Fprintf(&b, "AWS_SHARED_CREDENTIALS_FILE=%s AWS_CONFIG_FILE=/dev/null AWS_PROFILE=default ", shellQuote(e.archiveCredsFile(p.ID)))
	if s.ArchiveRegion != "" {
		fmt.Fprintf(&b, "AWS_REGION=%s ", shellQuote(s.ArchiveRegion))
	}
	fmt.Fprintf(&b, "%s wal fetch --archive %s", shellQuote(exe), shellQuote(s.Archive))
	if s.ArchiveEndpoint != "" {
		fmt.Fprintf(&b, " --archive-endpoint %s", shellQuote(s.ArchiveEndpoint))
	}
	fmt.Fprintf(&b, " --volume %s", shellQuote(s.ArchiveVolume))
	if standby {
		b.WriteString(" --standby")
	}
	b.WriteString(" %f %p")
	return b.String()
}

// archiveStandbySettings are those of a main following the bucket: its
// restore_command polls it for the next segment (every
// wal_retrieve_retry_interval, 5 s), and every segment replayed is
// archived into main's own archive, for --pitr here.
func (e *Engine) archiveStandbySettings(p state.Project, settings map[string]string) {
	settings["restore_command"] = e.fetchCommand(p, true)
	settings["archive_mode"] = "always"
	settings["hot_standby"] = "on"
}

// shellQuote quotes s for the shell Postgres runs restore_command with.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeSecretFile writes data to path, 0600 and owned by owner, through a
// temporary file renamed into place.
func writeSecretFile(path string, data []byte, owner *pg.OSUser) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := pg.Chown(tmp, owner); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// FetchWALOptions are velo wal fetch's: the file Postgres asks for (%f)
// and where to put it (%p), from the archive of one volume in a bucket.
type FetchWALOptions struct {
	Archive, Endpoint, Volume string
	Name, Path                string
	// Standby: Postgres retries a fetch that fails (a standby following
	// the bucket), so a store that does not answer is a plain failure.
	Standby bool
}

// FetchWAL is restore_command of a project restored from an archive: it
// downloads one WAL file, refusing it if its checksum differs. A file not
// in the bucket fails plainly (Postgres takes it as the end of the WAL);
// any other failure, after a few tries, stops a recovery that is not a
// standby's (errdefs.ErrStopRecovery), which must not promote early.
func FetchWAL(ctx context.Context, o FetchWALOptions) error {
	loc, err := objstore.ParseLocation(o.Archive)
	if err != nil {
		return err
	}
	if !archiveFileName.MatchString(o.Name) {
		return errdefs.NotFound("%s is no WAL file name: only segments, .history and .backup files are in the archive", quote(o.Name))
	}
	if !validVolumeID(o.Volume) {
		return errdefs.Invalid("--volume %s is not a volume ID", quote(o.Volume))
	}
	st, err := objstore.Open(ctx, loc, o.Endpoint)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		err = st.GetFile(ctx, walKey(o.Volume, o.Name), o.Path)
		if err == nil || errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if o.Standby || try == 3 || errors.Is(err, errdefs.ErrFailedPrecondition) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
	if o.Standby {
		return err
	}
	return errdefs.Mark(errdefs.ErrStopRecovery, err)
}

func validVolumeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
