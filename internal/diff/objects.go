package diff

import (
	"context"
	"os"
	"sort"
	"sync"
	"syscall"

	"github.com/velohq/velo/internal/storage"
)

// ObjectFinder narrows the reading with what the storage lists as written
// since a snapshot both sides were made from, file by file (ZFS: the
// records of an incremental send stream, by inode number): a block that
// neither side's list covers is, on both, the snapshot's block of the same
// file, and is not read; the others are compared by their bytes. Two
// segments that are not the same file of that lineage (other inode
// numbers: another relfilenode, a file made since on one side) are
// compared whole, by their bytes.
type ObjectFinder struct {
	// Load lists, for each side, the byte ranges written since the
	// snapshot by inode number. It is called once, at the first
	// comparison: after Compare's checkpoints, so that every change the
	// reading transactions see is in the files.
	Load func(ctx context.Context) (old, new map[uint64][]storage.ByteRange, err error)

	once     sync.Once
	old, new map[uint64][]storage.ByteRange
	err      error
}

// Changed implements BlockFinder.
func (f *ObjectFinder) Changed(ctx context.Context, oldPath, newPath string) (Found, error) {
	f.once.Do(func() { f.old, f.new, f.err = f.Load(ctx) })
	if f.err != nil {
		return Found{}, f.err
	}
	found := Found{Method: "zfs-send"}
	err := eachSegment(oldPath, newPath, func(seg int64, o, n *os.File, oldSize, newSize int64) error {
		blocks := (max(oldSize, newSize) + BlockSize - 1) / BlockSize
		found.Blocks += blocks
		oi, ok1 := inode(o)
		ni, ok2 := inode(n)
		if !ok1 || !ok2 || oi != ni {
			return found.compareBytes(ctx, seg*segmentBlocks, o, n, Range{0, blocks})
		}
		for _, r := range candidates(f.old[oi], f.new[ni], min(oldSize, newSize), blocks) {
			if err := found.compareBytes(ctx, seg*segmentBlocks, o, n, r); err != nil {
				return err
			}
		}
		return nil
	})
	return found, err
}

// candidates turns two lists of byte ranges into the runs of blocks, of
// a segment of blocks blocks, that either covers, with the blocks past
// common (the smaller side's size), merged and in order.
func candidates(a, b []storage.ByteRange, common, blocks int64) []Range {
	var rs []Range
	for _, list := range [][]storage.ByteRange{a, b} {
		for _, br := range list {
			lo, hi := br.Off/BlockSize, blocks
			if br.Len >= 0 {
				hi = (br.Off + br.Len + BlockSize - 1) / BlockSize
			}
			if hi > blocks {
				hi = blocks
			}
			if lo < hi {
				rs = append(rs, Range{lo, hi})
			}
		}
	}
	if lo := common / BlockSize; lo < blocks {
		rs = append(rs, Range{lo, blocks})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Lo <= out[n-1].Hi {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// inode is f's inode number; false for a missing file.
func inode(f *os.File) (uint64, bool) {
	if f == nil {
		return 0, false
	}
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return sys.Ino, true
}
