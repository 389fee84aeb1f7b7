package pgconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
)

// The lines around Velo's block in a user's file. Everything between them
// is Velo's and is replaced at every write; everything else is kept.
const (
	BeginMark = "# BEGIN velo: written by velo service-file --write; edits inside are replaced"
	EndMark   = "# END velo"
)

// ServiceBlock is the service file sections of ts, one a branch, with no
// password (libpq finds it in the password file), inside the marks.
// Sections the user defines (others) are left to them: libpq reads the
// first section of a name, so Velo's would not count; they are returned
// as skipped, as are names two branches share (demo-a/b and demo/a-b).
func ServiceBlock(ts []Target, others map[string]bool) (block string, skipped []string) {
	var b strings.Builder
	b.WriteString(BeginMark + "\n")
	seen := map[string]bool{}
	for _, t := range ts {
		name := t.Service()
		if others[name] || seen[name] {
			skipped = append(skipped, name)
			continue
		}
		seen[name] = true
		fmt.Fprintf(&b, "[%s]\nhost=%s\nport=%d\nuser=%s\ndbname=%s\nsslmode=%s\n", name, t.Host, t.Port, t.User, t.Database, t.SSLMode())
		if t.CACert != "" {
			fmt.Fprintf(&b, "sslrootcert=%s\n", t.CACert)
		}
		b.WriteString("\n")
	}
	b.WriteString(EndMark + "\n")
	return b.String(), skipped
}

