// Package zfs is the storage driver for ZFS: a volume is the dataset
// POOL/velo/ID, a snapshot with ID S of volume V is the ZFS snapshot
// POOL/velo/V@S, and a clone is a ZFS clone of it, a sibling dataset
// POOL/velo/ID. Snapshots are atomic and clones share every unchanged block.
//
// ZFS keeps all the bookkeeping: which volume a snapshot belongs to is in
// its name, which snapshot a clone came from is its origin property, so the
// driver stores nothing of its own. zfs create, snapshot, clone and destroy
// are each atomic, so a crash leaves either the whole dataset or none of it,
// and nothing is ever renamed.
//
// Every command runs with an argument list, never through a shell, and only
// machine-readable output is parsed (zfs get -Hp, zfs list -H). It works on
// OpenZFS and on zfs-fuse (pool version 23), which lacks lz4, zpool sync and
// the -p flag of zfs list.
package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/procfs"
	"github.com/velohq/velo/internal/storage"
)

// Driver keeps volumes and snapshots under the dataset POOL/velo.
type Driver struct {
	pool   string
	parent string // POOL/velo
	// compression is what the parent was given: lz4, or "on" where the
	// pool lacks lz4. Clones get it explicitly, since a clone takes its
	// properties from its parent dataset, not from its origin.
	compression string
	// noZpoolSync is set once zpool answers that it has no sync command.
	noZpoolSync atomic.Bool
}

var _ storage.Driver = (*Driver)(nil)

// Postgres writes 8 kB pages: a matching recordsize keeps a page write
// from rewriting (and, under a snapshot, duplicating) a 128 kB record.
var fixedProps = []string{"-o", "recordsize=8k", "-o", "atime=off"}

