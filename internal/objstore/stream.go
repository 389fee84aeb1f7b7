package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A stream (a snapshot's tar) is stored as parts of at most PartSize
// bytes, REL.00000, REL.00001, ..., each an ordinary object of this
// package (written once, SHA-256 checked), so that a stream of any size
// fits the store's limit on one PUT and needs only one part's room on the
// local disk. Part lists the parts; whoever reads the stream back keeps
// that list (a manifest) and reads them in order with GetStream.

// PartSize is the size of a stream's parts but the last.
var PartSize int64 = 256 << 20

// Part is one object of a stream.
type Part struct {
	Name   string `json:"name"` // relative to the location's prefix
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// PutStream stores what r yields as parts rel.00000, ... of at most
// PartSize bytes, each spooled into a file of tmpDir first. A part that is
// already there with the same content is kept (a push run again).
func (s *Store) PutStream(ctx context.Context, rel string, r io.Reader, tmpDir string) ([]Part, error) {
	var parts []Part
	for i := 0; ; i++ {
		f, err := os.CreateTemp(tmpDir, "part-*")
		if err != nil {
			return nil, err
		}
		name := f.Name()
		n, err := io.Copy(f, io.LimitReader(r, PartSize))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return nil, err
		}
		if n == 0 && i > 0 {
			os.Remove(name)
			return parts, nil
		}
		partName := fmt.Sprintf("%s.%05d", rel, i)
		obj, err := s.PutFile(ctx, partName, name)
		os.Remove(name)
		if err != nil {
			return nil, err
		}
		parts = append(parts, Part{Name: partName, Size: obj.Size, SHA256: obj.SHA256})
		if n < PartSize {
			return parts, nil
		}
	}
}

// GetStream returns the stream of parts, downloaded one at a time into
// tmpDir and each checked against its checksum (and the one the list
// gives) before a byte of it is read. Close stops the download.
func (s *Store) GetStream(ctx context.Context, parts []Part, tmpDir string) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.copyParts(ctx, parts, tmpDir, pw))
	}()
	return &stream{PipeReader: pr, cancel: cancel}
}

type stream struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (s *stream) Close() error {
	s.cancel()
	return s.PipeReader.Close()
}

func (s *Store) copyParts(ctx context.Context, parts []Part, tmpDir string, w io.Writer) error {
	if len(parts) == 0 {
		return errors.New("the stream has no parts")
	}
	for _, p := range parts {
		obj, err := s.Head(ctx, p.Name)
		if err != nil {
			return err
		}
		if obj.SHA256 != p.SHA256 || obj.Size != p.Size {
			return fmt.Errorf("object %s is not the one its manifest names (store: %d bytes, sha256 %q; manifest: %d bytes, sha256 %s); refused", obj.Key, obj.Size, obj.SHA256, p.Size, p.SHA256)
		}
		local := filepath.Join(tmpDir, filepath.Base(p.Name))
		if err := s.GetFile(ctx, p.Name, local); err != nil {
			return err
		}
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		f.Close()
		os.Remove(local)
		if err != nil {
			return err
		}
	}
	return nil
}
