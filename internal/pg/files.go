package pg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// writeFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one: it writes a temporary file beside it, gives it to
// owner, fsyncs it, renames it into place and fsyncs the directory.
//
// A file that already holds data, with perm and owner, is left as it is:
// a server's start rewrites its settings each time, and most times they
// are what they were (two fsyncs saved per file).
func writeFileAtomic(path string, data []byte, perm os.FileMode, owner *OSUser) (err error) {
	if unchanged(path, data, perm, owner) {
		return nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if owner != nil {
		if err = f.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown %s to %s: %w", tmp, owner.Name, err)
		}
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// unchanged reports whether path is a regular file holding data, with perm
// and (when given) owner's uid and gid.
func unchanged(path string, data []byte, perm os.FileMode, owner *OSUser) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != perm || fi.Size() != int64(len(data)) {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || (owner != nil && (int(st.Uid) != owner.UID || int(st.Gid) != owner.GID)) {
		return false
	}
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

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
