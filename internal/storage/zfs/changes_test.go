package zfs

import (
	"reflect"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/storage"
)

// zfs-fuse's zstreamdump -v of an incremental stream in which file 5 had
// its blocks 10 and 11 written (taken from a real pool).
const fuseDump = `BEGIN record
	hdrtype = 1
	features = 0
	magic = 2f5bacbac
	toname = zt/c@t
FREEOBJECTS firstobj = 0 numobjs = 1
OBJECT object = 5 type = 19 bonustype = 17 blksz = 8192 bonuslen = 264
FREE object = 5 offset = 819200 length = -1
FREEOBJECTS firstobj = 6 numobjs = 26
WRITE object = 5 type = 19 checksum type = 7
offset = 81920 length = 8192 props = 2000f000f
WRITE object = 5 type = 19 checksum type = 7
offset = 90112 length = 8192 props = 2000f000f
FREE object = 1 offset = 512 length = 1024
END checksum = 1ed2ae1e0/6c5a1e5f7a8/16fe0a9b34d5d8/3580e7b82f8c4c0
SUMMARY:
	Total DRR_BEGIN records = 1
	Total DRR_WRITE records = 2
`

// OpenZFS's zstream dump -v prints a WRITE on one line, its size as
// logical_size.
const openDump = `BEGIN record
WRITE object = 7 type = 19 checksum type = 7 compression type = 0 flags = 0 offset = 16384 logical_size = 8192 compressed_size = 0 payload_size = 8192 props = 2000f000f salt = 0000000000000000 iv = 000000000000000000000000 mac = 00000000000000000000000000000000
END checksum = 0/0/0/0
`

func TestParseStreamDump(t *testing.T) {
	got, err := parseStreamDump(strings.NewReader(fuseDump))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]storage.ByteRange{
		5: {{Off: 819200, Len: -1}, {Off: 81920, Len: 8192}, {Off: 90112, Len: 8192}},
		1: {{Off: 512, Len: 1024}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("zfs-fuse's dump: %v, want %v", got, want)
	}
	got, err = parseStreamDump(strings.NewReader(openDump))
	if err != nil || !reflect.DeepEqual(got, map[uint64][]storage.ByteRange{7: {{Off: 16384, Len: 8192}}}) {
		t.Errorf("OpenZFS's dump: %v, %v", got, err)
	}
	// Cut short (a send that died): refused, not taken for no change.
	if _, err := parseStreamDump(strings.NewReader(fuseDump[:strings.Index(fuseDump, "END")])); err == nil {
		t.Error("a stream without END was taken")
	}
	if _, err := parseStreamDump(strings.NewReader("BEGIN record\nWRITE object = x offset = 1 length = 2\nEND\n")); err == nil {
		t.Error("a WRITE without an object number was taken")
	}
}
