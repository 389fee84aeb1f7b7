package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

// CreateBranchOptions are the flags of `velo branch create`.
type CreateBranchOptions struct {
	Ref    string // project/branch
	Parent string // project/branch; "" means project/main
	PITR   string
	// IfNotExists makes an existing branch of the same parent a success:
	// it is returned unchanged (a rerun CI job); one of another parent is
	// still refused.
	IfNotExists bool
	// Expiry is when velo prune deletes the branch (--ttl, --expires-at).
	Expiry ExpiryOptions
	// NewPassword gives the branch a superuser password of its own, set
	// before it takes a TCP login (newpassword.go); without it the branch
	// has its parent's, which is in the cloned data.
	NewPassword bool
	// FromSnapshot is a snapshot ID or unique prefix to clone instead of
	// the parent's current data (fromsnapshot.go).
	FromSnapshot string
	// Mask is a SQL file the new branch is masked with (masked.go);
	// without it, the project's default mask, if any. A branch of a
	// masked branch is masked whatever is given.
	Mask string
}

// CreateBranch clones the parent's current data into a new running branch.
func (e *Engine) CreateBranch(ctx context.Context, o CreateBranchOptions) (Conn, error) {
	pn, bn, err := ParseRef(o.Ref)
	if err != nil {
		return Conn{}, err
	}
	parentRef := pn + "/" + MainBranch
	if o.Parent != "" {
		ppn, _, err := ParseRef(o.Parent)
		if err != nil {
			return Conn{}, fmt.Errorf("--parent: %w", err)
		}
		if ppn != pn {
			return Conn{}, errdefs.Invalid("--parent %s is in project %s, but a branch of %s must come from %s itself", o.Parent, ppn, pn, pn)
		}
		parentRef = o.Parent
	}
	if o.FromSnapshot != "" {
		if o.PITR != "" || o.Parent != "" {
			return Conn{}, errdefs.Invalid("--from-snapshot names the data itself: give it without --pitr or --parent")
		}
		if err := ValidateSnapshotPrefix(o.FromSnapshot); err != nil {
			return Conn{}, fmt.Errorf("--from-snapshot: %w", err)
		}
		// A prefix that names nothing is refused before the lock, which
		// a changing command holds (and backs the state up under).
		if _, err := e.resolveSnapshot(ctx, o.FromSnapshot); err != nil {
			return Conn{}, err
		}
	}
	var target pitrTarget
	if o.PITR != "" {
		if target, err = e.parseTarget("--pitr", o.PITR); err != nil {
			return Conn{}, err
		}
	}
	if o.Expiry.Never {
		return Conn{}, errdefs.Invalid("--no-expiry is for velo branch set; a new branch never expires unless given --ttl or --expires-at")
	}
	expires, err := ParseExpiry(o.Expiry, time.Now())
	if err != nil {
		return Conn{}, err
	}
	var script maskScript
	if o.Mask != "" {
		if script.text, err = ReadMask("--mask", o.Mask); err != nil {
			return Conn{}, err
		}
		script.from = quote(o.Mask)
	}
	var result Conn
	err = e.mutate(ctx, func(op *op) error {
		p, parent, err := e.ref(ctx, parentRef)
		if err != nil {
			return err
		}
		var from *state.Snapshot
		if o.FromSnapshot != "" {
			if from, parent, err = e.snapshotParent(ctx, p, o.FromSnapshot); err != nil {
				return err
			}
		}
		// A masked parent's data is masked already: the project's
		// default is for branches of unmasked data.
		// A snapshot of a masked branch is masked, even once that branch
		// is gone (its parent is then main).
		maskedData := parent.Masked || (from != nil && from.Masked)
		if script.text == "" && p.Mask != "" && !maskedData {
			script = maskScript{text: p.Mask, from: "(project " + p.Name + "'s default)"}
		}
		if script.text != "" {
			if err := refuseMask(p, o.PITR != ""); err != nil {
				return err
			}
		}
		if old, err := e.Store.Q().Branch(ctx, p.ID, bn); err == nil {
			if !o.IfNotExists {
				return errdefs.AlreadyExists("branch %s/%s already exists; reset it with velo branch reset %s/%s, or pick another name", pn, bn, pn, bn)
			}
			return e.existingBranch(ctx, p, old, parent, &result)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		port, err := e.freePort(ctx)
		if err != nil {
			return err
		}
		b := state.Branch{ID: newID("b"), ProjectID: p.ID, Name: bn, ParentID: parent.ID, VolumeID: newID("v"), Port: port, Password: parent.Password, WantRunning: true, CreatedAt: time.Now(), ExpiresAt: expires,
			Masked: maskedData || script.text != ""}
		if o.NewPassword {
			if b.Password, err = pg.GeneratePassword(); err != nil {
				return err
			}
		}
		if from != nil {
			if err := e.createFromSnapshot(ctx, op, p, d, *from, &b, parent.Password, script); err != nil {
				return err
			}
			op.commit()
			result = e.conn(p, b, false)
			return nil
		}
		if o.PITR != "" {
			if err := e.createPITR(ctx, op, p, d, parent, &b, target); err != nil {
				return err
			}
			op.commit()
			result = e.conn(p, b, false)
			return nil
		}
		e.Progress.Title("Creating %s/%s from %s/%s...", pn, bn, pn, parent.Name)
		snap, spec, err := e.cloneBranch(ctx, op, p, d, parent, b)
		if err != nil {
			return err
		}
		if err := e.startNewClone(ctx, op, p, b, spec, parent.Password, snap.EndLSN, script); err != nil {
			return err
		}
		b.OriginSnapshotID = snap.ID
		if err := op.record(ctx, stepWriteState, subject{Record: "branch", ID: pn + "/" + bn}); err != nil {
			return err
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
			if err := tx.InsertSnapshot(ctx, p.ID, snap); err != nil {
				return err
			}
			return tx.InsertBranch(ctx, b)
		}); err != nil {
			return err
		}
		op.commit()
		result = e.conn(p, b, false)
		return nil
	})
	return result, err
}

