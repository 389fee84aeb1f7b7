package core

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestNewPassword: branch create --new-password gives the branch a
// superuser password of its own, and main's is never taken on its port,
// not even while the branch starts (a client tries main's password on the
// new server's port from the moment its configuration exists); a reset
// keeps the branch's password; without the flag a branch has main's.
func TestNewPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "btrfs")
	e.Create("np")
	e.Psql("np/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	mainPW, mainPort := e.Conn("np/main").Password, e.Conn("np/main").Port

	stop := make(chan struct{})
	var tries, answered, admitted atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		known := harness.Volumes(e.Pool)
		port := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			if port == 0 || port == mainPort {
				// The clone holds main's velo.conf until Velo writes its own.
				port = newServerPort(e.Pool, known)
				continue
			}
			tries.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := pg.Connect(ctx, port, mainPW)
			cancel()
			if err == nil {
				admitted.Add(1)
				c.Close(context.Background())
			} else if pg.SQLState(err) != "" {
				answered.Add(1)
			}
		}
	}()
	e.OK("branch", "create", "np/own", "--new-password")
	time.Sleep(200 * time.Millisecond) // a few tries on the finished branch too
	close(stop)
	wg.Wait()
	t.Logf("main's password tried %d times on np/own's port while it was made: %d refused by the server, %d admitted", tries.Load(), answered.Load(), admitted.Load())
	if admitted.Load() != 0 || answered.Load() == 0 {
		t.Errorf("main's password on np/own: %d admitted, %d refused; want none admitted, some refused", admitted.Load(), answered.Load())
	}
	own := e.Conn("np/own").Password
	if own == mainPW || len(own) < 24 {
		t.Fatalf("np/own's password is main's, or short")
	}
	if got := e.Rows("np/own", "SELECT v FROM t"); got != "1" {
		t.Errorf("np/own holds %s", got)
	}

	e.OK("branch", "reset", "np/own")
	if e.Conn("np/own").Password != own || e.Rows("np/own", "SELECT v FROM t") != "1" {
		t.Errorf("a reset did not keep np/own's password")
	}
	if _, err := pg.Connect(context.Background(), e.Conn("np/own").Port, mainPW); err == nil {
		t.Errorf("main's password works on np/own after the reset")
	}
	e.OK("branch", "create", "np/same")
	if e.Conn("np/same").Password != mainPW {
		t.Errorf("without --new-password a branch should have its parent's password")
	}
	e.OK("branch", "create", "np/then", "--pitr", "0s ago", "--new-password")
	if p := e.Conn("np/then").Password; p == mainPW || e.Rows("np/then", "SELECT v FROM t") != "1" {
		t.Errorf("--pitr --new-password: a password of its own and main's rows expected")
	}
	e.AssertDoctorHealthy()
}

var portLine = regexp.MustCompile(`(?m)^port = '?(\d+)'?`)

// newServerPort is the port in velo.conf of a volume not in known, once
// one is configured; 0 before.
func newServerPort(pool string, known map[string]bool) int {
	names, _ := filepath.Glob(filepath.Join(pool, "velo", "*", "*", "pgdata", "velo.conf"))
	for _, n := range names {
		vol := filepath.Dir(filepath.Dir(n))
		if known[vol] {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		if m := portLine.FindSubmatch(b); m != nil {
			p, _ := strconv.Atoi(string(m[1]))
			return p
		}
	}
	return 0
}
