package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var portRE = regexp.MustCompile(`@localhost:(\d+)/`)

// BenchmarkBranchCreate measures `velo branch create` from the command's
// start until the new branch answers a query, on a pgbench database of
// VELO_BENCH_SCALE (default 68, about 1 GB), per driver. It reports the
// median, minimum and maximum; run with -benchtime 7x or so:
//
//	go test -run '^$' -bench BranchCreate -benchtime 7x ./test/e2e/install
func BenchmarkBranchCreate(b *testing.B) {
	scale := 68
	if s := os.Getenv("VELO_BENCH_SCALE"); s != "" {
		scale, _ = strconv.Atoi(s)
	}
	for _, d := range []string{"btrfs", "zfs", "reflink"} {
		b.Run(d, func(b *testing.B) {
			e := newEnv(b, d)
			e.Create("bench")
			c := e.Conn("bench/main")
			pgbench := exec.Command("/usr/lib/postgresql/15/bin/pgbench", "-i", "-q", "-s", strconv.Itoa(scale), "-h", "localhost", "-p", strconv.Itoa(c.Port), "-U", "postgres", "postgres")
			pgbench.Env = append(os.Environ(), "PGPASSWORD="+c.Password)
			if out, err := pgbench.CombinedOutput(); err != nil {
				b.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			size := e.Psql("bench/main", "SELECT pg_size_pretty(pg_database_size('postgres'))")
			var times []time.Duration
			i := 0
			for b.Loop() {
				name := fmt.Sprintf("bench/b%d", i)
				i++
				start := time.Now()
				out := e.OK("branch", "create", name).Stdout
				// A branch has its parent's password; its port is in the URL printed.
				m := portRE.FindStringSubmatch(out)
				if m == nil {
					b.Fatalf("no URL in %q", out)
				}
				conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%s/postgres", c.Password, m[1]))
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pgbench_branches").Scan(&n); err != nil || n != int64(scale) {
					b.Fatalf("branch answered %d, %v", n, err)
				}
				times = append(times, time.Since(start))
				conn.Close(context.Background())
				b.StopTimer()
				e.OK("branch", "delete", name)
				b.StartTimer()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
			b.ReportMetric(float64(times[0].Milliseconds()), "min-ms")
			b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
			b.Logf("%s, database %s: branch create to first query, %d runs: median %v, min %v, max %v", d, size, len(times), times[len(times)/2], times[0], times[len(times)-1])
		})
	}
}

// BenchmarkPITR measures `velo branch create --pitr` until the recovered
// branch answers, as a function of the WAL written since the snapshot it
// starts from (VELO_BENCH_WAL_MB, default "100,1000"), on btrfs.
//
//	go test -run '^$' -bench PITR -benchtime 3x ./test/e2e/install
func BenchmarkPITR(b *testing.B) {
	sizes := []int{100, 1000}
	if s := os.Getenv("VELO_BENCH_WAL_MB"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	for _, mb := range sizes {
		b.Run(fmt.Sprintf("wal-%dMB", mb), func(b *testing.B) {
			e := newEnv(b, "btrfs")
			e.Create("bench")
			e.Psql("bench/main", "CREATE TABLE t (id bigint, pad text)")
			e.OK("snapshot", "create", "bench/main")
			start := e.Psql("bench/main", "SELECT pg_current_wal_lsn()")
			// About 160 bytes of WAL a row.
			rows := mb * 1024 * 1024 / 160
			for done := 0; done < rows; done += 500000 {
				e.Psql("bench/main", fmt.Sprintf("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, %d) g", min(500000, rows-done)))
			}
			walMB := e.Psql("bench/main", fmt.Sprintf("SELECT (pg_current_wal_lsn() - '%s') / 1048576", start))
			target := time.Now().UTC().Format(time.RFC3339Nano)
			want := e.Psql("bench/main", "SELECT count(*) FROM t")
			var times []time.Duration
			i := 0
			for b.Loop() {
				name := fmt.Sprintf("bench/p%d", i)
				i++
				t0 := time.Now()
				e.OK("branch", "create", name, "--pitr", target)
				times = append(times, time.Since(t0))
				b.StopTimer()
				if got := e.Psql(name, "SELECT count(*) FROM t"); got != want {
					b.Fatalf("recovered %s rows, want %s", got, want)
				}
				e.OK("branch", "delete", name)
				b.StartTimer()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
			b.Logf("PITR over %s MB of WAL: %d runs, median %v, min %v, max %v", walMB, len(times), times[len(times)/2], times[0], times[len(times)-1])
		})
	}
}
