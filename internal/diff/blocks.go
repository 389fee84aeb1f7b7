package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// BlockSize is PostgreSQL's page size (the default build's; Compare
// checks both servers use it).
const BlockSize = 8192

// segmentBlocks is how many blocks one segment file holds (1 GB).
const segmentBlocks = 131072

// Range is the blocks [Lo, Hi) of a relation.
type Range struct{ Lo, Hi int64 }

// Found is what a BlockFinder found for one relation.
type Found struct {
	Ranges []Range // the blocks that may differ; none: the two are the same
	Blocks int64   // blocks of the larger side
	Read   int64   // bytes read from the files
	Method string  // how: bytes, fiemap, ...
	// Stopped: the search ended at the first block its finder was told
	// to stop at (ExtentFinder.Stop); Ranges are those found until then.
	Stopped bool
}

// BlockFinder finds the blocks in which two versions of a relation's main
// fork (the path of its first segment on each side) may differ. It may
// name blocks that are the same (the rows decide); it must never leave
// out one that differs.
type BlockFinder interface {
	Changed(ctx context.Context, oldPath, newPath string) (Found, error)
}

// ByteFinder compares the files' bytes, block by block: what every storage
// can do, at the cost of reading both sides.
type ByteFinder struct{}

// Changed implements BlockFinder.
func (ByteFinder) Changed(ctx context.Context, oldPath, newPath string) (Found, error) {
	f := Found{Method: "bytes"}
	err := eachSegment(oldPath, newPath, func(seg int64, o, n *os.File, oldSize, newSize int64) error {
		blocks := (max(oldSize, newSize) + BlockSize - 1) / BlockSize
		f.Blocks += blocks
		return f.compareBytes(ctx, seg*segmentBlocks, o, n, Range{0, blocks})
	})
	return f, err
}

// compareBytes reads the blocks r of one segment (whose first block is
// base) on both sides, 1 MB at a time, and adds those that differ.
func (f *Found) compareBytes(ctx context.Context, base int64, o, n *os.File, r Range) error {
	const chunk = 128
	ob := make([]byte, chunk*BlockSize)
	nb := make([]byte, chunk*BlockSize)
	for b := r.Lo; b < r.Hi; b += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(chunk, r.Hi-b)
		on, err := readAt(o, ob[:k*BlockSize], b*BlockSize)
		if err != nil {
			return err
		}
		nn, err := readAt(n, nb[:k*BlockSize], b*BlockSize)
		if err != nil {
			return err
		}
		f.Read += int64(on + nn)
		for i := int64(0); i < k; i++ {
			lo, hi := i*BlockSize, (i+1)*BlockSize
			if !bytes.Equal(window(ob, on, lo, hi), window(nb, nn, lo, hi)) {
				f.add(base + b + i)
			}
		}
	}
	return nil
}

// add marks block b, joining it to the last range when they touch.
func (f *Found) add(b int64) {
	if n := len(f.Ranges); n > 0 && f.Ranges[n-1].Hi == b {
		f.Ranges[n-1].Hi++
		return
	}
	f.Ranges = append(f.Ranges, Range{b, b + 1})
}

// window is buf[lo:hi] cut to the n bytes read.
func window(buf []byte, n int, lo, hi int64) []byte {
	if hi > int64(n) {
		hi = int64(n)
	}
	if lo > hi {
		lo = hi
	}
	return buf[lo:hi]
}

func readAt(f *os.File, buf []byte, off int64) (int, error) {
	if f == nil {
		return 0, nil
	}
	n, err := f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// eachSegment opens the segments (PATH, PATH.1, ...) of both sides in
// turn, a missing one as empty (nil), until neither side has more.
func eachSegment(oldPath, newPath string, fn func(seg int64, o, n *os.File, oldSize, newSize int64) error) error {
	for seg := int64(0); ; seg++ {
		suffix := ""
		if seg > 0 {
			suffix = fmt.Sprintf(".%d", seg)
		}
		o, os1, err := openSegment(oldPath + suffix)
		if err != nil {
			return err
		}
		n, ns, err := openSegment(newPath + suffix)
		if err != nil {
			closeFile(o)
			return err
		}
		if o == nil && n == nil {
			return nil
		}
		err = fn(seg, o, n, os1, ns)
		closeFile(o)
		closeFile(n)
		if err != nil {
			return err
		}
	}
}

func openSegment(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}
