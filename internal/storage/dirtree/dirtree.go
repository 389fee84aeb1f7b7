// Package dirtree is the bookkeeping shared by the drivers whose volumes and
// snapshots are directories under one root (btrfs, reflink, copy). A driver
// supplies the few filesystem operations that differ (Ops); dirtree does
// the naming, the dependency rules and the crash ordering:
//
//	ROOT/vol/ID    volumes
//	ROOT/snap/ID   snapshots
//	ROOT/meta/ID   one small file per entry: its kind and origin
//	ROOT/tmp/ID    an entry being built; renamed into place when complete
//	ROOT/trash/rm-ID  an entry being removed; deleted after its record
//
// A crash leaves at worst a directory under tmp/ or trash/ or a meta file
// without its entry, none of which List reports; Sweep removes them.
package dirtree

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
)

// Ops are the filesystem operations a directory-based driver implements.
// Paths given to them are absolute; dst never exists beforehand.
type Ops interface {
	// MakeVolume creates an empty writable volume at dst.
	MakeVolume(ctx context.Context, dst string) error
	// Snapshot makes a point-in-time image of volume src at dst.
	Snapshot(ctx context.Context, src, dst string) error
	// Clone makes a writable volume at dst from snapshot src.
	Clone(ctx context.Context, src, dst string) error
	// Remove deletes a volume or snapshot made by the calls above.
	Remove(ctx context.Context, path string) error
	// Usage measures one volume or snapshot.
	Usage(ctx context.Context, path string) (storage.Usage, error)
}

// Inner is implemented by Ops whose snapshots keep their files below
// the snapshot's directory (btrfs: a read-only subvolume inside it).
type Inner interface {
	// SnapshotFiles is where the files of the snapshot at dir are.
	SnapshotFiles(dir string) string
}

// Prober is implemented by Ops whose filesystem may let this user make
// what it cannot remove.
type Prober interface {
	// Probe makes an entry at dir (absent beforehand, under tmp/) and
	// removes it, leaving dir gone whatever happens; it fails, naming
	// the fix, when the removal is not allowed.
	Probe(ctx context.Context, dir string) error
	// Check tells the same of root without changing anything.
	Check(root string) error
}

// Tree implements storage.Driver over Ops.
type Tree struct {
	Root string
	Ops  Ops
	name string
	caps storage.Capabilities
}

type meta struct {
	Kind   storage.Kind `json:"kind"`
	Origin string       `json:"origin,omitempty"`
}

// New prepares root (creating its subdirectories) and returns the Tree.
func New(root, name string, caps storage.Capabilities, ops Ops) (*Tree, error) {
	if !filepath.IsAbs(root) {
		return nil, errdefs.Invalid("storage root %q is not an absolute path", root)
	}
	for _, d := range []string{"", "vol", "snap", "meta", "tmp", "trash"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			return nil, fmt.Errorf("prepare storage root: %w", err)
		}
	}
	return &Tree{Root: root, Ops: ops, name: name, caps: caps}, nil
}

func (t *Tree) Name() string                       { return t.name }
func (t *Tree) Capabilities() storage.Capabilities { return t.caps }

func (t *Tree) dir(kind storage.Kind, id string) string {
	if kind == storage.KindVolume {
		return filepath.Join(t.Root, "vol", id)
	}
	return filepath.Join(t.Root, "snap", id)
}

// lookup returns the meta of a complete entry, or ErrNotFound.
func (t *Tree) lookup(id string) (meta, bool, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(t.Root, "meta", id))
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("storage record %s: %w", id, err)
	}
	if _, err := os.Lstat(t.dir(m.Kind, id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return m, false, nil // record of an entry never finished
		}
		return m, false, err
	}
	return m, true, nil
}

func (t *Tree) get(kind storage.Kind, id string) (meta, error) {
	if err := storage.ValidateID(id); err != nil {
		return meta{}, err
	}
	m, ok, err := t.lookup(id)
	if err != nil {
		return m, err
	}
	if !ok || m.Kind != kind {
		return m, storage.NotFound(kind, id)
	}
	return m, nil
}

func (t *Tree) free(id string) error {
	if err := storage.ValidateID(id); err != nil {
		return err
	}
	m, ok, err := t.lookup(id)
	if err != nil {
		return err
	}
	if ok {
		return errdefs.AlreadyExists("%s %s already exists", m.Kind, id)
	}
	return nil
}

