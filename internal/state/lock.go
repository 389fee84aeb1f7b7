package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/velohq/velo/internal/errdefs"
)

// ErrLocked is returned when another velo holds the lock past the wait.
var ErrLocked = errors.New("locked")

// Lock is the one exclusive lock a changing command holds for its whole run.
type Lock struct {
	fl   *flock.Flock
	info string
}

// Holder says who holds the lock.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// Acquire takes $home/velo.lock, waiting up to wait for another velo to
// finish; onWait is called once if it has to wait. The error names the
// holder and how to clear a stale lock.
func Acquire(ctx context.Context, home, command string, wait time.Duration, onWait func(Holder)) (*Lock, error) {
	path := filepath.Join(home, "velo.lock")
	fl := flock.New(path)
	deadline := time.Now().Add(wait)
	waited := false
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			break
		}
		h := readHolder(path + ".holder")
		if !waited && onWait != nil {
			onWait(h)
			waited = true
		}
		if time.Now().After(deadline) {
			return nil, errdefs.Mark(ErrLocked, fmt.Errorf("another velo (pid %d, %q) has held %s since %s; wait for it to finish (a lock is released when its process exits, so a stale one cannot stay)",
				h.PID, h.Command, path, h.Since.Local().Format(time.DateTime)))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	info := path + ".holder"
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Command: command, Since: time.Now()})
	_ = os.WriteFile(info, b, 0o600)
	return &Lock{fl: fl, info: info}, nil
}

func readHolder(path string) Holder {
	var h Holder
	b, err := os.ReadFile(path)
	if err == nil {
		_ = json.Unmarshal(b, &h)
	}
	if h.Command == "" {
		h.Command = "unknown"
	}
	h.Command = strings.TrimSpace(h.Command)
	return h
}

// Release drops the lock.
func (l *Lock) Release() error {
	_ = os.Remove(l.info)
	return l.fl.Unlock()
}
