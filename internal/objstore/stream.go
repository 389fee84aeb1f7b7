package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/velohq/velo/internal/errdefs"
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
		part, n, err := s.putPart(ctx, fmt.Sprintf("%s.%05d", rel, i), r, tmpDir)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return parts, nil
		}
		parts = append(parts, part)
		if n < PartSize {
			return parts, nil
		}
	}
}

// putPart spools up to PartSize bytes of r into a file of tmpDir, hashing
// them on the way, and stores them as name (nothing when r had none left
// and n is 0).
func (s *Store) putPart(ctx context.Context, name string, r io.Reader, tmpDir string) (Part, int64, error) {
	f, err := os.CreateTemp(tmpDir, "part-*")
	if err != nil {
		return Part{}, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, PartSize))
	if err != nil || n == 0 {
		return Part{}, n, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Part{}, 0, err
	}
	obj, err := s.put(ctx, name, f, n, h.Sum(nil))
	if err != nil {
		return Part{}, 0, err
	}
	return Part{Name: name, Size: obj.Size, SHA256: obj.SHA256}, n, nil
}

// GetStream returns the stream of parts, read from the store one after
// the other. Each part's record must carry the checksum and size the list
// gives; its content is hashed as it streams by, and the stream fails at
// the end of a part whose content does not match, naming the object. So
// the bytes of a corrupt part are read before the failure: a reader
// writes them where it can throw them all away (a new volume). Close
// stops the download.
func (s *Store) GetStream(ctx context.Context, parts []Part) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.copyParts(ctx, parts, pw))
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

func (s *Store) copyParts(ctx context.Context, parts []Part, w io.Writer) error {
	if len(parts) == 0 {
		return errors.New("the stream has no parts")
	}
	for _, p := range parts {
		if err := s.copyPart(ctx, p, w); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) copyPart(ctx context.Context, p Part, w io.Writer) error {
	key := s.Loc.Key(p.Name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return s.explain(err, key)
	}
	defer out.Body.Close()
	if got := out.Metadata["velo-sha256"]; got != p.SHA256 || aws.ToInt64(out.ContentLength) != p.Size {
		return errdefs.FailedPrecondition("object %s is not the one its manifest names (store: %d bytes, sha256 %q; manifest: %d bytes, sha256 %s); refused", key, aws.ToInt64(out.ContentLength), got, p.Size, p.SHA256)
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(out.Body, h))
	if err != nil {
		return fmt.Errorf("downloading %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != p.Size || got != p.SHA256 {
		return errdefs.FailedPrecondition("object %s is corrupt: %d bytes with sha256 %s, its record says %d bytes, sha256 %s; refused", key, n, got, p.Size, p.SHA256)
	}
	return nil
}
