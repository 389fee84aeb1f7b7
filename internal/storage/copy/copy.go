// Package copy is the reference storage driver: snapshots and clones are
// plain file copies. It works on any filesystem and without root, shares
// nothing, and is not atomic.
package copy

import (
	"bytes"
	"context"
	"io"
	"os"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
)

// New returns a copy driver keeping its volumes under root.
func New(root string) (*dirtree.Tree, error) {
	return dirtree.New(root, "copy", storage.Capabilities{}, ops{})
}

type ops struct{}

func (ops) MakeVolume(ctx context.Context, dst string) error { return os.Mkdir(dst, 0o755) }

func (ops) Snapshot(ctx context.Context, src, dst string) error { return copyTree(ctx, src, dst) }

func (ops) Clone(ctx context.Context, src, dst string) error { return copyTree(ctx, src, dst) }

func (ops) Remove(ctx context.Context, path string) error { return dirtree.RemoveTree(path) }

func (ops) Usage(ctx context.Context, path string) (storage.Usage, error) {
	return dirtree.AllocatedBytes(path)
}

func copyTree(ctx context.Context, src, dst string) error {
	if err := dirtree.CopyTree(ctx, src, dst, CopySparse); err != nil {
		return err
	}
	return dirtree.SyncTree(dst)
}

const block = 128 << 10

// CopySparse copies src into dst and leaves holes where src reads as zeros,
// so sparse files stay sparse.
func CopySparse(src, dst *os.File, size int64) error {
	buf := make([]byte, block)
	zero := make([]byte, block)
	var off int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return dst.Truncate(off)
}