// PassBlock is the password file lines of ts inside the marks: host, port,
// any database, user, password, with ':' and '\' escaped as libpq reads them.
func PassBlock(ts []Target) string {
	esc := strings.NewReplacer(`\`, `\\`, ":", `\:`)
	var b strings.Builder
	b.WriteString(BeginMark + "\n")
	for _, t := range ts {
		fmt.Fprintf(&b, "%s:%d:*:%s:%s\n", esc.Replace(t.Host), t.Port, esc.Replace(t.User), esc.Replace(t.Password))
	}
	b.WriteString(EndMark + "\n")
	return b.String()
}

// ParseServices checks a service file as libpq reads it (blank lines,
// # comments, [name] sections and key=value lines within one) and
// returns the names of the sections outside Velo's block. A line libpq
// would refuse is an errdefs.ErrInvalid error that quotes it.
func ParseServices(path string, data []byte) (map[string]bool, error) {
	names := map[string]bool{}
	inBlock, inSection := false, false
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		bad := func(why string) error {
			return errdefs.Invalid("%s line %d: %s %s; fix or remove that line (velo changed nothing)", path, i+1, why, ui.Quote(line))
		}
		switch {
		case l == BeginMark:
			if inBlock {
				return nil, bad("a second start of Velo's block before its end")
			}
			inBlock = true
		case l == EndMark:
			if !inBlock {
				return nil, bad("an end of Velo's block without its start")
			}
			inBlock = false
		case l == "" || l[0] == '#':
		case l[0] == '[':
			if l[len(l)-1] != ']' || len(l) < 3 {
				return nil, bad("a section header that is not [name]:")
			}
			inSection = true
			if !inBlock {
				names[l[1:len(l)-1]] = true
			}
		case strings.Contains(l, "="):
			if !inSection {
				return nil, bad("a setting before any [section]:")
			}
		default:
			return nil, bad("a line that is neither [section], key=value nor a # comment:")
		}
	}
	if inBlock {
		return nil, errdefs.Invalid("%s: Velo's block starts (%s) but never ends (%s); add the end line or remove the block (velo changed nothing)", path, BeginMark, EndMark)
	}
	return names, nil
}

// Merge puts block in place of Velo's block in data, or, when there is
// none, first (atTop: the password file, where libpq takes the first
// matching line) or last. The marks must be well formed (ParseServices
// or a password file checked with CheckMarks).
func Merge(data []byte, block string, atTop bool) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	var before, after []string
	state := 0 // 0 before the block, 1 in it, 2 after it
	for _, line := range lines {
		l := strings.TrimSpace(line)
		switch {
		case state == 0 && l == BeginMark:
			state = 1
		case state == 1:
			if l == EndMark {
				state = 2
			}
		case state == 0:
			before = append(before, line)
		default:
			after = append(after, line)
		}
	}
	var out bytes.Buffer
	if state == 0 {
		rest := strings.Join(before, "")
		if atTop {
			out.WriteString(block)
			out.WriteString(rest)
			return out.Bytes()
		}
		out.WriteString(rest)
		if rest != "" && !strings.HasSuffix(rest, "\n") {
			out.WriteString("\n")
		}
		out.WriteString(block)
		return out.Bytes()
	}
	out.WriteString(strings.Join(before, ""))
	out.WriteString(block)
	out.WriteString(strings.Join(after, ""))
	return out.Bytes()
}

// CheckMarks checks that Velo's block in a file other than a service
// file is whole: a start, then an end, once.
func CheckMarks(path string, data []byte) error {
	begins, ends, beginLine := 0, 0, 0
	for i, line := range strings.Split(string(data), "\n") {
		switch strings.TrimSpace(line) {
		case BeginMark:
			begins++
			beginLine = i + 1
		case EndMark:
			ends++
			if begins != ends {
				return errdefs.Invalid("%s line %d: an end of Velo's block without its start; remove that line (velo changed nothing)", path, i+1)
			}
		}
	}
	if begins != ends || begins > 1 {
		return errdefs.Invalid("%s line %d: Velo's block must start and end once; fix the marks (velo changed nothing)", path, beginLine)
	}
	return nil
}

// ReadFile reads path through its symlinks; a file that does not exist
// is empty. It returns the real path to write to and the file's mode.
func ReadFile(path string, mode os.FileMode) (real string, data []byte, perm os.FileMode, err error) {
	real, err = filepath.EvalSymlinks(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, nil, mode, nil
	} else if err != nil {
		return "", nil, 0, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", nil, 0, err
	}
	data, err = os.ReadFile(real)
	return real, data, fi.Mode().Perm(), err
}

// WriteAtomic replaces path with data: a temporary file in the same
// directory, written, fsynced, given the old file's owner and perm, then
// renamed over path and the directory fsynced, so that a crash leaves the
// old file or the new one, never a part.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomicOwned(path, data, perm, -1, -1)
}

// WriteAtomicOwned is WriteAtomic, the new file owned by uid and gid (-1:
// the old file's owner, else the caller). It is the one atomic write of
// the repository: the data directories' settings, identities, secrets and
// the user's libpq files all go through it. A file that already holds
// data, with perm and that owner, is left as it is: a server's start
// rewrites its settings each time, and most times they are what they were
// (two fsyncs saved per file).
func WriteAtomicOwned(path string, data []byte, perm os.FileMode, uid, gid int) (err error) {
	fi, err := os.Lstat(path)
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && uid < 0 {
			uid, gid = int(st.Uid), int(st.Gid)
		}
		if unchanged(path, fi, data, perm, uid, gid) {
			return nil
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".velo-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if uid >= 0 {
		if err = tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", tmp.Name(), uid, gid, err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// unchanged reports whether path (fi) is a regular file holding data, with
// perm and (uid >= 0) that owner.
func unchanged(path string, fi os.FileInfo, data []byte, perm os.FileMode, uid, gid int) bool {
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != perm || fi.Size() != int64(len(data)) {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || (uid >= 0 && (int(st.Uid) != uid || int(st.Gid) != gid)) {
		return false
	}
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}

// SyncDir makes a rename or creation in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// CheckValue refuses a value that would break a line of either file: a
// newline (a home directory's path could hold one).
func CheckValue(what, v string) error {
	if strings.ContainsAny(v, "\n\r") {
		return errdefs.Invalid("%s %s holds a line break, which no libpq file can hold", what, strconv.Quote(v))
	}
	return nil
}