// poolName is what zpool accepts as a pool name, minus spaces; above all it
// cannot start with '-', so it is never read as an option.
var poolName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*$`)

// New returns the driver for the ZFS pool named pool. It refuses, saying
// why, when the zfs or zpool command is missing or cannot reach ZFS
// (ErrUnsupported), when the pool does not exist (ErrNotFound) or when it is
// not usable (ErrFailedPrecondition). It creates POOL/velo when missing.
func New(ctx context.Context, pool string) (*Driver, error) {
	if !poolName.MatchString(pool) {
		return nil, errdefs.Invalid("%q is not a ZFS pool name", pool)
	}
	for _, cmd := range []string{"zfs", "zpool"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return nil, errdefs.Unsupported("zfs storage needs the %s command (OpenZFS, or the zfs-fuse package): %v", cmd, err)
		}
	}
	out, err := run(ctx, "zpool", "list", "-H", "-o", "health", pool)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.NotFound("there is no ZFS pool %s (zpool list shows the pools; zpool import brings back an exported one)", pool)
	} else if err != nil {
		return nil, fmt.Errorf("zfs storage on pool %s: %w", pool, err)
	}
	// DEGRADED still serves every read and write; it has only lost
	// redundancy, which Pool reports.
	if h := strings.TrimSpace(out); h != "ONLINE" && h != "DEGRADED" {
		return nil, errdefs.FailedPrecondition("ZFS pool %s is %s; see zpool status %s", pool, h, pool)
	}
	d := &Driver{pool: pool, parent: pool + "/velo"}
	if err := d.ensureParent(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// ensureParent creates POOL/velo with the properties every volume inherits,
// trying lz4 first: old pools and zfs-fuse refuse it, and then "on" (lzjb)
// is the best they have. An existing parent keeps what it was given.
func (d *Driver) ensureParent(ctx context.Context) error {
	comp, err := d.parentCompression(ctx)
	if errors.Is(err, errdefs.ErrNotFound) {
		for _, c := range []string{"lz4", "on"} {
			args := append(append([]string{"create"}, fixedProps...), "-o", "compression="+c, d.parent)
			if _, err = run(ctx, "zfs", args...); err == nil || errors.Is(err, errdefs.ErrAlreadyExists) {
				break
			}
		}
		if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
			return fmt.Errorf("create dataset %s: %w", d.parent, err)
		}
		comp, err = d.parentCompression(ctx)
	}
	d.compression = comp
	return err
}

// parentCompression reads the parent's compression, checking on the way
// that volumes under it will be mounted somewhere.
func (d *Driver) parentCompression(ctx context.Context) (string, error) {
	p, err := getProps(ctx, d.parent, "compression", "mountpoint")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(p["mountpoint"], "/") {
		return "", errdefs.FailedPrecondition("dataset %s has mountpoint %q, so volumes under it would not be mounted; give it one with zfs set mountpoint=/PATH %s", d.parent, p["mountpoint"], d.parent)
	}
	return p["compression"], nil
}

func (d *Driver) Name() string { return "zfs" }

func (d *Driver) Capabilities() storage.Capabilities {
	return storage.Capabilities{AtomicSnapshot: true, SpaceEfficient: true, OwnFilesystem: true}
}

func (d *Driver) dataset(id string) string { return d.parent + "/" + id }

func (d *Driver) CreateVolume(ctx context.Context, id string) (string, error) {
	if err := storage.ValidateID(id); err != nil {
		return "", err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return "", err
	}
	if err := inv.free(id); err != nil {
		return "", err
	}
	args := append(append([]string{"create"}, fixedProps...), "-o", "compression="+d.compression, d.dataset(id))
	if err := d.make(ctx, d.dataset(id), args); err != nil {
		return "", fmt.Errorf("create volume %s: %w", id, err)
	}
	return d.Path(ctx, id)
}

func (d *Driver) Snapshot(ctx context.Context, volumeID, snapshotID string) error {
	if err := validate(volumeID, snapshotID); err != nil {
		return err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return err
	}
	if _, ok := inv.volumes[volumeID]; !ok {
		return storage.NotFound(storage.KindVolume, volumeID)
	}
	if err := inv.free(snapshotID); err != nil {
		return err
	}
	if _, err := run(ctx, "zfs", "snapshot", d.dataset(volumeID)+"@"+snapshotID); err != nil {
		return fmt.Errorf("snapshot %s of volume %s: %w", snapshotID, volumeID, err)
	}
	return nil
}

func (d *Driver) Clone(ctx context.Context, snapshotID, volumeID string) (string, error) {
	if err := validate(snapshotID, volumeID); err != nil {
		return "", err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return "", err
	}
	vol, ok := inv.snapshots[snapshotID]
	if !ok {
		return "", storage.NotFound(storage.KindSnapshot, snapshotID)
	}
	if err := inv.free(volumeID); err != nil {
		return "", err
	}
	args := append(append([]string{"clone"}, fixedProps...), "-o", "compression="+d.compression, d.dataset(vol)+"@"+snapshotID, d.dataset(volumeID))
	if err := d.make(ctx, d.dataset(volumeID), args); err != nil {
		return "", fmt.Errorf("clone snapshot %s to volume %s: %w", snapshotID, volumeID, err)
	}
	return d.Path(ctx, volumeID)
}

// make runs zfs create or clone for dataset. Both can fail after the
// dataset exists (created but not mounted); it is then destroyed, so that a
// failed call leaves nothing behind.
func (d *Driver) make(ctx context.Context, dataset string, args []string) error {
	_, err := run(ctx, "zfs", args...)
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		if _, gerr := getProps(ctx, dataset, "type"); gerr == nil {
			if derr := destroy(ctx, dataset); derr != nil {
				return fmt.Errorf("%w; removing the half-made %s: %v", err, dataset, derr)
			}
		}
	}
	return err
}

func (d *Driver) DestroyVolume(ctx context.Context, id string) error {
	if err := storage.ValidateID(id); err != nil {
		return err
	}
	// The volume and its own snapshots only, rather than the inventory
	// of the pool: a listing whose time grows with every branch.
	out, err := run(ctx, "zfs", "list", "-H", "-o", "name,mountpoint", "-t", "filesystem,snapshot", "-r", d.dataset(id))
	if errors.Is(err, errdefs.ErrNotFound) {
		return storage.NotFound(storage.KindVolume, id)
	}
	if err != nil {
		return err
	}
	var snaps []string
	mountpoint := ""
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, mp, _ := strings.Cut(line, "\t")
		if _, snap, ok := strings.Cut(name, "@"); ok {
			snaps = append(snaps, snap)
		} else if name == d.dataset(id) && strings.HasPrefix(mp, "/") {
			mountpoint = mp
		}
	}
	if len(snaps) > 0 {
		sort.Strings(snaps)
		return storage.InUse(storage.KindVolume, id, "snapshots", snaps)
	}
	// Unmounted first: zfs-fuse's destroy, which unmounts by itself,
	// then finds the dataset busy for a while (about 150 ms spent in
	// retries); after zfs unmount it succeeds at once. A failed unmount is
	// left to destroy to report.
	dev, mounted := procfs.MountDev(mountpoint)
	_, _ = run(ctx, "zfs", "unmount", d.dataset(id))
	if err := destroy(ctx, d.dataset(id)); err != nil {
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			return fmt.Errorf("destroy volume %s: %w; %s", id, err, d.whyBusy(id, mountpoint, dev, mounted))
		}
		return fmt.Errorf("destroy volume %s: %w", id, err)
	}
	return nil
}

// whyBusy says who keeps volume id busy, as fuser -m would: a process
// using its mountpoint, another mount namespace where it is still
// mounted, or none (then zfs-fuse itself).
func (d *Driver) whyBusy(id, mountpoint string, dev uint64, mounted bool) string {
	if mounted {
		if h := procfs.Holders(dev); len(h) > 0 {
			return mountpoint + " is in use by " + strings.Join(h, ", ")
		}
	}
	if ns := procfs.MountedElsewhere(d.dataset(id)); len(ns) > 0 {
		return "it is still mounted in the mount namespace of " + strings.Join(ns, ", ") + ", which keeps it in use (a program started by ip netns exec or unshare -m while it was mounted: end it)"
	}
	return "no process uses it"
}

func (d *Driver) DestroySnapshot(ctx context.Context, id string) error {
	if err := storage.ValidateID(id); err != nil {
		return err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return err
	}
	vol, ok := inv.snapshots[id]
	if !ok {
		return storage.NotFound(storage.KindSnapshot, id)
	}
	if clones := keysWith(inv.volumes, id); len(clones) > 0 {
		return storage.InUse(storage.KindSnapshot, id, "clones", clones)
	}
	if err := destroy(ctx, d.dataset(vol)+"@"+id); err != nil {
		return fmt.Errorf("destroy snapshot %s: %w", id, err)
	}
	return nil
}

// Path reads the volume's mountpoint property: the pool's administrator
// decides where datasets mount, not Velo.
func (d *Driver) Path(ctx context.Context, id string) (string, error) {
	if err := storage.ValidateID(id); err != nil {
		return "", err
	}
	p, err := getProps(ctx, d.dataset(id), "mountpoint", "mounted")
	if errors.Is(err, errdefs.ErrNotFound) {
		return "", storage.NotFound(storage.KindVolume, id)
	}
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(p["mountpoint"], "/") || p["mounted"] != "yes" {
		return "", errdefs.FailedPrecondition("volume %s (dataset %s) is not mounted (mountpoint %s, mounted %s); try zfs mount %s", id, d.dataset(id), p["mountpoint"], p["mounted"], d.dataset(id))
	}
	return p["mountpoint"], nil
}

func (d *Driver) List(ctx context.Context) ([]storage.Entry, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.Entry
	for id, origin := range inv.volumes {
		out = append(out, storage.Entry{ID: id, Kind: storage.KindVolume, Origin: origin})
	}
	for id, vol := range inv.snapshots {
		out = append(out, storage.Entry{ID: id, Kind: storage.KindSnapshot, Origin: vol})
	}
	return out, nil
}

// Usage counts, for a volume, usedbydataset (blocks only its head holds:
// for a clone, none it still shares with its origin) plus any
// refreservation; its snapshots' own blocks are theirs, not the volume's,
// so nothing is counted twice. For a snapshot, used is exactly the blocks
// no other snapshot or dataset holds.
func (d *Driver) Usage(ctx context.Context, id string) (storage.Usage, error) {
	if err := storage.ValidateID(id); err != nil {
		return storage.Usage{}, err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return storage.Usage{}, err
	}
	var name string
	var exclusive []string
	if vol, ok := inv.snapshots[id]; ok {
		name, exclusive = d.dataset(vol)+"@"+id, []string{"used"}
	} else if _, ok := inv.volumes[id]; ok {
		name, exclusive = d.dataset(id), []string{"usedbydataset", "usedbyrefreservation"}
	} else {
		return storage.Usage{}, errdefs.NotFound("volume or snapshot %s does not exist", id)
	}
	if err := d.syncTxg(ctx); err != nil {
		return storage.Usage{}, err
	}
	n, err := getBytes(ctx, name, append(exclusive, "referenced")...)
	if err != nil {
		return storage.Usage{}, err
	}
	u := storage.Usage{Referenced: n["referenced"]}
	for _, p := range exclusive {
		u.Exclusive += n[p]
	}
	return u, nil
}

// Pool reports the root dataset's figures, not zpool's: zpool counts raw
// space, parity included, while used plus available is what datasets can
// hold.
func (d *Driver) Pool(ctx context.Context) (storage.PoolStats, error) {
	health, err := run(ctx, "zpool", "list", "-H", "-o", "health", d.pool)
	if err != nil {
		return storage.PoolStats{}, err
	}
	if err := d.syncTxg(ctx); err != nil {
		return storage.PoolStats{}, err
	}
	n, err := getBytes(ctx, d.pool, "used", "available")
	if err != nil {
		return storage.PoolStats{}, err
	}
	return storage.PoolStats{
		Name:   d.pool,
		Size:   n["used"] + n["available"],
		Used:   n["used"],
		Free:   n["available"],
		Health: strings.TrimSpace(health),
	}, nil
}

// Volumes reads every volume's mountpoint (and, when asked, usage) in one
// zfs get, after one txg sync when usage is asked: what status needs for
// many branches at once. (zfs-fuse's zfs list has no -p and its zfs get
// no -t: snapshots, named VOLUME@SNAPSHOT, are not IDs and are skipped.)
func (d *Driver) Volumes(ctx context.Context, usage bool) (map[string]storage.VolumeInfo, error) {
	props := "mountpoint,mounted"
	if usage {
		if err := d.syncTxg(ctx); err != nil {
			return nil, err
		}
		props += ",usedbydataset,usedbyrefreservation,referenced"
	}
	// Depth 1: the volumes, each a child of the parent, and not their
	// snapshots, which zfs-fuse would otherwise answer for one by one
	// (200 volumes with a snapshot each: 30-70 ms against 120-230 ms).
	out, err := run(ctx, "zfs", "get", "-Hp", "-d", "1", "-o", "name,property,value", props, d.parent)
	if err != nil {
		return nil, err
	}
	type row struct {
		mountpoint, mounted string
		u                   storage.Usage
	}
	rows := map[string]*row{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		id, ok := strings.CutPrefix(f[0], d.parent+"/")
		if !ok || storage.ValidateID(id) != nil {
			continue
		}
		r := rows[id]
		if r == nil {
			r = &row{}
			rows[id] = r
		}
		switch f[1] {
		case "mountpoint":
			r.mountpoint = f[2]
		case "mounted":
			r.mounted = f[2]
		default:
			var n int64
			if f[2] != "-" {
				if n, err = strconv.ParseInt(f[2], 10, 64); err != nil {
					return nil, fmt.Errorf("zfs get %s: unexpected %q", d.parent, line)
				}
			}
			if f[1] == "referenced" {
				r.u.Referenced = n
			} else {
				r.u.Exclusive += n
			}
		}
	}
	vs := make(map[string]storage.VolumeInfo, len(rows))
	for id, r := range rows {
		var v storage.VolumeInfo
		// As Path: a volume that is not mounted has no path.
		if strings.HasPrefix(r.mountpoint, "/") && r.mounted == "yes" {
			v.Path = r.mountpoint
		}
		if usage {
			u := r.u
			v.Usage = &u
		}
		vs[id] = v
	}
	return vs, nil
}

// syncTxg makes the space figures current. ZFS updates used and its kin
// only when a transaction group syncs, which happens every few seconds
// (seen: 20 s on zfs-fuse) unless something forces it; until then a clone
// just given 50 MB can report 1 MB. zpool sync forces it on OpenZFS;
// zfs-fuse lacks it, but any property change is a sync task that waits for
// its transaction group, so clearing an unset user property on the parent
// does it (at the price of a line in zpool history). Data still in the page
// cache is the caller's to flush (fsync or sync) before asking.
func (d *Driver) syncTxg(ctx context.Context) error {
	if !d.noZpoolSync.Load() {
		_, err := run(ctx, "zpool", "sync", d.pool)
		if err == nil || !strings.Contains(err.Error(), "unrecognized command") {
			return err
		}
		d.noZpoolSync.Store(true)
	}
	_, err := run(ctx, "zfs", "inherit", "velo:txg-sync", d.parent)
	return err
}

// inventory is what ZFS holds under the parent, keyed by ID.
type inventory struct {
	volumes   map[string]string // volume ID → the snapshot it was cloned from, or ""
	snapshots map[string]string // snapshot ID → its volume ID
}

// inventory lists the parent's datasets and snapshots in one command, so
// every check before an action reads one consistent picture. Names that are
// not Velo IDs (nested datasets, someone else's) are left out.
func (d *Driver) inventory(ctx context.Context) (inventory, error) {
	out, err := run(ctx, "zfs", "list", "-H", "-o", "name,origin", "-t", "filesystem,snapshot", "-r", d.parent)
	if err != nil {
		return inventory{}, err
	}
	inv := inventory{volumes: map[string]string{}, snapshots: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, origin, _ := strings.Cut(line, "\t")
		rest, ok := strings.CutPrefix(name, d.parent+"/")
		if !ok {
			continue
		}
		if vol, snap, isSnap := strings.Cut(rest, "@"); isSnap {
			if validate(vol, snap) == nil {
				inv.snapshots[snap] = vol
			}
		} else if storage.ValidateID(rest) == nil {
			inv.volumes[rest] = d.snapshotID(origin)
		}
	}
	return inv, nil
}

// snapshotID turns an origin property, POOL/velo/VOLUME@SNAPSHOT, into the
// snapshot's ID; "" for "-" or an origin outside the parent.
func (d *Driver) snapshotID(origin string) string {
	rest, ok := strings.CutPrefix(origin, d.parent+"/")
	if !ok {
		return ""
	}
	_, snap, _ := strings.Cut(rest, "@")
	return snap
}

// free says whether id may name something new: volumes and snapshots share
// one namespace, and a snapshot ID is unique across all volumes.
func (inv inventory) free(id string) error {
	if _, ok := inv.volumes[id]; ok {
		return errdefs.AlreadyExists("volume %s already exists", id)
	}
	if _, ok := inv.snapshots[id]; ok {
		return errdefs.AlreadyExists("snapshot %s already exists", id)
	}
	return nil
}

// keysWith returns, sorted, the keys of m whose value is v.
func keysWith(m map[string]string, v string) []string {
	var keys []string
	for k, val := range m {
		if val == v {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func validate(ids ...string) error {
	for _, id := range ids {
		if err := storage.ValidateID(id); err != nil {
			return err
		}
	}
	return nil
}

// getProps reads properties of one dataset with zfs get -Hp.
func getProps(ctx context.Context, dataset string, props ...string) (map[string]string, error) {
	out, err := run(ctx, "zfs", "get", "-Hp", "-o", "property,value", strings.Join(props, ","), dataset)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			m[k] = v
		}
	}
	for _, p := range props {
		if _, ok := m[p]; !ok {
			return nil, fmt.Errorf("zfs get %s %s: no value for %s in %q", strings.Join(props, ","), dataset, p, out)
		}
	}
	return m, nil
}

// getBytes reads numeric properties; "-" (not applicable) counts as 0.
func getBytes(ctx context.Context, dataset string, props ...string) (map[string]int64, error) {
	m, err := getProps(ctx, dataset, props...)
	if err != nil {
		return nil, err
	}
	n := map[string]int64{}
	for k, v := range m {
		if v == "-" {
			continue
		}
		if n[k], err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("zfs get %s %s: %w", k, dataset, err)
		}
	}
	return n, nil
}

// busyFor is how long destroy retries a busy dataset.
var busyFor = 30 * time.Second

// destroy runs zfs destroy, retrying while the dataset is busy: zfs-fuse
// holds a dataset for about a second after its last user exits, and
// OpenZFS can be busy too while an unmount is still in flight. Under load
// (six test packages at once on two cores) zfs-fuse was seen busy for over
// 10 s after a killed command, so it is given 30.
func destroy(ctx context.Context, name string) error {
	deadline := time.Now().Add(busyFor)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		_, err := run(ctx, "zfs", "destroy", name)
		if err == nil || !strings.Contains(err.Error(), "busy") || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// run runs a zfs or zpool command and returns its standard output. A
// failure carries the command's own words and, where they say which, wraps
// the storage error kind.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// zfs translates its messages; classify reads the English ones.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	what := name + " " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s: %w", what, ctx.Err())
	}
	msg := strings.Join(strings.Fields(stderr.String()), " ")
	if msg == "" {
		msg = err.Error()
	}
	if kind := classify(msg); kind != nil {
		return "", errdefs.New(kind, "%s: %s", what, msg)
	}
	return "", fmt.Errorf("%s: %s (%v)", what, msg, err)
}

func classify(msg string) error {
	switch {
	case strings.Contains(msg, "does not exist"), strings.Contains(msg, "no such pool"):
		return errdefs.ErrNotFound
	case strings.Contains(msg, "already exists"):
		return errdefs.ErrAlreadyExists
	case strings.Contains(msg, "busy"), strings.Contains(msg, "has children"), strings.Contains(msg, "dependent clones"):
		return errdefs.ErrFailedPrecondition
	case strings.Contains(msg, "zfs-fuse daemon is running"), strings.Contains(msg, "failed to initialize ZFS library"):
		// No ZFS on this host after all: the commands exist but reach
		// no kernel module or daemon.
		return errdefs.ErrUnsupported
	}
	return nil
}
