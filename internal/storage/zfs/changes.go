package zfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/velohq/velo/internal/storage"
)

// ListsChanges implements storage.ChangeLister: zstreamdump is installed
// (zfs-fuse ships it; OpenZFS's zfsutils too, as a name for zstream dump).
func (d *Driver) ListsChanges() bool {
	_, err := exec.LookPath("zstreamdump")
	return err == nil
}

// Changes implements storage.ChangeLister with an incremental send stream
// from from to to (zfs send -i), read by zstreamdump -v (zstream dump -v on
// OpenZFS, which keeps zstreamdump as its old name): its WRITE and FREE
// records name each object (a file's inode number) and the byte ranges
// that to holds anew. Only the records are read; the data they carry goes
// through the pipe unread.
func (d *Driver) Changes(ctx context.Context, from, to string) (map[uint64][]storage.ByteRange, error) {
	if err := validate(from, to); err != nil {
		return nil, err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	fv, ok := inv.snapshots[from]
	if !ok {
		return nil, storage.NotFound(storage.KindSnapshot, from)
	}
	tv, ok := inv.snapshots[to]
	if !ok {
		return nil, storage.NotFound(storage.KindSnapshot, to)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	send := exec.CommandContext(ctx, "zfs", "send", "-i", d.dataset(fv)+"@"+from, d.dataset(tv)+"@"+to)
	send.Env = append(os.Environ(), "LC_ALL=C")
	dump := exec.CommandContext(ctx, "zstreamdump", "-v")
	stream, err := send.StdoutPipe()
	if err != nil {
		return nil, err
	}
	dump.Stdin = stream
	out, err := dump.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var sendErr, dumpErr strings.Builder
	send.Stderr, dump.Stderr = &sendErr, &dumpErr
	if err := send.Start(); err != nil {
		return nil, fmt.Errorf("zfs send: %w", err)
	}
	if err := dump.Start(); err != nil {
		cancel()
		_ = send.Wait()
		return nil, fmt.Errorf("zstreamdump (zfs-fuse's, or OpenZFS's zstream): %w", err)
	}
	changes, perr := parseStreamDump(out)
	_, _ = io.Copy(io.Discard, out)
	serr, derr := send.Wait(), dump.Wait()
	switch {
	case serr != nil:
		return nil, fmt.Errorf("zfs send -i %s %s: %s (%v)", from, to, strings.TrimSpace(sendErr.String()), serr)
	case derr != nil:
		return nil, fmt.Errorf("zstreamdump: %s (%v)", strings.TrimSpace(dumpErr.String()), derr)
	case perr != nil:
		return nil, fmt.Errorf("read the stream of %s since %s: %w", to, from, perr)
	}
	return changes, nil
}

// parseStreamDump reads zstreamdump -v's listing: a record starts with its
// kind in capitals (WRITE, FREE, OBJECT, ...) and goes on with "key =
// value" pairs, on its line and, in zfs-fuse's, the next (a WRITE's offset
// and length). WRITE and FREE records give ranges; a length of -1 (a FREE
// to the end) is kept as -1. A stream without its END record is refused.
func parseStreamDump(r io.Reader) (map[uint64][]storage.ByteRange, error) {
	out := map[uint64][]storage.ByteRange{}
	var kind string
	var fields map[string]string
	end := false
	flush := func() error {
		if kind != "WRITE" && kind != "FREE" {
			return nil
		}
		obj, err1 := strconv.ParseUint(fields["object"], 10, 64)
		off, err2 := strconv.ParseInt(fields["offset"], 10, 64)
		n := fields["length"]
		if n == "" {
			n = fields["logical_size"] // OpenZFS's WRITE
		}
		length, err3 := strconv.ParseInt(n, 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || off < 0 || length < -1 {
			return fmt.Errorf("a %s record without object, offset and length: %v", kind, fields)
		}
		out[obj] = append(out[obj], storage.ByteRange{Off: off, Len: length})
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		word, _, _ := strings.Cut(line, " ")
		if isKind(word) {
			if err := flush(); err != nil {
				return nil, err
			}
			kind, fields = word, map[string]string{}
			if word == "END" {
				end = true
			}
		}
		if fields != nil {
			pairs(line, fields)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if !end {
		return nil, fmt.Errorf("the stream ended without its END record")
	}
	return out, nil
}

// isKind reports whether word names a record kind (all capitals and _).
func isKind(word string) bool {
	if word == "" {
		return false
	}
	for _, c := range word {
		if (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// pairs adds the "key = value" pairs of line to fields; a key is the word
// before " = " (the last of "checksum type"), the value the word after.
func pairs(line string, fields map[string]string) {
	words := strings.Fields(line)
	for i := 1; i+1 < len(words); i++ {
		if words[i] == "=" {
			if _, ok := fields[words[i-1]]; !ok {
				fields[words[i-1]] = words[i+1]
			}
		}
	}
}
