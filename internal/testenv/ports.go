package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Test packages run as separate processes at once (go test -p), so a
// port one of them picks for a server it starts (an e2e source, an S3
// server) must be reserved across them, not only in its own memory:
// ReservePort takes an flock on a file named after the port, and keeps it
// until the process exits. An flock held by another open of the same file
// fails too, so two tests of one process cannot take the same port either.
var (
	reservedMu sync.Mutex
	reserved   []*os.File // kept open: closing one would release its lock
)

// portsDir holds the lock files, one per reserved port.
var portsDir = filepath.Join(os.TempDir(), "velo-e2e-ports")

// ReservePort reports whether port p is now this process's (false when
// another test process, or another test of this one, holds it).
func ReservePort(p int) bool {
	if err := os.MkdirAll(portsDir, 0o755); err != nil {
		return false
	}
	f, err := os.OpenFile(filepath.Join(portsDir, strconv.Itoa(p)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reservedMu.Lock()
	reserved = append(reserved, f)
	reservedMu.Unlock()
	return true
}
