package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// A masked branch (velo branch create --mask FILE.sql, or the project's
// default, velo project set --mask) holds none of the original values the
// script replaces, neither in what a query shows nor in any file of its
// volume. Its clone first starts listening on its private socket alone
// (no TCP), with its WAL archive off; the script runs there in one
// transaction, as the superuser; then everything that would still show an
// original value is removed:
//
//   - every table of the database is rewritten (VACUUM FULL, catalogs
//     included): the dead row versions the script left, their index
//     entries and TOAST chunks, and their free-space and visibility maps
//     go with the old files. Every table, not only those the script names:
//     triggers, cascades and functions change tables the script does not
//     name, and knowing which it touched would need statistics that are
//     reported late;
//   - pg_statistic (most-common values, histograms) and the extended
//     statistics are emptied before the rewrite and made again from the
//     masked rows (ANALYZE); the cumulative statistics are reset, and so
//     are pg_stat_statements' query texts where it is installed;
//   - prepared transactions inherited from the parent are rolled back
//     (their state files hold their rows);
//   - the WAL: segments the parent had made ready for reuse are removed
//     before the start, so that no new segment keeps an old one's bytes
//     (and the masking start never recycles: wal_recycle off); after the
//     masking a CHECKPOINT, a WAL switch and a clean stop leave the
//     shutdown checkpoint in a segment written after the masking, and
//     every other segment (the parent's, with its records and full-page
//     images, and the masking's own) is deleted with its archive status.
//     Nothing is archived before that: the branch's archive only ever
//     receives WAL written after the masking;
//   - replication slots, pg_stat_tmp, the log directory inside the data
//     directory, and the statistics file are removed.
//
// Only then is the server configured as any branch (TCP, the archive)
// and started again, and the branch recorded. Any failure undoes all of
// it: no branch is left. On copy-on-write storage the clone's files still
// share unchanged blocks with the parent in the pool; what the branch's
// volume shows through its own files holds no original value.
//
// The script runs in the database postgres, and its parts after a line
// \connect DB in DB, each in one transaction; a branch with a database
// the script does not name (besides the templates) is refused.

// maxMaskBytes bounds a mask script: it is kept in the state database.
const maxMaskBytes = 1 << 20

// ReadMask reads a mask script for --mask FILE: text, at most 1 MB, with
// at least one statement. "none" is no script.
func ReadMask(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", errdefs.Invalid("%s %s: %v", flag, quote(path), err)
	}
	switch {
	case len(b) > maxMaskBytes:
		return "", errdefs.Invalid("%s %s is %d bytes; a mask script holds at most %d", flag, quote(path), len(b), maxMaskBytes)
	case !utf8.Valid(b) || strings.ContainsRune(string(b), 0):
		return "", errdefs.Invalid("%s %s is not UTF-8 text", flag, quote(path))
	case len(pg.SplitScript(string(b))) == 0:
		return "", errdefs.Invalid("%s %s holds no SQL statement", flag, quote(path))
	}
	if _, err := pg.SplitConnects(string(b)); err != nil {
		return "", errdefs.Invalid("%s %s, %v", flag, quote(path), err)
	}
	return string(b), nil
}

// maskScript is a mask script's text and, for messages, where it came
// from (a file, or the project's default).
type maskScript struct {
	text, from string
}

// maskSettings are the masking start's settings: no archiving.
var maskSettings = map[string]string{"archive_mode": "off"}

// prepareMask readies a configured, stopped clone for the masking start:
// the parent's segments beyond end (its newest WAL position when the
// snapshot was taken) are removed, with its replication slots, its
// statistics scratch files and its log directory; it is configured to
// listen on its socket alone, without archiving.
func (e *Engine) prepareMask(p state.Project, b state.Branch, spec runtime.Spec, end string, extra map[string]string) error {
	l, err := pg.ParseLSN(end)
	if err != nil {
		return errdefs.FailedPrecondition("the snapshot to mask records no WAL position (it was made by an older velo): branch from a new one")
	}
	wal := filepath.Join(spec.DataDir, "pg_wal")
	entries, err := os.ReadDir(wal)
	if err != nil {
		return err
	}
	last := uint64(l) >> 24
	for _, en := range entries {
		if n, ok := segmentNumber(en.Name()); ok && n > last {
			if err := os.Remove(filepath.Join(wal, en.Name())); err != nil {
				return err
			}
		}
	}
	if err := scrubFiles(spec.DataDir); err != nil {
		return err
	}
	settings := map[string]string{}
	for k, v := range extra {
		settings[k] = v
	}
	for k, v := range maskSettings {
		settings[k] = v
	}
	return e.configureWith(p, b, spec, settings, false, true)
}

