// Package storage is the contract between Velo and the copy-on-write
// filesystems that hold branches' bytes.
//
// # Terms
//
// A volume is a writable directory tree, mounted at the path the driver
// returns for it. A Postgres data directory lives inside a volume.
//
// A snapshot is a read-only, point-in-time image of one volume. It is taken
// from a volume and never changes afterwards.
//
// A clone is a new volume made from a snapshot: at birth its content is the
// snapshot's, byte for byte; afterwards its writes reach neither the snapshot,
// nor the volume the snapshot was taken from, nor any other clone.
//
// # Names
//
// Volumes and snapshots are named by immutable IDs that the caller chooses
// (see ValidateID), never by project or branch names, so that renaming or
// resetting a branch never renames storage and two different names can never
// map to one volume. Volumes and snapshots share one namespace per driver:
// an ID names at most one thing.
//
// # Dependencies
//
// The same rules hold on every driver, even where the filesystem would not
// care:
//
//   - a snapshot that a live clone was made from cannot be destroyed;
//   - a volume that has snapshots cannot be destroyed.
//
// Both refusals wrap errdefs.ErrFailedPrecondition and name the dependents. So
// removal goes leaves first: clones, then their snapshots, then the volume.
//
// # Consistency
//
// Capabilities.AtomicSnapshot says whether Snapshot captures a volume at one
// instant even while it is written to (zfs, btrfs). Where it is false
// (reflink, copy) files are copied one after another, and the caller must
// make the copy consistent itself (for Postgres: the backup protocol).
//
// # Errors
//
// Every refusal is of one of the kinds of package errdefs (ErrNotFound,
// ErrAlreadyExists, ErrFailedPrecondition, ErrInvalid, ErrUnsupported), so
// callers decide with errors.Is, never on message text. Failures of the
// filesystem or of a tool (an I/O error, a dead daemon) carry the system's
// error or the tool's own words, with a kind where one fits (a full pool is
// ErrNoSpace); a failure that is no refusal, such as a permission denied,
// has none.
//
// # Example
//
//	p, _ := d.CreateVolume(ctx, "v1")      // write files under p
//	_ = d.Snapshot(ctx, "v1", "s1")
//	q, _ := d.Clone(ctx, "s1", "v2")       // q holds v1's files as of s1
//	_ = d.DestroySnapshot(ctx, "s1")       // errdefs.ErrFailedPrecondition: clone v2
//	_ = d.DestroyVolume(ctx, "v2")
//	_ = d.DestroySnapshot(ctx, "s1")
//	_ = d.DestroyVolume(ctx, "v1")
package storage

import (
	"context"
	"regexp"

	"github.com/velohq/velo/internal/errdefs"
)

// Capabilities are what a driver declares about itself; callers and tests
// read them instead of testing driver names.
type Capabilities struct {
	// AtomicSnapshot: a snapshot is one instant of the volume, even under writes.
	AtomicSnapshot bool
	// SpaceEfficient: a clone shares unchanged blocks with its snapshot.
	SpaceEfficient bool
	// OwnFilesystem: every volume is a filesystem of its own (a ZFS
	// dataset), so syncfs(2) on a volume flushes that volume alone, not
	// the whole pool as on btrfs subvolumes or directories of one XFS.
	OwnFilesystem bool
	// SharedExtents: FIEMAP maps a block a clone did not write, and its
	// origin's, to the same physical place (btrfs, reflink), which is how
	// velo diff skips unchanged blocks without reading them.
	SharedExtents bool
}

// Kind tells volumes from snapshots in a listing.
type Kind string

const (
	KindVolume   Kind = "volume"
	KindSnapshot Kind = "snapshot"
)

// Entry is one volume or snapshot.
type Entry struct {
	ID   string
	Kind Kind
	// Origin is, for a snapshot, the volume it was taken from; for a clone,
	// the snapshot it was made from; "" for a volume created empty.
	Origin string
}

// Usage is the space one volume or snapshot takes, in bytes.
type Usage struct {
	// Exclusive is what destroying it would free: blocks no other volume or
	// snapshot shares.
	Exclusive int64
	// Referenced is all the data it holds, shared or not.
	Referenced int64
}

// PoolStats describe the filesystem or pool under a driver, in bytes.
type PoolStats struct {
	Name   string // pool name or mount path
	Size   int64
	Used   int64
	Free   int64
	Health string // "ONLINE" when healthy; otherwise the pool's own word
}

