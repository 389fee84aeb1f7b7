package dirtree

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/storage"
)

// FileCopier copies the content of one regular file into a new, empty one.
type FileCopier func(src, dst *os.File, size int64) error

// CopyTree copies the tree at src to dst (which must not exist), keeping
// modes, owners, timestamps, symlinks and empty directories; copyFile moves
// the bytes of each regular file (plainly, or by sharing extents).
func CopyTree(ctx context.Context, src, dst string, copyFile FileCopier) error {
	type dirTimes struct {
		path string
		st   *syscall.Stat_t
	}
	var dirs []dirTimes
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		perm := info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{target, st})
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyRegular(p, target, info.Size(), copyFile); err != nil {
				return fmt.Errorf("copy %s: %w", p, err)
			}
		default:
			return nil // sockets, fifos and devices have no place in a data directory
		}
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil && !os.IsPermission(err) {
			return err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(target, perm); err != nil {
				return err
			}
			if !d.IsDir() {
				if err := setTimes(target, st); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Directory times last, children first: creating entries changes them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].path, dirs[i].st); err != nil {
			return err
		}
	}
	return nil
}

func setTimes(path string, st *syscall.Stat_t) error {
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyRegular(src, dst string, size int64, copyFile FileCopier) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := copyFile(in, out, size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// SyncTree fsyncs every regular file and directory under root, so that a
// finished copy survives a power cut before it is renamed into place.
func SyncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// RemoveTree deletes a directory tree, making read-only directories
// writable first where needed.
func RemoveTree(path string) error {
	err := os.RemoveAll(path)
	if err != nil && os.IsPermission(err) {
		_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		err = os.RemoveAll(path)
	}
	return err
}

// AllocatedBytes sums the blocks allocated to the files under root,
// counting hard-linked files once.
func AllocatedBytes(root string) (storage.Usage, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return storage.Usage{Exclusive: total, Referenced: total}, err
}
