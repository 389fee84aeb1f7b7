package pg

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tarSkipped are the files of a data directory a tar of it leaves out:
// what only the server that ran on it may use.
var tarSkipped = map[string]bool{"postmaster.pid": true, "postmaster.opts": true}

// TarDataDir writes a tar of the data directory dir to w: regular files,
// directories and symbolic links, by path in lexical order, with their
// mode and modification time (to the second) and nothing else, so that
// the tar of the same files is the same bytes every time (a push run
// again writes the same objects). sizeFn, when set, is told each file's
// size as it is written.
func TarDataDir(w io.Writer, dir string, sizeFn func(int64)) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		if tarSkipped[rel] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(info.Mode().Perm()), ModTime: info.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
		switch {
		case info.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, info.Size()
		case info.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
		default:
			return nil // sockets and the like are no data
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size in the header, even if the file changed.
		n, err := io.Copy(tw, io.LimitReader(f, h.Size))
		if err == nil && n != h.Size {
			err = fmt.Errorf("%s shrank while it was read", path)
		}
		if sizeFn != nil {
			sizeFn(n)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// UntarDataDir unpacks a tar written by TarDataDir into dir (which must
// exist), owned by owner (nil: the current user). It refuses entries that
// would land outside dir and kinds TarDataDir never writes.
func UntarDataDir(r io.Reader, dir string, owner *OSUser, sizeFn func(int64)) error {
	tr := tar.NewReader(r)
	root := filepath.Clean(dir)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the snapshot's tar: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("the snapshot's tar holds %q, outside its data directory; refused", h.Name)
		}
		path := filepath.Join(root, name)
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return err
			}
			if err := os.Chmod(path, mode); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if sizeFn != nil {
				sizeFn(n)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the snapshot's tar holds %q of a kind velo never writes (%c); refused", h.Name, h.Typeflag)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chtimes(path, h.ModTime, h.ModTime); err != nil {
				return err
			}
		}
	}
	if err := Chown(root, owner); err != nil {
		return err
	}
	return syncTree(root)
}

// syncTree flushes dir's files to disk before a server runs on them.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