// build records an entry and builds it under tmp/, then renames it into place.
func (t *Tree) build(ctx context.Context, kind storage.Kind, id, origin string, make func(dst string) error) error {
	if err := writeFileAtomic(filepath.Join(t.Root, "meta", id), meta{Kind: kind, Origin: origin}); err != nil {
		return err
	}
	tmp := filepath.Join(t.Root, "tmp", id)
	if _, err := os.Lstat(tmp); err == nil {
		if err := t.Ops.Remove(ctx, tmp); err != nil {
			return fmt.Errorf("remove leftover %s: %w", tmp, err)
		}
	}
	if err := make(tmp); err != nil {
		_ = t.Ops.Remove(context.WithoutCancel(ctx), tmp)
		_ = os.Remove(filepath.Join(t.Root, "meta", id))
		return err
	}
	if err := os.Rename(tmp, t.dir(kind, id)); err != nil {
		_ = t.Ops.Remove(context.WithoutCancel(ctx), tmp)
		_ = os.Remove(filepath.Join(t.Root, "meta", id))
		return err
	}
	return syncDir(filepath.Dir(t.dir(kind, id)))
}

func (t *Tree) CreateVolume(ctx context.Context, id string) (string, error) {
	if err := t.free(id); err != nil {
		return "", err
	}
	if err := t.build(ctx, storage.KindVolume, id, "", func(dst string) error { return t.Ops.MakeVolume(ctx, dst) }); err != nil {
		return "", fmt.Errorf("create volume %s: %w", id, err)
	}
	return t.dir(storage.KindVolume, id), nil
}

func (t *Tree) Snapshot(ctx context.Context, volumeID, snapshotID string) error {
	if err := storage.ValidateID(snapshotID); err != nil {
		return err
	}
	if _, err := t.get(storage.KindVolume, volumeID); err != nil {
		return err
	}
	if err := t.free(snapshotID); err != nil {
		return err
	}
	src := t.dir(storage.KindVolume, volumeID)
	if err := t.build(ctx, storage.KindSnapshot, snapshotID, volumeID, func(dst string) error { return t.Ops.Snapshot(ctx, src, dst) }); err != nil {
		return fmt.Errorf("snapshot %s of volume %s: %w", snapshotID, volumeID, err)
	}
	return nil
}

func (t *Tree) Clone(ctx context.Context, snapshotID, volumeID string) (string, error) {
	if err := storage.ValidateID(volumeID); err != nil {
		return "", err
	}
	if _, err := t.get(storage.KindSnapshot, snapshotID); err != nil {
		return "", err
	}
	if err := t.free(volumeID); err != nil {
		return "", err
	}
	src := t.dir(storage.KindSnapshot, snapshotID)
	if err := t.build(ctx, storage.KindVolume, volumeID, snapshotID, func(dst string) error { return t.Ops.Clone(ctx, src, dst) }); err != nil {
		return "", fmt.Errorf("clone snapshot %s to volume %s: %w", snapshotID, volumeID, err)
	}
	return t.dir(storage.KindVolume, volumeID), nil
}

func (t *Tree) DestroyVolume(ctx context.Context, id string) error {
	return t.destroy(ctx, storage.KindVolume, id)
}

func (t *Tree) DestroySnapshot(ctx context.Context, id string) error {
	return t.destroy(ctx, storage.KindSnapshot, id)
}

