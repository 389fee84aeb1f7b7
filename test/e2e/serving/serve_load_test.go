package serving

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// rssKB is the resident memory of process pid in KiB (VmRSS).
func rssKB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(f)[0], 10, 64)
			return n
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// TestServeManyClients: 1,000 clients at once through velo serve, a
// tenth of them slow (half a startup packet, then nothing), some plain and
// some TLS, against a router bounded to 800 sessions and a branch whose
// server takes 100: every client gets a session that answers or a clean
// Postgres error (the router's or the server's "too many", the startup
// deadline), none a dropped socket; all within a bounded time; the
// router's memory stays bounded while they run; and it serves the next
// client normally afterwards.
func TestServeManyClients(t *testing.T) {
	for _, driver := range []string{"btrfs", "zfs"} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.Create("demo")
			e.OK("branch", "create", "demo/dev")
			s := e.runServeOn("127.0.0.1", 0, "--max-connections", "800")
			dev := e.Conn("demo/dev")
			pid := s.cmd.Process.Pid
			// Under the bound, no client is refused: 50 in a row, each
			// without the retry that libpq's sslmode=prefer makes.
			for i := range 50 {
				pc, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/demo/dev?sslmode=disable", dev.Password, s.port))
				if err != nil {
					t.Fatalf("client %d of 50, one at a time: %v", i, err)
				}
				pc.Close(context.Background())
			}
			before := rssKB(t, pid)

			const clients, slow = 1000, 100
			var (
				served, refusedRouter, refusedServer, timedOut atomic.Int64
				mu                                             sync.Mutex
				other                                          []string
				peak                                           atomic.Int64
			)
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				if len(other) < 10 {
					other = append(other, fmt.Sprintf(format, args...))
				}
			}
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
						if r := rssKB(t, pid); r > peak.Load() {
							peak.Store(r)
						}
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i < slow {
						// Half a startup packet, then silence: the router's
						// startup deadline answers with an error.
						c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
						if err != nil {
							fail("slow client dial: %v", err)
							return
						}
						defer c.Close()
						_, _ = c.Write(binary.BigEndian.AppendUint32(nil, 64))
						_ = c.SetReadDeadline(time.Now().Add(time.Minute))
						buf := make([]byte, 256)
						n, _ := c.Read(buf)
						if n > 0 && buf[0] == 'E' && (strings.Contains(string(buf[:n]), "invalid startup packet") || strings.Contains(string(buf[:n]), "too many")) {
							timedOut.Add(1)
						} else {
							fail("slow client: got %q", buf[:n])
						}
						return
					}
					mode := "disable"
					if i%3 == 0 {
						mode = "require"
					}
					cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/demo/dev?sslmode=%s&connect_timeout=120", dev.Password, s.port, mode))
					if err != nil {
						fail("%v", err)
						return
					}
					pc, err := pgx.ConnectConfig(ctx, cfg)
					var pe *pgconn.PgError
					switch {
					case errors.As(err, &pe) && pe.Code == "53300" && strings.Contains(pe.Message, "velo serve"):
						refusedRouter.Add(1)
					case errors.As(err, &pe) && pe.Code == "53300":
						refusedServer.Add(1)
					case err != nil:
						fail("client %d (sslmode=%s): %v", i, mode, err)
					default:
						var one int
						if err := pc.QueryRow(ctx, "SELECT 1 FROM pg_sleep(0.5)").Scan(&one); err != nil || one != 1 {
							fail("client %d query: %d, %v", i, one, err)
						} else {
							served.Add(1)
						}
						pc.Close(ctx)
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			close(stop)
			t.Logf("%d clients in %s: %d served, %d refused by the router, %d by the server, %d slow ones told off; router RSS %d KiB before, %d KiB at most",
				clients, took.Round(time.Millisecond), served.Load(), refusedRouter.Load(), refusedServer.Load(), timedOut.Load(), before, peak.Load())
			for _, o := range other {
				t.Error(o)
			}
			if got := served.Load() + refusedRouter.Load() + refusedServer.Load() + timedOut.Load(); got != clients {
				t.Errorf("%d of %d clients got a session or a clean error", got, clients)
			}
			if served.Load() == 0 || timedOut.Load() != slow {
				t.Errorf("served %d, slow ones answered %d of %d", served.Load(), timedOut.Load(), slow)
			}
			if took > 2*time.Minute {
				t.Errorf("1,000 clients took %s", took)
			}
			// Bounded: at most 100 KiB a client (seen: 37-40 MB for the
			// 1,000, a third of them with TLS).
			if peak.Load()-before > 100*clients {
				t.Errorf("router RSS grew from %d to %d KiB: over 100 KiB a client", before, peak.Load())
			}
			// And the next client is served as ever.
			after := time.Now()
			for {
				out, err := psqlVia(fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/demo/dev", s.port), dev.Password, "SELECT 2")
				if err == nil && out == "2" {
					break
				}
				if time.Since(after) > 30*time.Second {
					t.Fatalf("after the load: %q, %v", out, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("the next client was served %s after the last", time.Since(after).Round(time.Millisecond))
		})
	}
}
