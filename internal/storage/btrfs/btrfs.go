// Package btrfs is the storage driver for btrfs: a volume is a subvolume, a
// snapshot is a read-only snapshot of it, and a clone is a writable snapshot
// of that. Snapshots are atomic and every clone shares its unchanged blocks.
//
// On top of dirtree's layout, a snapshot ROOT/snap/ID is a plain directory
// holding the read-only subvolume ROOT/snap/ID/ro. The extra level is there
// because Linux refuses, with EROFS, to move a read-only subvolume into
// another directory (rename(2) of a directory to a new parent must rewrite
// its "..", a write to the subvolume), while dirtree builds every entry under
// tmp/ and moves it to trash/ before removing it. The plain directory moves;
// the subvolume inside it never does, so a snapshot is read-only from the
// instant it exists.
//
// Deletions commit the btrfs transaction before returning (subvolume delete
// --commit-after): without it btrfs frees a deleted subvolume's space only
// when its cleaner next runs (about 20 s later, measured), and a crash could
// bring back a subvolume whose record is already gone.
//
// As root everything works. Other users can create subvolumes and snapshot
// the ones they own, but can delete subvolumes only on a filesystem mounted
// with user_subvol_rm_allowed, and a read-only one only once its ro property
// is cleared (Remove does that for them).
package btrfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
)

// roName is the read-only subvolume inside a snapshot's directory.
const roName = "ro"

// New returns a btrfs driver keeping its subvolumes under root. It refuses,
// wrapping errdefs.ErrUnsupported, when root (or its nearest existing
// parent) is not on btrfs or the btrfs command is missing.
func New(root string) (*dirtree.Tree, error) {
	if !filepath.IsAbs(root) {
		return nil, errdefs.Invalid("storage root %q is not an absolute path", root)
	}
	if err := onBtrfs(root); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("btrfs"); err != nil {
		return nil, errdefs.Unsupported("btrfs storage needs the btrfs command (package btrfs-progs): %v", err)
	}
	return dirtree.New(root, "btrfs", storage.Capabilities{AtomicSnapshot: true, SpaceEfficient: true, SharedExtents: true}, ops{})
}

// onBtrfs checks the filesystem of path, or of its nearest existing parent
// when path is yet to be made.
func onBtrfs(path string) error {
	var st unix.Statfs_t
	p := path
	for {
		err := unix.Statfs(p, &st)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOENT) || p == filepath.Dir(p) {
			return errdefs.Unsupported("statfs %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
	// Through uint32: Statfs_t.Type is int32 on some platforms, and the
	// magic numbers are 32-bit.
	if magic := uint32(st.Type); magic != unix.BTRFS_SUPER_MAGIC {
		return errdefs.Unsupported("%s is on %s, not btrfs; choose a path on a btrfs filesystem, or the reflink or copy driver", path, fsName(magic))
	}
	return nil
}

func fsName(magic uint32) string {
	switch magic {
	case unix.EXT4_SUPER_MAGIC:
		return "ext2/3/4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case 0x2fc12fc1: // ZFS_SUPER_MAGIC, which x/sys lacks
		return "zfs"
	}
	return fmt.Sprintf("a filesystem of type %#x", magic)
}

type ops struct{}

func (ops) MakeVolume(ctx context.Context, dst string) error {
	_, err := run(ctx, "subvolume", "create", dst)
	return err
}

func (ops) Snapshot(ctx context.Context, src, dst string) error {
	if err := os.Mkdir(dst, 0o711); err != nil {
		return dirtree.WithKind(err)
	}
	_, err := run(ctx, "subvolume", "snapshot", "-r", src, filepath.Join(dst, roName))
	return err
}

// SnapshotFiles implements dirtree.Inner.
func (ops) SnapshotFiles(dir string) string { return filepath.Join(dir, roName) }

func (ops) Clone(ctx context.Context, src, dst string) error {
	_, err := run(ctx, "subvolume", "snapshot", filepath.Join(src, roName), dst)
	return err
}

// Remove deletes a volume (a subvolume), a snapshot (a directory holding
// one), or whatever a crash or a failed build left under tmp/ or trash/.
func (ops) Remove(ctx context.Context, path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return dirtree.WithKind(err)
	}
	if isSubvolume(info) {
		return deleteSubvolumes(ctx, path)
	}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return dirtree.WithKind(err)
		}
		var subs []string
		for _, e := range entries {
			p := filepath.Join(path, e.Name())
			if info, err := os.Lstat(p); err == nil && isSubvolume(info) {
				subs = append(subs, p)
			}
		}
		if len(subs) > 0 {
			if err := deleteSubvolumes(ctx, subs...); err != nil {
				return err
			}
		}
	}
	return dirtree.WithKind(dirtree.RemoveTree(path))
}

// isSubvolume: the root directory of every btrfs subvolume has inode 256
// (BTRFS_FIRST_FREE_OBJECTID), as btrfs-progs itself tests.
func isSubvolume(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && info.IsDir() && st.Ino == 256
}

func deleteSubvolumes(ctx context.Context, paths ...string) error {
	if os.Geteuid() != 0 {
		// Without CAP_SYS_ADMIN the kernel asks for write access to the
		// subvolume, which a read-only one refuses.
		for _, p := range paths {
			out, err := run(ctx, "property", "get", "-t", "subvol", p, "ro")
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(out)) == "ro=true" {
				if _, err := run(ctx, "property", "set", "-t", "subvol", p, "ro", "false"); err != nil {
					return err
				}
			}
		}
	}
	_, err := run(ctx, append([]string{"subvolume", "delete", "--commit-after"}, paths...)...)
	return err
}

// Usage reads btrfs's own accounting of shared extents: Exclusive is what
// no other file on the filesystem shares, Total all the file data.
func (ops) Usage(ctx context.Context, path string) (storage.Usage, error) {
	out, err := run(ctx, "filesystem", "du", "-s", "--raw", path)
	if err != nil {
		return storage.Usage{}, err
	}
	return parseDu(out)
}

// parseDu reads the summary line of `btrfs filesystem du -s --raw`:
//
//	    Total   Exclusive  Set shared  Filename
//	157286400    52428800   104857600  /pool/velo/vol/c1
func parseDu(out []byte) (storage.Usage, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(lines) >= 2 && len(f) >= 3 {
		total, err1 := strconv.ParseInt(f[0], 10, 64)
		excl, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			return storage.Usage{Exclusive: excl, Referenced: total}, nil
		}
	}
	return storage.Usage{}, errdefs.FailedPrecondition("unexpected output of btrfs filesystem du: %q", out)
}

// run runs the btrfs command; its error carries btrfs's own words and the
// storage error kind they mean.
func run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "btrfs", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	msg := strings.TrimSpace(stderr.String())
	// Any other failure (permission, I/O) is the tool's own words, no kind.
	var kind error
	switch {
	case strings.Contains(msg, "No space left"):
		kind = errdefs.ErrNoSpace
	case errors.Is(err, exec.ErrNotFound):
		kind = errdefs.ErrUnsupported
	case strings.Contains(msg, "No such file or directory"):
		kind = errdefs.ErrNotFound
	case strings.Contains(msg, "File exists"):
		kind = errdefs.ErrAlreadyExists
	case strings.Contains(msg, "not a btrfs filesystem"), strings.Contains(msg, "Operation not supported"), strings.Contains(msg, "Inappropriate ioctl"):
		kind = errdefs.ErrUnsupported
	}
	return nil, errdefs.New(kind, "btrfs %s: %w: %s", strings.Join(args, " "), err, msg)
}