// existingBranch is create --if-not-exists finding old: its connection,
// untouched, when it comes from parent; else a refusal that names both.
func (e *Engine) existingBranch(ctx context.Context, p state.Project, old, parent state.Branch, result *Conn) error {
	if old.ParentID != parent.ID {
		had := "no parent"
		if old.ParentID != "" {
			if pb, err := e.Store.Q().BranchByID(ctx, old.ParentID); err == nil {
				had = "parent " + p.Name + "/" + pb.Name
			}
		}
		return errdefs.AlreadyExists("branch %s/%s already exists with %s, not %s/%s; delete it (velo branch delete %s/%s) or give --parent to match", p.Name, old.Name, had, p.Name, parent.Name, p.Name, old.Name)
	}
	e.Progress.Note("%s/%s already exists (parent %s/%s): left as it is", p.Name, old.Name, p.Name, parent.Name)
	*result = e.conn(p, old, false)
	return nil
}

// cloneBranch snapshots parent consistently and clones the snapshot into
// b's volume, configured to run as b. The server is not started.
func (e *Engine) cloneBranch(ctx context.Context, op *op, p state.Project, d storage.Driver, parent, b state.Branch) (state.Snapshot, runtime.Spec, error) {
	snap, live, err := e.takeSnapshot(ctx, op, p, d, parent, "", false)
	if err != nil {
		return snap, runtime.Spec{}, err
	}
	op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroySnapshot(ctx, snap.ID)) })
	spec, err := e.cloneSnapshot(ctx, op, p, d, snap, b, func(spec runtime.Spec) error {
		if live != nil {
			// WAL written during the copy, from the backup's start to its
			// stop, is still in the running parent's pg_wal.
			return pg.CopyWAL(live.parentDataDir, spec.DataDir, live.backup.StartWAL, live.backup.StopWAL, spec.RunAs)
		}
		return nil
	}, nil)
	return snap, spec, err
}

// liveCopy is what a non-atomic snapshot of a running server leaves to do.
type liveCopy struct {
	parentDataDir string
	backup        pg.BackupResult
}