// Driver is one kind of copy-on-write storage. All methods are safe to call
// from one process at a time per pool (Velo holds its lock); snapshots of
// different volumes may be taken concurrently.
type Driver interface {
	// Name is the driver's name: "zfs", "btrfs", "reflink" or "copy".
	Name() string
	Capabilities() Capabilities

	// CreateVolume makes an empty writable volume and returns its path.
	// errdefs.ErrAlreadyExists if id names a volume or snapshot.
	CreateVolume(ctx context.Context, id string) (string, error)
	// Snapshot takes a read-only point-in-time image of volume volumeID.
	// errdefs.ErrNotFound if the volume is missing; errdefs.ErrAlreadyExists if snapshotID is taken.
	Snapshot(ctx context.Context, volumeID, snapshotID string) error
	// Clone makes a new writable volume from a snapshot and returns its path.
	Clone(ctx context.Context, snapshotID, volumeID string) (string, error)
	// DestroyVolume removes a volume; errdefs.ErrFailedPrecondition while it has snapshots.
	DestroyVolume(ctx context.Context, id string) error
	// DestroySnapshot removes a snapshot; errdefs.ErrFailedPrecondition while clones of it live.
	DestroySnapshot(ctx context.Context, id string) error

	// Path returns where volume id is mounted.
	Path(ctx context.Context, id string) (string, error)
	// List returns every volume and snapshot the driver holds, in no order.
	List(ctx context.Context) ([]Entry, error)
	// Usage reports the space of one volume or snapshot; it and Pool
	// reflect everything written and synced before the call (drivers whose
	// accounting lags, like ZFS's, force it up to date).
	Usage(ctx context.Context, id string) (Usage, error)
	// Pool reports the figures of the pool or filesystem as a whole.
	Pool(ctx context.Context) (PoolStats, error)
}

// Bulk is implemented by drivers that can describe every volume in one
// call, in time that grows with neither the data nor the count of volumes
// (ZFS, where each Path or Usage is a round trip to the daemon, and whose
// pool keeps its own accounting). Drivers without it answer Path from
// their own directory tree at no cost, and compute Usage by walking a
// volume's files (btrfs's shared-extent walk, FIEMAP, du), which takes time
// in proportion to the data, so listings leave it out unless asked.
type Bulk interface {
	// Volumes returns every volume the driver holds, keyed by ID, with the
	// path Path would return ("" where Path would fail: the caller asks
	// Path for the reason) and, when usage is set, what Usage would return,
	// reflecting everything written and synced before the call.
	Volumes(ctx context.Context, usage bool) (map[string]VolumeInfo, error)
}

// SnapshotReader is implemented by drivers whose snapshots are read-only
// directories anyone may read in place (btrfs, reflink, copy), which is how
// velo diff tells a branch unchanged since its snapshot without a server
// on a clone of it.
type SnapshotReader interface {
	// SnapshotPath returns where snapshot id's files are; nothing may
	// write there.
	SnapshotPath(ctx context.Context, id string) (string, error)
}

// ChangeLister is implemented by drivers that can tell, without reading
// the files, which bytes of each file a snapshot holds anew since an
// earlier snapshot of its lineage (ZFS: the records of an incremental send
// stream), which is how velo diff finds the changed blocks on ZFS.
type ChangeLister interface {
	// Changes returns, by inode number, the byte ranges of each file that
	// snapshot to wrote or freed since snapshot from, which is to's
	// volume's origin or an earlier snapshot of the same lineage (a file
	// made since has every byte it holds listed). A range may hold bytes
	// that did not change; a byte outside every range is the same in both.
	Changes(ctx context.Context, from, to string) (map[uint64][]ByteRange, error)
	// ListsChanges reports whether Changes can work here (its tools are
	// installed); when not, the caller reads the files instead.
	ListsChanges() bool
}

// ByteRange is Len bytes from Off; Len -1 runs to the end of the file.
type ByteRange struct{ Off, Len int64 }

// Prober is implemented by drivers whose pool may let this user make
// entries it cannot destroy (btrfs, where a user other than root deletes
// a subvolume only on a filesystem mounted with user_subvol_rm_allowed).
type Prober interface {
	// Probe tries, before a project's first volume, that this user can
	// make and destroy an entry here, and leaves nothing behind; its
	// refusal wraps errdefs.ErrUnsupported and names the fix.
	Probe(ctx context.Context) error
	// Check tells the same without changing anything (for velo doctor).
	Check() error
}

// FixError is a refusal that names its fix apart from the problem, so
// that velo doctor can show the two as it shows every finding. Its text
// is both: "problem; fix".
type FixError struct {
	Kind         error // the errdefs kind
	Problem, Fix string
}

func (e *FixError) Error() string   { return e.Problem + "; " + e.Fix }
func (e *FixError) Unwrap() []error { return []error{e.Kind} }

// Releaser is implemented by drivers that make bookkeeping of their own
// in a pool (the directory drivers' ROOT/{vol,snap,meta,tmp,trash}):
// Release removes it when it holds nothing, so that a pool no project
// uses any more is left as it was found. It fails, changing nothing,
// when anything is left.
type Releaser interface {
	Release() error
}

// VolumeInfo is one volume as Bulk reports it.
type VolumeInfo struct {
	Path  string
	Usage *Usage // nil unless asked for
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidateID refuses IDs that could escape a directory, collide after
// mangling, or break a zfs dataset name: an ID is 1 to 64 characters of
// a-z, 0-9, '_' and '-', starting with a letter or digit.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		if len(id) > 40 {
			id = id[:40] + "..."
		}
		return errdefs.Invalid("storage ID %q: IDs are 1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", id)
	}
	return nil
}

// NotFound builds the error for a missing volume or snapshot.
func NotFound(kind Kind, id string) error {
	return errdefs.NotFound("%s %s does not exist", kind, id)
}

// InUse builds the error for an entry with dependents.
func InUse(kind Kind, id string, what string, dependents []string) error {
	return errdefs.FailedPrecondition("%s %s has %s %v; destroy them first", kind, id, what, dependents)
}
