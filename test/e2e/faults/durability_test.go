package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/test/e2e/harness"
)

// TestServerKilledUnderLoad kills a branch's server with SIGKILL while
// clients write to it, first the postmaster alone, then every process of
// the server at once (as the OOM killer or a crashed host would): each time
// `velo branch start` brings it back on the same port, every transaction
// whose COMMIT was acknowledged is there, and pgbench's own tables balance.
func TestServerKilledUnderLoad(t *testing.T) {
	pgbench := harness.PgbenchPath(t)
	e := newEnv(t, "btrfs")
	e.Create("dur", "--pg-version", "15")
	e.Psql("dur/main", "CREATE TABLE keep (v int); INSERT INTO keep VALUES (1), (2)")
	e.OK("branch", "create", "dur/load")
	e.Psql("dur/load", "CREATE TABLE acked (id bigint PRIMARY KEY, writer int NOT NULL)")
	c := e.Conn("dur/load")
	if out, err := e.Pgbench(pgbench, c, "-i", "-q", "-s", "1"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	var next atomic.Int64
	var acked []int64
	kills := []struct {
		name string
		kill func(b harness.DoctorBranchJSON)
	}{
		{"postmaster", func(b harness.DoctorBranchJSON) { harness.SignalServers(t, syscall.SIGKILL, b.Volume) }},
		{"every process", func(b harness.DoctorBranchJSON) {
			// Postgres puts each child in a process group of its own, so
			// they are found by parent.
			pids := append(childrenOf(b.PID), b.PID)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Logf("SIGKILL to server %d and its %d children", b.PID, len(pids)-1)
		}},
	}
	for _, k := range kills {
		before := e.DoctorBranch("dur/load")
		acked = append(acked, e.writeUntilKilled(pgbench, c, &next, func() { k.kill(before) })...)
		if st := e.DoctorBranch("dur/load").State; st != "stopped" {
			t.Errorf("after SIGKILL of the %s, dur/load is %s, want stopped", k.name, st)
		}
		e.OK("branch", "start", "dur/load")
		after := e.DoctorBranch("dur/load")
		if after.State != "running" || after.PID == before.PID {
			t.Errorf("after branch start: %+v, want running with a new server", after)
		}
		if now := e.Conn("dur/load"); now.Port != c.Port || now.Password != c.Password {
			t.Errorf("port or password changed: %d -> %d", c.Port, now.Port)
		}
		var rep struct {
			Projects []struct {
				BranchList []struct {
					Name, State string
					Port        int
				} `json:"branch_list"`
			}
		}
		if err := json.Unmarshal([]byte(e.OK("status", "--json").Stdout), &rep); err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Projects {
			for _, b := range p.BranchList {
				if b.Name == "dur/load" && (b.State != "running" || b.Port != c.Port) {
					t.Errorf("status shows dur/load %s on port %d, want running on %d", b.State, b.Port, c.Port)
				}
			}
		}
		e.assertAcked(acked, next.Load())
		e.assertBenchBalances()
	}
	// The server takes writes again; main was never touched.
	if out, err := e.Pgbench(pgbench, c, "-n", "-t", "20"); err != nil {
		t.Errorf("pgbench after restart: %v\n%s", err, out)
	}
	e.assertBenchBalances()
	if got := e.Rows("dur/main", "SELECT v FROM keep ORDER BY v"); got != "1,2" {
		t.Errorf("main = %s", got)
	}
	e.AssertDoctorHealthy()
}

// writeUntilKilled runs pgbench's TPC-B-like load and four writers of our
// own against the branch at c, calls kill once both have made progress,
// and returns the ids whose COMMIT returned success. Each writer commits
// one row of table acked per transaction, ids from next, and stops at its
// first error (the crash).
func (e *env) writeUntilKilled(pgbench string, c harness.ConnInfo, next *atomic.Int64, kill func()) []int64 {
	t := e.T
	bench := exec.Command(pgbench, "-n", "-c", "4", "-j", "2", "-T", "600", "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", "postgres")
	bench.Env = append(os.Environ(), "PGPASSWORD="+c.Password)
	var benchOut strings.Builder
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	defer bench.Process.Kill() // after Wait, a harmless error
	benchStart := e.benchTransactions(c)

	const writers = 4
	start := next.Load()
	acked := make([][]int64, writers)
	lastErr := make([]error, writers)
	var ackedCount atomic.Int64
	var wg sync.WaitGroup
	url := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", c.Password, c.Port)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			pc, err := pgx.Connect(ctx, url)
			if err != nil {
				lastErr[w] = err
				return
			}
			defer pc.Close(ctx)
			for {
				id := next.Add(1)
				err := pgx.BeginFunc(ctx, pc, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO acked VALUES ($1, $2)", id, w)
					return err
				})
				if err != nil {
					lastErr[w] = err
					return
				}
				acked[w] = append(acked[w], id)
				ackedCount.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ackedCount.Load() < 1000 || e.benchTransactions(c)-benchStart < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress under load: %d acknowledged commits, %d pgbench transactions\n%s", ackedCount.Load(), e.benchTransactions(c)-benchStart, benchOut.String())
		}
		select {
		case err := <-benchDone:
			t.Fatalf("pgbench ended before the crash: %v\n%s", err, benchOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	kill()
	wg.Wait()
	select {
	case err := <-benchDone:
		t.Logf("pgbench after the crash: %v\n%s", err, lastLines(benchOut.String(), 3))
	case <-time.After(time.Minute):
		t.Fatalf("pgbench still runs a minute after its server was killed")
	}
	var all []int64
	for w := range writers {
		all = append(all, acked[w]...)
		if lastErr[w] == nil {
			t.Errorf("writer %d stopped without an error", w)
		}
	}
	t.Logf("killed after %d acknowledged commits (%d ids issued); first writer error: %v", len(all), next.Load()-start, lastErr[0])
	return all
}

// assertAcked checks that every acknowledged id is in table acked, and
// that every row there was written (ids 1..issued).
func (e *env) assertAcked(acked []int64, issued int64) {
	t := e.T
	t.Helper()
	present := map[int64]bool{}
	for _, s := range strings.Fields(e.Psql("dur/load", "SELECT id FROM acked")) {
		var id int64
		fmt.Sscan(s, &id)
		present[id] = true
	}
	var lost []int64
	for _, id := range acked {
		if !present[id] {
			lost = append(lost, id)
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
	if len(lost) > 0 {
		t.Errorf("%d acknowledged commits lost, e.g. %v", len(lost), lost[:min(len(lost), 10)])
	}
	for id := range present {
		if id < 1 || id > issued {
			t.Errorf("row %d was never written", id)
		}
	}
	t.Logf("after restart: %d rows, %d acknowledged, %d commits in doubt were kept", len(present), len(acked), len(present)-len(acked))
}

// assertBenchBalances checks TPC-B's invariant on the branch: every
// transaction moved one delta into an account, a teller and a branch and
// logged it in the history, or did none of it.
func (e *env) assertBenchBalances() {
	t := e.T
	t.Helper()
	sums := e.Psql("dur/load", `SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' ||
		(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' ||
		(SELECT sum(bbalance) FROM pgbench_branches) || ' ' ||
		(SELECT coalesce(sum(delta), 0) FROM pgbench_history) || ' ' ||
		(SELECT count(*) FROM pgbench_history)`)
	f := strings.Fields(sums)
	if len(f) != 5 || f[0] != f[1] || f[1] != f[2] || f[2] != f[3] || f[4] == "0" {
		t.Errorf("pgbench tables do not balance (sums of accounts, tellers, branches, history; history rows): %s", sums)
	}
	t.Logf("pgbench sums and history rows: %s", sums)
}

// benchTransactions counts pgbench's committed transactions (its history
// rows), 0 if it cannot tell.
func (e *env) benchTransactions(c harness.ConnInfo) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", c.Password, c.Port))
	if err != nil {
		return 0
	}
	defer pc.Close(ctx)
	var n int
	_ = pc.QueryRow(ctx, "SELECT count(*) FROM pgbench_history").Scan(&n)
	return n
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ")".
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid, child int
		if _, err := fmt.Sscan(string(b[i+1:]), &state, &ppid); err != nil || ppid != pid {
			continue
		}
		fmt.Sscan(filepath.Base(filepath.Dir(p)), &child)
		out = append(out, child)
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