// takeSnapshot snapshots src consistently (DESIGN §3): CHECKPOINT then an
// atomic snapshot; the backup protocol around a non-atomic copy; a stopped
// server as it is. The snapshot is not recorded in the state; live is set
// when a non-atomic copy of a running server needs its WAL copied in.
func (e *Engine) takeSnapshot(ctx context.Context, op *op, p state.Project, d storage.Driver, src state.Branch, label string, user bool) (snap state.Snapshot, live *liveCopy, err error) {
	snap = state.Snapshot{ID: newID("s"), BranchID: src.ID, VolumeID: src.VolumeID, Label: label, User: user, CreatedAt: time.Now(), Masked: src.Masked}
	if err := e.requireSpace(ctx, p, d, "a checkpoint of "+p.Name+"/"+src.Name); err != nil {
		return snap, nil, err
	}
	srcSpec, err := e.spec(ctx, p, src)
	if err != nil {
		return snap, nil, err
	}
	if dataGone(srcSpec.DataDir) {
		return snap, nil, e.errDataGone(ctx, p, src, srcSpec.DataDir)
	}
	st, err := e.Runtime.Status(ctx, srcSpec)
	if err != nil {
		return snap, nil, err
	}
	if err := e.ensureDirs(); err != nil {
		return snap, nil, err
	}
	if err := op.record(ctx, stepSnapshot, subject{Driver: d.Name(), Pool: p.Pool, ID: snap.ID}); err != nil {
		return snap, nil, err
	}
	step := func() error {
		return e.Progress.Step("Snapshot "+snap.ID, func() error { return d.Snapshot(ctx, src.VolumeID, snap.ID) })
	}
	switch {
	case st.State != runtime.Running:
		e.Progress.Note("%s/%s is stopped: copying it as it is", p.Name, src.Name)
		// Recovery from it starts at its shutdown checkpoint, in the
		// segment after the last one archived.
		snap.WALStart = newestSegment(e.archiveDir(src.VolumeID))
		// Its shutdown checkpoint is the last thing it wrote.
		if lsn, cerr := pg.ControlCheckpoint(srcSpec.DataDir); cerr == nil {
			snap.EndLSN = lsn.String()
		}
		err = step()
	case d.Capabilities().AtomicSnapshot:
		var c *pgx.Conn
		err = e.Progress.Step("Checkpoint", func() error {
			var err error
			if c, err = e.dial(ctx, p, src); err != nil {
				return err
			}
			snap.WALStart, err = checkpointOn(ctx, c)
			return err
		})
		if err == nil {
			err = step()
		}
		if err == nil {
			// Read after the snapshot: every change its files hold was
			// written to the WAL before.
			snap.EndLSN, err = walPosition(ctx, c)
		}
		if c != nil {
			c.Close(context.WithoutCancel(ctx))
		}
	default:
		// A file-by-file copy of a running server is consistent only inside
		// the backup protocol, in one session.
		var bk *pg.Backup
		err = e.Progress.Step("Start backup", func() error {
			c, err := e.dial(ctx, p, src)
			if err != nil {
				return err
			}
			bk, err = pg.BackupStartOn(ctx, c, src.Port, "velo "+snap.ID)
			return err
		})
		if err == nil {
			live = &liveCopy{parentDataDir: srcSpec.DataDir}
			err = step()
			if err == nil {
				err = e.Progress.Step("Stop backup", func() error {
					live.backup, err = bk.Stop(ctx)
					return err
				})
			}
			bk.Close(context.WithoutCancel(ctx))
			snap.BackupLabel = live.backup.LabelFile
			snap.WALStart = live.backup.StartWAL
			// Recovery is consistent from the backup's stop on.
			snap.EndLSN = live.backup.StopLSN
		}
	}
	if err == nil {
		// Beside the volume, what the snapshot's record will hold, for a
		// rebuild of the records from the storage.
		err = writeSnapshotNote(filepath.Dir(srcSpec.DataDir), snap)
	}
	if err != nil {
		// The snapshot may exist even though a later step failed.
		_ = ignoreNotFound(d.DestroySnapshot(context.WithoutCancel(ctx), snap.ID))
		return snap, nil, err
	}
	// Its time is when it was complete: everything in it happened before,
	// so a recovery from it can reach any moment from then on (pitrBase).
	snap.CreatedAt = time.Now()
	return snap, live, nil
}