var walFile = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.backup|\.[0-9A-F]{8}\.backup)?$`)

// segmentNumber is the position of a WAL segment file (16 MB segments),
// counted as segments() does; ok is false for other files (history
// files, archive_status).
func segmentNumber(name string) (uint64, bool) {
	m := walFile.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	var log, seg uint64
	fmt.Sscanf(m[2], "%X", &log)
	fmt.Sscanf(m[3], "%X", &seg)
	return log*0x100 + seg, true
}

// scrubFiles removes what a data directory holds besides its tables that
// may show an original value: replication slots (which would keep old
// WAL), the statistics' scratch files (pg_stat_statements' query texts),
// the saved statistics, and logs written inside the data directory.
func scrubFiles(dataDir string) error {
	for _, dir := range []string{"pg_replslot", "pg_stat_tmp", "pg_stat"} {
		entries, err := os.ReadDir(filepath.Join(dataDir, dir))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, en := range entries {
			if err := os.RemoveAll(filepath.Join(dataDir, dir, en.Name())); err != nil {
				return err
			}
		}
	}
	for _, dir := range []string{"log", "pg_log"} {
		if err := os.RemoveAll(filepath.Join(dataDir, dir)); err != nil {
			return err
		}
	}
	return nil
}

// startNewClone starts a new branch's configured clone: masked with
// script when there is one (end is the WAL position the snapshot it was
// cloned from reaches), else as startClone does.
func (e *Engine) startNewClone(ctx context.Context, op *op, p state.Project, b state.Branch, spec runtime.Spec, inData, end string, script maskScript) error {
	if script.text == "" {
		return e.startClone(ctx, op, p, b, spec, inData)
	}
	if err := e.prepareMask(p, b, spec, end, nil); err != nil {
		return err
	}
	return e.startMasked(ctx, op, p, b, spec, inData, script)
}

// refuseMask refuses what masking cannot do yet: a point-in-time branch
// (its recovery start would need masking too).
func refuseMask(p state.Project, pitr bool) error {
	if pitr {
		return errdefs.Invalid("a masked point-in-time branch is not built yet: make the branch with --pitr without a mask (velo project set %s --mask none first if the project has a default), then a masked branch of it with velo branch create %s/NEW --parent %s/THAT --mask FILE.sql", p.Name, p.Name, p.Name)
	}
	return nil
}

// refuseUnmaskingReset refuses the reset of a masked branch to an
// unmasked parent's data: it would bring back every original value.
func (e *Engine) refuseUnmaskingReset(ctx context.Context, p state.Project, b state.Branch) error {
	if !b.Masked || b.ParentID == "" {
		return nil
	}
	parent, err := e.Store.Q().BranchByID(ctx, b.ParentID)
	if err != nil || parent.Masked {
		return err
	}
	return errdefs.FailedPrecondition("%s/%s is masked and its parent %s/%s is not: a reset would bring back the parent's original values; delete it and make it again with velo branch create %s/%s --mask FILE.sql", p.Name, b.Name, p.Name, parent.Name, p.Name, b.Name)
}

// startMasked starts a clone prepared by prepareMask, masks it with
// script and leaves it running as branch b, listening on TCP. inData is
// the password its data holds; b gets its own before any TCP login.
func (e *Engine) startMasked(ctx context.Context, op *op, p state.Project, b state.Branch, spec runtime.Spec, inData string, script maskScript) error {
	socketOnly := spec
	socketOnly.SocketOnly = true
	// A failed masking leaves nothing: no socket directory, no log (run
	// after the server is stopped, undos going last first).
	op.onFail(func(context.Context) error { removeBranchFiles(e, b); return nil })
	if err := op.record(ctx, stepStartServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	err := e.Progress.Step("Start on its socket only", func() error {
		_, err := e.Runtime.Start(ctx, socketOnly)
		return err
	})
	op.onFail(func(ctx context.Context) error { return e.Runtime.Stop(ctx, spec, 5*time.Second) })
	if err != nil {
		return err
	}
	if err := op.record(ctx, stepMask, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := e.mask(ctx, spec, e.maskSession(p, b, spec, inData), script); err != nil {
		return err
	}
	if err := op.record(ctx, stepStopServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := e.Progress.Step("Stop", func() error { return e.Runtime.Stop(ctx, spec, time.Minute) }); err != nil {
		return err
	}
	if err := op.record(ctx, stepScrubWAL, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := e.Progress.Step("Remove the WAL written before masking", func() error { return scrubWAL(spec.DataDir) }); err != nil {
		return err
	}
	if err := scrubFiles(spec.DataDir); err != nil {
		return err
	}
	// Nothing was archived; nothing from before may ever be.
	if err := clearDir(e.archiveDir(b.VolumeID)); err != nil {
		return err
	}
	if err := op.record(ctx, stepConfigure, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	if err := e.configure(p, b, spec, nil); err != nil {
		return err
	}
	if err := op.record(ctx, stepStartServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	return e.Progress.Step("PostgreSQL ready", func() error {
		_, err := e.Runtime.Start(ctx, spec)
		return err
	})
}

// scrubWAL deletes, in a stopped server's pg_wal, every WAL segment but
// the one holding its shutdown checkpoint (written after the masking),
// with their archive status files.
func scrubWAL(dataDir string) error {
	cp, err := pg.ControlCheckpoint(dataDir)
	if err != nil {
		return err
	}
	keep := uint64(cp) >> 24
	wal := filepath.Join(dataDir, "pg_wal")
	entries, err := os.ReadDir(wal)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if n, ok := segmentNumber(en.Name()); ok && (n != keep || strings.Contains(en.Name(), ".")) {
			if err := os.Remove(filepath.Join(wal, en.Name())); err != nil {
				return err
			}
		}
	}
	return clearDir(filepath.Join(wal, "archive_status"))
}

// clearDir removes what dir holds, keeping dir.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		if err := os.RemoveAll(filepath.Join(dir, en.Name())); err != nil {
			return err
		}
	}
	return nil
}

// SetProjectMask records a project's default mask: the text of a script
// (ReadMask), or "" for none. The text is kept, not the file's path, so
// that a later edit of the file changes nothing behind the user's back.
func (e *Engine) SetProjectMask(ctx context.Context, name, mask string) error {
	if err := ValidateName("project", name); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, err := e.project(ctx, name)
		if err != nil {
			return err
		}
		if mask != "" {
			if err := refuseMask(p, false); err != nil {
				return err
			}
		}
		if err := op.record(ctx, stepWriteState, subject{Record: "project", ID: p.Name}); err != nil {
			return err
		}
		if err := e.Store.Q().SetMask(ctx, p.ID, mask); err != nil {
			return err
		}
		// In the volumes' identity too: a rebuild must not lose it.
		e.refreshIdentities(ctx, p.ID)
		return nil
	})
}
