package harness

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/testenv"
)

type ListedBranch struct {
	Name, State, Volume, Parent string
	Port                        int
}

func (e *Env) BranchList() []ListedBranch {
	e.T.Helper()
	var bs []ListedBranch
	r := e.OK("branch", "list", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &bs); err != nil {
		e.T.Fatalf("branch list --json: %v\n%s", err, r.Stdout)
	}
	return bs
}

// serversUnder lists the postmasters whose data directory names dir.
func ServersUnder(dir string) []string {
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 3 || !strings.HasSuffix(args[0], "postgres") {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-D" && strings.Contains(args[i+1], dir) {
				out = append(out, p.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// poolFree is what statfs says an unprivileged writer may still use.
func PoolFree(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// waitFreed waits until the pool has at least want bytes more free than
// before (btrfs frees deleted subvolumes in the background: wait for it
// with `btrfs subvolume sync`) and returns the free space.
func WaitFreed(t *testing.T, pool string, btrfs bool, before, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if btrfs {
			if out, err := exec.Command("btrfs", "subvolume", "sync", pool).CombinedOutput(); err != nil {
				t.Fatalf("btrfs subvolume sync: %v\n%s", err, out)
			}
		}
		free := PoolFree(t, pool)
		if free-before >= want {
			return free
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting the full branch the pool has %d MB free (%d MB when full); want %d MB more", free>>20, before>>20, want>>20)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type DoctorJSON struct {
	Findings []struct {
		Section, Subject, Status, Message, Fix string
	} `json:"findings"`
	Operations []struct {
		ID         int64
		Command    string
		PID        int
		StartedAt  time.Time `json:"started_at"`
		InProgress bool      `json:"in_progress"`
		Steps      []struct{ Action, Subject string }
	} `json:"unfinished_operations"`
	Failed   int `json:"failed"`
	Warnings int `json:"warnings"`
}

// assertDoctorHealthy runs velo doctor and expects exit 0 and nothing alarming.
func (e *Env) AssertDoctorHealthy() {
	e.T.Helper()
	r := e.Run("doctor")
	if r.Code != 0 || !strings.Contains(r.Stdout, "\nNo problems found.\n") {
		e.T.Fatalf("doctor on a healthy home: %s", r)
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(line, "  ✗") || strings.HasPrefix(line, "  !") {
			e.T.Errorf("doctor on a healthy home says: %s\n%s", line, r.Stdout)
		}
	}
}

type DoctorBranchJSON struct {
	Name, State, Volume string
	PID                 int
}

func (e *Env) DoctorBranch(ref string) DoctorBranchJSON {
	e.T.Helper()
	var b DoctorBranchJSON
	r := e.OK("branch", "get", ref, "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &b); err != nil {
		e.T.Fatalf("branch get --json: %v\n%s", err, r.Stdout)
	}
	return b
}

func (e *Env) PoolDriver() storage.Driver {
	e.T.Helper()
	d, err := drivers.Open(context.Background(), e.Storage, e.Pool)
	if err != nil {
		e.T.Fatal(err)
	}
	return d
}

func (e *Env) PoolEntries() []storage.Entry {
	e.T.Helper()
	en, err := e.PoolDriver().List(context.Background())
	if err != nil {
		e.T.Fatal(err)
	}
	sort.Slice(en, func(i, j int) bool { return en[i].ID < en[j].ID })
	return en
}

func (e *Env) StateDB() *sql.DB {
	e.T.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.Home, "state.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		e.T.Fatal(err)
	}
	return db
}

// processAlive reports whether a process runs (and is not a zombie).
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func Volumes(pool string) map[string]bool {
	out := map[string]bool{}
	names, _ := filepath.Glob(filepath.Join(pool, "velo", "*", "*"))
	for _, n := range names {
		out[n] = true
	}
	return out
}

// commitTimes inserts v = 1..n into pitr.t, one commit at a time, and
// returns for each k a moment after commit k and before commit k+1.
func CommitTimes(e *Env, ref string, from, n int) []time.Time {
	var at []time.Time
	for k := from; k < from+n; k++ {
		e.Psql(ref, fmt.Sprintf("INSERT INTO t VALUES (%d)", k))
		after, err := time.Parse("2006-01-02 15:04:05.999999-07", e.Psql(ref, "SELECT clock_timestamp()"))
		if err != nil {
			e.T.Fatal(err)
		}
		at = append(at, after.Add(100*time.Millisecond))
		time.Sleep(250 * time.Millisecond)
	}
	return at
}

var DriverNames = []string{"copy", "reflink", "btrfs", "zfs"}

// assertNoLeaks checks that the pool holds exactly what the records name:
// one volume per branch, the snapshots velo lists (each made for a branch
// still having a clone of it), and WAL archives of live volumes only.
func (e *Env) AssertNoLeaks() {
	e.T.Helper()
	var bs []struct{ Name, Volume, Parent string }
	if err := json.Unmarshal([]byte(e.OK("branch", "list", "--json").Stdout), &bs); err != nil {
		e.T.Fatal(err)
	}
	var snaps []struct {
		ID     string
		User   bool
		Clones []string
		// The oldest snapshot of a branch's volume stays for its
		// point-in-time window.
		PITRBase bool `json:"pitr_base"`
	}
	if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "--json").Stdout), &snaps); err != nil {
		e.T.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range bs {
		want[b.Volume] = true
	}
	wantSnap := map[string]bool{}
	for _, s := range snaps {
		wantSnap[s.ID] = true
		if !s.User && len(s.Clones) == 0 && !s.PITRBase {
			e.T.Errorf("snapshot %s was made for a branch, but no branch comes from it", s.ID)
		}
	}
	d, err := drivers.Open(context.Background(), e.Storage, e.Pool)
	if err != nil {
		e.T.Fatal(err)
	}
	entries, err := d.List(context.Background())
	if err != nil {
		e.T.Fatal(err)
	}
	for _, en := range entries {
		switch en.Kind {
		case storage.KindVolume:
			if !want[en.ID] {
				e.T.Errorf("volume %s in the pool belongs to no branch", en.ID)
			}
			delete(want, en.ID)
		case storage.KindSnapshot:
			if !wantSnap[en.ID] {
				e.T.Errorf("snapshot %s in the pool has no record", en.ID)
			}
			delete(wantSnap, en.ID)
		}
	}
	for v := range want {
		e.T.Errorf("branch volume %s missing from the pool", v)
	}
	for s := range wantSnap {
		e.T.Errorf("snapshot %s listed but missing from the pool", s)
	}
	// Every WAL archive belongs to a volume still in the pool.
	inPool := map[string]bool{}
	for _, en := range entries {
		inPool[en.ID] = true
	}
	archives, _ := os.ReadDir(filepath.Join(e.Home, "wal"))
	for _, a := range archives {
		if !inPool[a.Name()] {
			e.T.Errorf("WAL archive %s outlived its volume", a.Name())
		}
	}
}

// PgbenchPath finds pgbench beside the Postgres 15 binaries or in VELO_PG_BIN.
func PgbenchPath(t *testing.T) string {
	dirs := append([]string{"/usr/lib/postgresql/15/bin"}, filepath.SplitList(os.Getenv("VELO_PG_BIN"))...)
	for _, d := range dirs {
		p := filepath.Join(d, "pgbench")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return testenv.RequireCommand(t, "pgbench")
}

// Pgbench runs the pgbench at bin with args on the branch c names.
func (e *Env) Pgbench(bin string, c ConnInfo, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := NetnsCommand(ctx, e.Netns, bin, append(args, "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", "postgres")...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// branchPort is the port of a branch's server.
// BranchPort is the port branch get --json gives ref.
func (e *Env) BranchPort(ref string) int {
	e.T.Helper()
	var b struct{ Port int }
	if err := json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b); err != nil {
		e.T.Fatal(err)
	}
	return b.Port
}
