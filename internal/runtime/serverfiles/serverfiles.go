// Package serverfiles holds what every runtime does with a server's files
// on the host: read its postmaster.pid, prepare its socket directory, open
// its log and quote the log's last lines when a start fails.
package serverfiles

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
)

// logTailLines is how much of the server log a start error quotes.
const logTailLines = 20

// PIDFile is what a postmaster writes to DataDir/postmaster.pid: its PID,
// data directory, start time, port, socket directory, listen address, shared
// memory key and, from Postgres 10, a status word ("starting", "ready",
// "stopping", "standby"). Lines after the first may not be written yet while
// the server starts.
type PIDFile struct {
	PID     int
	DataDir string
	Port    int
	Status  string
}

// ReadPIDFile parses dataDir/postmaster.pid; a missing file is an
// os.ErrNotExist error.
func ReadPIDFile(dataDir string) (PIDFile, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return PIDFile{}, err
	}
	return ParsePIDFile(data)
}

// ParsePIDFile parses the contents of a postmaster.pid.
func ParsePIDFile(data []byte) (PIDFile, error) {
	lines := strings.Split(string(data), "\n")
	var pf PIDFile
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		// A postmaster of an old single-user backend writes -PID; a file
		// being written may be empty. Neither names a server to talk to.
		return PIDFile{}, fmt.Errorf("postmaster.pid: bad PID line %q", lines[0])
	}
	pf.PID = pid
	if len(lines) > 1 {
		pf.DataDir = strings.TrimSpace(lines[1])
	}
	if len(lines) > 3 {
		pf.Port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) > 7 {
		pf.Status = strings.TrimSpace(lines[7])
	}
	return pf, nil
}

// ClearStaleSockets removes Postgres's socket files and their lock files
// from a private socket directory.
func ClearStaleSockets(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// EnsureSocketDir creates the socket directory, 0700 and owned by owner,
// when it is missing. An existing one is left as it is.
func EnsureSocketDir(dir string, owner *pg.OSUser) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return pg.Chown(dir, owner)
}

// OpenLog opens the log file for appending (created 0600, owned by owner)
// and returns where this start's lines begin.
func OpenLog(path string, owner *pg.OSUser) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, 0, err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	if errors.Is(statErr, os.ErrNotExist) && owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, off, nil
}

// LogTail quotes the last lines the server wrote to its log since offset:
// Postgres's own reason for failing.
func LogTail(path string, offset int64) string {
	const maxRead = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("log %s unreadable: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("log %s unreadable: %v", path, err)
	}
	if offset > fi.Size() { // truncated or replaced since
		offset = 0
	}
	if fi.Size()-offset > maxRead {
		offset = fi.Size() - maxRead
	}
	buf := make([]byte, fi.Size()-offset)
	n, _ := f.ReadAt(buf, offset)
	text := strings.TrimSpace(string(buf[:n]))
	if text == "" {
		return "the log " + path + " says nothing"
	}
	return "last lines of " + path + ":\n" + pg.LastLines(text, logTailLines)
}

// Validate checks a Spec before anything is done with it.
func Validate(s runtime.Spec) error {
	switch {
	case s.Install.BinDir == "":
		return errors.New("spec has no Postgres install")
	case s.DataDir == "":
		return errors.New("spec has no data directory")
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("port %d out of range 1-65535", s.Port)
	case s.LogFile == "":
		return errors.New("spec has no log file")
	}
	if s.SocketDir != "" {
		if !filepath.IsAbs(s.SocketDir) {
			return fmt.Errorf("socket directory %q is not an absolute path", s.SocketDir)
		}
		if p := pg.SocketPath(s.SocketDir, s.Port); len(p) > 107 {
			return fmt.Errorf("socket path %s is longer than the 107 bytes Linux allows; use a shorter socket directory", p)
		}
	}
	return nil
}

// CanonicalDir returns dir absolute with symlinks resolved, as the kernel
// reports a process's current directory.
func CanonicalDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// Prepare readies a server's own files for a start while no server runs on
// its data directory: the socket directory made, the socket and lock file a
// SIGKILL or a reboot left there removed (Postgres refuses to start while the
// lock names a live PID, and after a reboot that PID may be anyone's), and
// the log opened for append; logStart is where this start's lines begin.
func Prepare(s runtime.Spec) (logf *os.File, logStart int64, err error) {
	if s.SocketDir != "" {
		if err := EnsureSocketDir(s.SocketDir, s.RunAs); err != nil {
			return nil, 0, fmt.Errorf("%w: socket directory: %v", runtime.ErrStartFailed, err)
		}
		if err := ClearStaleSockets(s.SocketDir); err != nil {
			return nil, 0, fmt.Errorf("%w: socket directory: %v", runtime.ErrStartFailed, err)
		}
	}
	logf, logStart, err = OpenLog(s.LogFile, s.RunAs)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: log file: %v", runtime.ErrStartFailed, err)
	}
	return logf, logStart, nil
}
