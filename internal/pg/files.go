package pg

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/velohq/velo/internal/pgconf"
)

// writeFileAtomic replaces path with data, given to owner (nil: the old
// file's owner), so that a crash leaves either the old file or the new one
// (pgconf.WriteAtomicOwned; a file that already holds it is left as it is).
func writeFileAtomic(path string, data []byte, perm os.FileMode, owner *OSUser) error {
	uid, gid := -1, -1
	if owner != nil {
		uid, gid = owner.UID, owner.GID
	}
	return pgconf.WriteAtomicOwned(path, data, perm, uid, gid)
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error { return pgconf.SyncDir(dir) }

// copyFileSynced copies src to dst through a temporary file in dst's
// directory, so a reader never sees a half-written dst; the directory is not
// synced (the caller does it once for many files).
func copyFileSynced(src, dst string, perm os.FileMode, owner *OSUser) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := out.Name()
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err = out.Chmod(perm); err != nil {
		return err
	}
	if owner != nil {
		if err = out.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown %s to %s: %w", tmp, owner.Name, err)
		}
	}
	if err = out.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// removeIfExists removes path, and is content when it was already gone.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