// withFreshCloneSync adds recovery_init_sync_method = syncfs to a fresh
// clone's first-start settings. A clone starts in crash recovery, which
// first fsyncs every file of the data directory, one by one, so that what
// a crashed server left unwritten is on disk before the replay: on
// zfs-fuse a round trip to its daemon per file, measured at 0.3-0.6 s of
// every branch create and reset. A fresh clone holds nothing a crash left
// unwritten (the storage wrote it whole when it made the clone); syncfs(2)
// of the volume, which Postgres still does, flushes what Velo added to it
// since, and where a volume is a filesystem of its own (a ZFS dataset) it
// flushes that volume alone. The setting lasts until the next velo branch
// start writes the configuration without it; a restart the postmaster
// makes by itself after a backend crash keeps it.
func withFreshCloneSync(extra map[string]string) map[string]string {
	out := map[string]string{"recovery_init_sync_method": "syncfs"}
	maps.Copy(out, extra)
	return out
}

// cloneSnapshot clones snap into b's volume and configures it to run as
// b; prepare adds WAL or recovery files before the settings are written,
// and extra holds settings for the first start (recovery). The server is
// not started.
func (e *Engine) cloneSnapshot(ctx context.Context, op *op, p state.Project, d storage.Driver, snap state.Snapshot, b state.Branch, prepare func(runtime.Spec) error, extra map[string]string) (runtime.Spec, error) {
	in, u, err := e.server(ctx, p)
	if err != nil {
		return runtime.Spec{}, err
	}
	if err := op.record(ctx, stepClone, subject{Driver: d.Name(), Pool: p.Pool, ID: b.VolumeID}); err != nil {
		return runtime.Spec{}, err
	}
	var vol string
	err = e.Progress.Step("Clone volume", func() error {
		vol, err = d.Clone(ctx, snap.ID, b.VolumeID)
		return err
	})
	if err != nil {
		return runtime.Spec{}, err
	}
	op.onFail(func(ctx context.Context) error { return ignoreNotFound(d.DestroyVolume(ctx, b.VolumeID)) })
	if d.Capabilities().OwnFilesystem {
		extra = withFreshCloneSync(extra)
	}
	spec := e.specAt(p, in, u, b, vol)
	if err := op.record(ctx, stepConfigure, subject{Path: spec.DataDir}); err != nil {
		return spec, err
	}
	err = e.Progress.Step("Configure", func() error {
		if err := pg.PrepareClone(spec.DataDir); err != nil {
			return err
		}
		if imported(p) {
			// A copy of a standby: no standby.signal, nothing that
			// connects to or archives from the source.
			if err := pg.PrepareImported(spec.DataDir, spec.RunAs); err != nil {
				return err
			}
		}
		// The notes of the parent's snapshots describe the parent's volume.
		if err := os.RemoveAll(filepath.Join(vol, snapshotNotes)); err != nil {
			return err
		}
		if snap.BackupLabel != "" {
			if err := pg.WriteBackupLabel(spec.DataDir, snap.BackupLabel, spec.RunAs); err != nil {
				return err
			}
		}
		if prepare != nil {
			if err := prepare(spec); err != nil {
				return err
			}
		}
		return e.configure(p, b, spec, extra)
	})
	if err != nil {
		return spec, err
	}
	op.onFail(func(ctx context.Context) error { return os.RemoveAll(e.archiveDir(b.VolumeID)) })
	return spec, nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// descendants returns b's descendants, in a tree order.
func descendants(all []state.Branch, id string) []state.Branch {
	var out []state.Branch
	for _, c := range all {
		if c.ParentID == id {
			out = append(out, c)
			out = append(out, descendants(all, c.ID)...)
		}
	}
	return out
}

// leavesFirst orders branches so that every branch comes after its children.
func leavesFirst(bs []state.Branch) []state.Branch {
	depth := map[string]int{}
	byID := map[string]state.Branch{}
	for _, b := range bs {
		byID[b.ID] = b
	}
	var d func(state.Branch) int
	d = func(b state.Branch) int {
		if v, ok := depth[b.ID]; ok {
			return v
		}
		v := 0
		if p, ok := byID[b.ParentID]; ok {
			v = d(p) + 1
		}
		depth[b.ID] = v
		return v
	}
	out := append([]state.Branch(nil), bs...)
	sort.SliceStable(out, func(i, j int) bool { return d(out[i]) > d(out[j]) })
	return out
}

// tree draws b's descendants as an indented tree for a message.
func tree(p state.Project, all []state.Branch, id string, indent string) string {
	var sb strings.Builder
	for _, c := range all {
		if c.ParentID == id {
			fmt.Fprintf(&sb, "\n%s└─ %s/%s", indent, p.Name, c.Name)
			sb.WriteString(tree(p, all, c.ID, indent+"   "))
		}
	}
	return sb.String()
}

// refuseDescendants is the refusal of a command that would affect b's
// descendants: it names them, says the fix, and shows them as a tree.
func refuseDescendants(p state.Project, all []state.Branch, b state.Branch, desc []state.Branch, fix string) error {
	return errdefs.FailedPrecondition("branch %s/%s has %s (%s)%s:\n%s/%s%s", p.Name, b.Name,
		plural(len(desc), "descendant", "descendants"), names(p, desc), fix, p.Name, b.Name, tree(p, all, b.ID, ""))
}

func names(p state.Project, bs []state.Branch) string {
	var n []string
	for _, b := range bs {
		n = append(n, p.Name+"/"+b.Name)
	}
	return strings.Join(n, ", ")
}

// DeleteBranch removes a branch; with force, its descendants first.
func (e *Engine) DeleteBranch(ctx context.Context, ref string, force bool) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if b.Name == MainBranch {
			return errdefs.FailedPrecondition("%s/main is the project's main branch and goes only with the project; delete the project with velo project delete %s", p.Name, p.Name)
		}
		all, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return err
		}
		desc := descendants(all, b.ID)
		if err := refuseProtected(p, append([]state.Branch{b}, desc...), "deleted"); err != nil {
			return err
		}
		if len(desc) > 0 && !force {
			return refuseDescendants(p, all, b, desc, "; add --force to delete them too")
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		e.Progress.Title("Deleting %s/%s...", p.Name, b.Name)
		for _, x := range append(leavesFirst(desc), b) {
			if err := e.deleteBranch(ctx, op, p, d, x); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteBranch stops a branch's server, drops its record and retires its
// volume; gc then destroys what nothing depends on any more.
func (e *Engine) deleteBranch(ctx context.Context, op *op, p state.Project, d storage.Driver, b state.Branch) error {
	spec, err := e.observeSpec(ctx, p, b)
	if err == nil {
		if err := op.record(ctx, stepStopServer, subject{Path: spec.DataDir}); err != nil {
			return err
		}
		if err := e.Progress.Step("Stop "+p.Name+"/"+b.Name, func() error {
			// Its data is about to go: no shutdown checkpoint to wait for.
			return e.Runtime.Stop(ctx, spec, 0)
		}); err != nil {
			return err
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if err := op.record(ctx, stepDeleteBranch, subject{ID: b.ID}); err != nil {
		return err
	}
	if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
		if err := tx.DeleteBranch(ctx, b.ID); err != nil {
			return err
		}
		return tx.RetireVolume(ctx, p.ID, b.VolumeID)
	}); err != nil {
		return err
	}
	if spec.DataDir != "" {
		markRetired(filepath.Dir(spec.DataDir))
	}
	removeBranchFiles(e, b)
	return e.gc(ctx, op, p, d)
}

// gc destroys, storage first and record after, what nothing needs any
// more: snapshots that no volume in the pool was cloned from, that no
// user keeps for a live branch and that open no branch's point-in-time
// window, and retired volumes that no snapshot in
// the pool was taken from. Dependencies are read from the storage, the
// truth, not from the records; it repeats until nothing more can go.
func (e *Engine) gc(ctx context.Context, op *op, p state.Project, d storage.Driver) error {
	for {
		progress := false
		entries, err := d.List(ctx)
		if err != nil {
			return err
		}
		hasDependents := map[string]bool{}
		for _, en := range entries {
			hasDependents[en.Origin] = true
		}
		snaps, err := e.Store.Q().Snapshots(ctx, p.ID)
		if err != nil {
			return err
		}
		branches, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return err
		}
		// The oldest snapshot of a branch's volume opens its point-in-time
		// window (window.go): only snapshot delete and cleanup remove it.
		bases := pitrBases(snaps, liveVolumes(branches))
		for _, s := range snaps {
			if hasDependents[s.ID] || (s.User && s.BranchID != "") || bases[s.ID] {
				continue
			}
			if err := op.record(ctx, stepDestroySnapshot, subject{ID: s.ID}); err != nil {
				return err
			}
			if err := e.Progress.Step("Destroy snapshot "+s.ID, func() error { return ignoreNotFound(d.DestroySnapshot(ctx, s.ID)) }); err != nil {
				return err
			}
			if err := e.Store.Q().DeleteSnapshot(ctx, s.ID); err != nil {
				return err
			}
			progress = true
		}
		retired, err := e.Store.Q().RetiredVolumes(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, v := range retired {
			if hasDependents[v] {
				continue
			}
			if err := op.record(ctx, stepDestroyVolume, subject{ID: v}); err != nil {
				return err
			}
			if err := e.Progress.Step("Destroy volume "+v, func() error { return ignoreNotFound(d.DestroyVolume(ctx, v)) }); err != nil {
				return err
			}
			if err := e.Store.Q().DeleteRetiredVolume(ctx, v); err != nil {
				return err
			}
			// No snapshot of the volume is left to recover from: its archive goes too.
			if err := os.RemoveAll(e.archiveDir(v)); err != nil {
				return err
			}
			progress = true
		}
		if !progress {
			return nil
		}
	}
}

// ResetBranch replaces a branch's data with its parent's current data,
// keeping its port and password. Clone, then swap: the old data goes only
// after the new clone's server answers.
func (e *Engine) ResetBranch(ctx context.Context, ref string, force bool) error {
	if _, _, err := ParseRef(ref); err != nil {
		return err
	}
	return e.mutate(ctx, func(op *op) error {
		p, b, err := e.ref(ctx, ref)
		if err != nil {
			return err
		}
		if b.ParentID == "" {
			return errdefs.FailedPrecondition("%s/%s has no parent to reset to; reset a branch made with velo branch create", p.Name, b.Name)
		}
		if b.Protected {
			return errProtected(p, b, "reset")
		}
		if err := e.refuseUnmaskingReset(ctx, p, b); err != nil {
			return err
		}
		all, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return err
		}
		if desc := descendants(all, b.ID); len(desc) > 0 && !force {
			return refuseDescendants(p, all, b, desc, ", made from its current data; they keep their data, but add --force to reset anyway")
		}
		parent, err := e.Store.Q().BranchByID(ctx, b.ParentID)
		if err != nil {
			return err
		}
		d, err := e.driver(ctx, p)
		if err != nil {
			return err
		}
		oldSpec, err := e.spec(ctx, p, b)
		if err != nil {
			return err
		}
		e.Progress.Title("Resetting %s/%s to %s/%s...", p.Name, b.Name, p.Name, parent.Name)
		fresh := b
		fresh.VolumeID = newID("v")
		snap, spec, err := e.cloneBranch(ctx, op, p, d, parent, fresh)
		if err != nil {
			return err
		}
		wasRunning, err := e.stopReplaced(ctx, op, oldSpec, "Stop old server")
		if err != nil {
			return err
		}
		// A branch with a password of its own keeps it, set before the
		// new server takes a TCP login with the parent's.
		if err := e.startClone(ctx, op, p, b, spec, parent.Password); err != nil {
			return err
		}
		if err := op.record(ctx, stepSwapVolume, subject{ID: b.VolumeID, To: fresh.VolumeID}); err != nil {
			return err
		}
		if err := e.Store.Tx(ctx, func(tx *state.Tx) error {
			if err := tx.InsertSnapshot(ctx, p.ID, snap); err != nil {
				return err
			}
			if err := tx.SwapVolume(ctx, b.ID, fresh.VolumeID, snap.ID); err != nil {
				return err
			}
			return tx.RetireVolume(ctx, p.ID, b.VolumeID)
		}); err != nil {
			return err
		}
		markRetired(filepath.Dir(oldSpec.DataDir))
		op.commit()
		if !wasRunning {
			// Reset keeps a stopped branch stopped.
			if err := e.stopAgain(ctx, op, spec); err != nil {
				return err
			}
		}
		return e.gc(ctx, op, p, d)
	})
}

// stopAgain stops the server a clone-then-swap command (reset, refresh)
// started only to check its new data, so that what was stopped stays
// stopped.
func (e *Engine) stopAgain(ctx context.Context, op *op, spec runtime.Spec) error {
	if err := op.record(ctx, stepStopServer, subject{Path: spec.DataDir}); err != nil {
		return err
	}
	return e.Runtime.Stop(ctx, spec, 10*time.Second)
}
