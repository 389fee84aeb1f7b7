// Package fiemap reads a file's extents with the FS_IOC_FIEMAP ioctl,
// which golang.org/x/sys/unix does not wrap (include/uapi/linux/fiemap.h):
// where each range of the file lies on the device, and whether another
// file shares it (a reflink or a snapshot's clone).
package fiemap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	iocFiemap = 0xC020660B // _IOWR('f', 11, struct fiemap): 32 bytes
	maxOffset = ^uint64(0)
	batch     = 256

	// FlagSync asks the kernel to write the file's dirty pages first, so
	// that every extent has its place.
	FlagSync = 0x00000001

	// Extent flags.
	ExtentLast = 0x00000001
	// ExtentUnsure marks what says nothing reliable about the bytes'
	// place: unknown or delayed allocation, encoded (compressed) or
	// encrypted data, unaligned or inline data, data packed in a tail,
	// unwritten (preallocated) ranges.
	ExtentUnsure = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
	ExtentShared = 0x00002000
)

// Extent is one mapped range of a file.
type Extent struct {
	Logical  uint64 // offset in the file
	Physical uint64 // offset on the device
	Length   uint64
	Flags    uint32
}

// Shared reports whether another file shares e.
func (e Extent) Shared() bool { return e.Flags&ExtentShared != 0 }

// Sure reports whether e's place says where its bytes are: two files whose
// sure extents map an offset to one physical place hold the same bytes
// there (copy-on-write never writes a shared place).
func (e Extent) Sure() bool { return e.Flags&ExtentUnsure == 0 }

// raw is struct fiemap_extent (56 bytes).
type raw struct {
	Logical    uint64
	Physical   uint64
	Length     uint64
	Reserved64 [2]uint64
	Flags      uint32
	Reserved   [3]uint32
}

// request is struct fiemap (32 bytes) followed by room for batch
// extents, as the kernel expects them.
type request struct {
	Start         uint64
	Length        uint64
	Flags         uint32
	MappedExtents uint32
	ExtentCount   uint32
	Reserved      uint32
	Extents       [batch]raw
}

// Reader reads extents with one buffer, reused; it is not safe for
// concurrent use.
type Reader struct{ m request }

// Walk calls fn with each extent of the file at path in order, asking the
// kernel in batches, until the last or until fn returns false. flags is 0
// or FlagSync.
func (r *Reader) Walk(path string, flags uint32, fn func(Extent) bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	m := &r.m
	for start := uint64(0); ; {
		*m = request{Start: start, Length: maxOffset - start, Flags: flags, ExtentCount: batch}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), iocFiemap, uintptr(unsafe.Pointer(m))); errno != 0 {
			return errno
		}
		if m.MappedExtents == 0 {
			return nil
		}
		for _, e := range m.Extents[:m.MappedExtents] {
			if !fn(Extent{Logical: e.Logical, Physical: e.Physical, Length: e.Length, Flags: e.Flags}) || e.Flags&ExtentLast != 0 {
				return nil
			}
		}
		last := m.Extents[m.MappedExtents-1]
		start = last.Logical + last.Length
	}
}

// Extents lists the extents of the file at path.
func (r *Reader) Extents(path string, flags uint32) ([]Extent, error) {
	var out []Extent
	err := r.Walk(path, flags, func(e Extent) bool { out = append(out, e); return true })
	return out, err
}