func (t *Tree) destroy(ctx context.Context, kind storage.Kind, id string) error {
	if _, err := t.get(kind, id); err != nil {
		return err
	}
	entries, err := t.List(ctx)
	if err != nil {
		return err
	}
	var deps []string
	for _, e := range entries {
		if e.Origin == id {
			deps = append(deps, e.ID)
		}
	}
	if len(deps) > 0 {
		sort.Strings(deps)
		what := "snapshots"
		if kind == storage.KindSnapshot {
			what = "clones"
		}
		return storage.InUse(kind, id, what, deps)
	}
	// Rename out of sight first, drop the record, then delete: a crash
	// leaves only trash, never a half-deleted entry that List reports.
	trash := filepath.Join(t.Root, "trash", "rm-"+id)
	if _, err := os.Lstat(trash); err == nil {
		if err := t.Ops.Remove(ctx, trash); err != nil {
			return fmt.Errorf("remove leftover %s: %w", trash, err)
		}
	}
	if err := os.Rename(t.dir(kind, id), trash); err != nil {
		return fmt.Errorf("destroy %s %s: %w", kind, id, err)
	}
	if err := os.Remove(filepath.Join(t.Root, "meta", id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := t.Ops.Remove(ctx, trash); err != nil {
		return fmt.Errorf("destroy %s %s: %w", kind, id, err)
	}
	return nil
}

func (t *Tree) Path(ctx context.Context, id string) (string, error) {
	if _, err := t.get(storage.KindVolume, id); err != nil {
		return "", err
	}
	return t.dir(storage.KindVolume, id), nil
}

// SnapshotPath implements storage.SnapshotReader.
func (t *Tree) SnapshotPath(ctx context.Context, id string) (string, error) {
	if _, err := t.get(storage.KindSnapshot, id); err != nil {
		return "", err
	}
	dir := t.dir(storage.KindSnapshot, id)
	if in, ok := t.Ops.(Inner); ok {
		dir = in.SnapshotFiles(dir)
	}
	return dir, nil
}

func (t *Tree) List(ctx context.Context) ([]storage.Entry, error) {
	names, err := os.ReadDir(filepath.Join(t.Root, "meta"))
	if err != nil {
		return nil, err
	}
	var out []storage.Entry
	for _, n := range names {
		id := n.Name()
		if storage.ValidateID(id) != nil {
			continue // a temporary file of writeFileAtomic
		}
		m, ok, err := t.lookup(id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, storage.Entry{ID: id, Kind: m.Kind, Origin: m.Origin})
		}
	}
	return out, nil
}

func (t *Tree) Usage(ctx context.Context, id string) (storage.Usage, error) {
	if err := storage.ValidateID(id); err != nil {
		return storage.Usage{}, err
	}
	m, ok, err := t.lookup(id)
	if err != nil {
		return storage.Usage{}, err
	}
	if !ok {
		return storage.Usage{}, storage.NotFound(storage.KindVolume, id)
	}
	return t.Ops.Usage(ctx, t.dir(m.Kind, id))
}

// Pool reports the filesystem under Root from statfs.
func (t *Tree) Pool(ctx context.Context) (storage.PoolStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(t.Root, &st); err != nil {
		return storage.PoolStats{}, fmt.Errorf("statfs %s: %w", t.Root, err)
	}
	bs := int64(st.Bsize)
	size := int64(st.Blocks) * bs
	free := int64(st.Bavail) * bs
	return storage.PoolStats{Name: t.Root, Size: size, Used: size - int64(st.Bfree)*bs, Free: free, Health: "ONLINE"}, nil
}

// Leftovers lists the unfinished builds and removals a crash left behind.
func (t *Tree) Leftovers() ([]string, error) {
	var out []string
	for _, d := range []string{"tmp", "trash"} {
		names, err := os.ReadDir(filepath.Join(t.Root, d))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, filepath.Join(t.Root, d, n.Name()))
		}
	}
	names, err := os.ReadDir(filepath.Join(t.Root, "meta"))
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok, err := t.lookup(n.Name()); err == nil && !ok {
			out = append(out, filepath.Join(t.Root, "meta", n.Name()))
		}
	}
	return out, nil
}

// Sweep removes what Leftovers reports.
func (t *Tree) Sweep(ctx context.Context) error {
	left, err := t.Leftovers()
	if err != nil {
		return err
	}
	for _, p := range left {
		if strings.HasPrefix(p, filepath.Join(t.Root, "meta")+string(filepath.Separator)) {
			err = os.Remove(p)
		} else {
			err = t.Ops.Remove(ctx, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Probe implements storage.Prober: the ops' probe, in a scratch directory
// under tmp/ (nothing to try when the ops have none).
func (t *Tree) Probe(ctx context.Context) error {
	p, ok := t.Ops.(Prober)
	if !ok {
		return nil
	}
	return p.Probe(ctx, filepath.Join(t.Root, "tmp", fmt.Sprintf("probe-%d", os.Getpid())))
}

// Check implements storage.Prober.
func (t *Tree) Check() error {
	if p, ok := t.Ops.(Prober); ok {
		return p.Check(t.Root)
	}
	return nil
}

// Release implements storage.Releaser: the directories New made go when
// they are empty, then the root itself (rmdir only: a file anywhere stops
// it, and what is left stays as it was).
func (t *Tree) Release() error {
	for _, d := range []string{"vol", "snap", "meta", "tmp", "trash", ""} {
		if err := os.Remove(filepath.Join(t.Root, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
