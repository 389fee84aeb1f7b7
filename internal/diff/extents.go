package diff

import (
	"bytes"
	"context"
	"errors"
	"os"

	"github.com/velohq/velo/internal/fiemap"
)

// ExtentFinder asks the filesystem where each block lies (FIEMAP): a block
// that both files map to the same place, in extents that say surely where
// their bytes are, is the same block (a clone's copy-on-write never writes
// a shared place), and is not read. The others are compared by their bytes,
// so that a block written again with the same bytes is not a candidate. On
// btrfs and on reflink (XFS) a clone shares every block it did not write
// with its origin; a file FIEMAP cannot map is compared by its bytes.
type ExtentFinder struct {
	// Stop, when set, is asked of each block whose bytes differ (old's
	// and new's, as read); true ends the search there, Found.Stopped set.
	Stop func(old, new []byte) bool
}

// Changed implements BlockFinder.
func (x ExtentFinder) Changed(ctx context.Context, oldPath, newPath string) (Found, error) {
	f := Found{Method: "fiemap"}
	var r fiemap.Reader
	ob := make([]byte, BlockSize)
	nb := make([]byte, BlockSize)
	err := eachSegment(oldPath, newPath, func(seg int64, o, n *os.File, oldSize, newSize int64) error {
		base := seg * segmentBlocks
		blocks := (max(oldSize, newSize) + BlockSize - 1) / BlockSize
		f.Blocks += blocks
		var oe, ne []fiemap.Extent
		var err error
		if o != nil && n != nil {
			if oe, err = r.Extents(o.Name(), fiemap.FlagSync); err == nil {
				ne, err = r.Extents(n.Name(), fiemap.FlagSync)
			}
			if err != nil {
				oe, ne = nil, nil // compared by bytes
			}
		}
		var oi, ni int
		for b := int64(0); b < blocks; b++ {
			if b%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			off := uint64(b * BlockSize)
			op, ok1 := place(oe, &oi, off)
			np, ok2 := place(ne, &ni, off)
			if ok1 && ok2 && op == np && b*BlockSize+BlockSize <= min(oldSize, newSize) {
				continue
			}
			on, err := readAt(o, ob, b*BlockSize)
			if err != nil {
				return err
			}
			nn, err := readAt(n, nb, b*BlockSize)
			if err != nil {
				return err
			}
			f.Read += int64(on + nn)
			if !bytes.Equal(ob[:on], nb[:nn]) {
				f.add(base + b)
				if x.Stop != nil && x.Stop(ob[:on], nb[:nn]) {
					f.Stopped = true
					return errStopped
				}
			}
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		err = nil
	}
	return f, err
}

// errStopped ends eachSegment's walk when Stop says so.
var errStopped = errors.New("stopped")

// place is where the block at off lies, from extents in file order, when
// one sure extent holds all of it; *i walks forward with off.
func place(ext []fiemap.Extent, i *int, off uint64) (uint64, bool) {
	for *i < len(ext) && ext[*i].Logical+ext[*i].Length <= off {
		*i++
	}
	if *i >= len(ext) {
		return 0, false
	}
	e := ext[*i]
	if off < e.Logical || off+BlockSize > e.Logical+e.Length || !e.Sure() {
		return 0, false
	}
	return e.Physical + (off - e.Logical), true
}
