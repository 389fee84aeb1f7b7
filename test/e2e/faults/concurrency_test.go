package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/test/e2e/harness"
)

// TestConcurrency starts many velo processes at once, as several users or
// scripts would: every one succeeds or fails cleanly, the lock serializes
// the changes, reads do not wait for it, and afterwards state and storage
// agree and every branch answers with its parent's rows.
func TestConcurrency(t *testing.T) {
	e := newEnv(t, "btrfs")
	t.Run("TwentyCreates", func(t *testing.T) { e.T = t; testTwentyCreates(e) })
	t.Run("ReadsWhileLocked", func(t *testing.T) { e.T = t; testReadsWhileLocked(e) })
	t.Run("Mixed", func(t *testing.T) { e.T = t; testMixedCommands(e) })
	t.Run("FreshHome", func(t *testing.T) { e.T = t; testConcurrentFreshHome(e) })
	e.T = t
}

// runAtOnce starts one velo process per command, all released together,
// and returns their results in order.
func (e *env) runAtOnce(cmds [][]string) []harness.Result {
	e.T.Helper()
	out := make([]harness.Result, len(cmds))
	errs := make([]error, len(cmds))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = e.RunErr(c...)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.T.Fatalf("velo %s: %v", strings.Join(cmds[i], " "), err)
		}
	}
	return out
}

// assertClean checks that a velo run ended cleanly: an exit code among
// codes, no Go panic or trace, and a failure states its reason on stderr.
func (e *env) assertClean(r harness.Result, args []string, codes ...int) {
	e.T.Helper()
	cmd := "velo " + strings.Join(args, " ")
	ok := false
	for _, c := range codes {
		ok = ok || r.Code == c
	}
	if !ok {
		e.T.Errorf("%s: want exit code in %v, got %s", cmd, codes, r)
	}
	for _, bad := range []string{"panic:", "goroutine ", "SIGSEGV", "database is locked"} {
		if strings.Contains(r.Stderr, bad) {
			e.T.Errorf("%s: stderr shows %q:\n%s", cmd, bad, r)
		}
	}
	if r.Code != 0 && !strings.Contains(r.Stderr, "velo: ") {
		e.T.Errorf("%s failed without saying why: %s", cmd, r)
	}
}

// assertPortsUnique checks that no two branches share a port.
func (e *env) assertPortsUnique() {
	e.T.Helper()
	seen := map[int]string{}
	for _, b := range e.BranchList() {
		if b.Port == 0 {
			e.T.Errorf("%s has no port", b.Name)
		}
		if o, dup := seen[b.Port]; dup {
			e.T.Errorf("%s and %s share port %d", o, b.Name, b.Port)
		}
		seen[b.Port] = b.Name
	}
}

func testTwentyCreates(e *env) {
	t := e.T
	e.Create("c")
	e.Psql("c/main", `CREATE TABLE t (v text); INSERT INTO t VALUES ('c-1'), ('c-2'), ('c-3')`)
	var cmds [][]string
	for i := range 20 {
		cmds = append(cmds, []string{"branch", "create", fmt.Sprintf("c/b%02d", i)})
	}
	for i, r := range e.runAtOnce(cmds) {
		e.assertClean(r, cmds[i], 0)
	}
	bs := e.BranchList()
	if len(bs) != 21 {
		t.Errorf("%d branches after 20 creates, want 21 with main", len(bs))
	}
	for _, b := range bs {
		if b.State != "running" {
			t.Errorf("%s is %s", b.Name, b.State)
		}
	}
	e.assertPortsUnique()
	for i := range 20 {
		ref := fmt.Sprintf("c/b%02d", i)
		if got := e.Rows(ref, "SELECT v FROM t ORDER BY v"); got != "c-1,c-2,c-3" {
			t.Errorf("%s = %s, want main's rows", ref, got)
		}
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
}

// testReadsWhileLocked holds the lock as a long command would: every read
// command still answers, and a changing command waits, says whom it waits
// for, and goes on once the lock is free.
func testReadsWhileLocked(e *env) {
	t := e.T
	lock, err := state.Acquire(context.Background(), e.Home, "velo test holds the lock", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			lock.Release()
		}
	}()
	reads := [][]string{
		{"status", "--json"},
		{"status"},
		{"branch", "list", "--json"},
		{"branch", "get", "c/main", "--json"},
		{"branch", "password", "c/b00"},
		{"project", "list", "--json"},
		{"project", "get", "c"},
		{"snapshot", "list", "--json"},
		{"wal", "info", "c/main", "--json"},
		{"doctor", "--json"},
	}
	for _, args := range reads {
		r := e.Run(args...)
		e.assertClean(r, args, 0)
		if strings.HasSuffix(args[len(args)-1], "--json") && !json.Valid([]byte(r.Stdout)) {
			t.Errorf("velo %s: not one JSON document:\n%s", strings.Join(args, " "), r.Stdout)
		}
	}
	// A changing command waits for the holder rather than failing...
	type done struct {
		r   harness.Result
		err error
	}
	ch := make(chan done, 1)
	go func() {
		r, err := e.RunErr("branch", "create", "c/waited")
		ch <- done{r, err}
	}()
	select {
	case d := <-ch:
		t.Fatalf("branch create did not wait for the lock: %v %s", d.err, d.r)
	case <-time.After(3 * time.Second):
	}
	// ...and goes on once it is released.
	lock.Release()
	released = true
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	e.assertClean(d.r, []string{"branch", "create", "c/waited"}, 0)
	if !strings.Contains(d.r.Stderr, fmt.Sprintf("waiting for another velo (pid %d, \"velo test holds the lock\")", os.Getpid())) {
		t.Errorf("a waiting command does not say whom it waits for:\n%s", d.r.Stderr)
	}
	if got := e.Rows("c/waited", "SELECT v FROM t ORDER BY v"); got != "c-1,c-2,c-3" {
		t.Errorf("c/waited = %s", got)
	}
}

// testMixedCommands runs ten different commands over three projects at
// once, some of which conflict: each succeeds or is refused with its
// reason, and the result is one of the orders the lock allows.
func testMixedCommands(e *env) {
	t := e.T
	for _, p := range []string{"m1", "m2", "m3"} {
		e.Create(p)
		e.Psql(p+"/main", fmt.Sprintf(`CREATE TABLE t (v text); INSERT INTO t VALUES ('%s-1'), ('%s-2')`, p, p))
	}
	e.OK("branch", "create", "m1/dev")
	e.OK("branch", "create", "m1/idle")
	e.OK("branch", "stop", "m1/idle")
	e.OK("branch", "create", "m2/old")
	e.OK("branch", "create", "m3/dev")
	cmds := [][]string{
		{"branch", "create", "m1/new", "--parent", "m1/dev"},
		{"branch", "stop", "m1/dev"},
		{"branch", "start", "m1/idle"},
		{"snapshot", "create", "m1/main", "--label", "during-storm"},
		{"branch", "delete", "m2/old"},
		{"branch", "create", "m2/dup"},
		{"branch", "create", "m2/dup"},
		{"branch", "reset", "m3/dev"},
		{"branch", "create", "m3/feat", "--parent", "m3/dev"},
		{"status", "--json"},
	}
	rs := e.runAtOnce(cmds)
	for i, r := range rs {
		switch i {
		case 5, 6:
			e.assertClean(r, cmds[i], 0, 2)
		case 7:
			// Refused when m3/feat was made first: m3/dev then has a descendant.
			e.assertClean(r, cmds[i], 0, 2)
			if r.Code == 2 && !(strings.Contains(r.Stderr, "m3/feat") && strings.Contains(r.Stderr, "--force")) {
				t.Errorf("reset refused without naming the descendant and the fix:\n%s", r)
			}
		default:
			e.assertClean(r, cmds[i], 0)
		}
	}
	if a, b := rs[5].Code, rs[6].Code; a+b != 2 {
		t.Errorf("two creates of m2/dup: exit codes %d and %d, want one 0 and one 2", a, b)
	} else {
		refused := rs[5]
		if a == 0 {
			refused = rs[6]
		}
		if !strings.Contains(refused.Stderr, "already exists") {
			t.Errorf("second create of m2/dup does not say it exists:\n%s", refused)
		}
	}
	var rep struct{ Projects []struct{ Name string } }
	if err := json.Unmarshal([]byte(rs[9].Stdout), &rep); err != nil || len(rep.Projects) < 3 {
		t.Errorf("status --json during the storm: %v\n%s", err, rs[9].Stdout)
	}

	states := map[string]string{}
	for _, b := range e.BranchList() {
		states[b.Name] = b.State
	}
	for name, want := range map[string]string{"m1/dev": "stopped", "m1/idle": "running", "m1/new": "running", "m2/dup": "running", "m3/dev": "running", "m3/feat": "running", "m2/old": ""} {
		if states[name] != want {
			t.Errorf("%s is %q, want %q", name, states[name], want)
		}
	}
	e.assertPortsUnique()
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
	e.OK("branch", "start", "m1/dev")
	for name := range states {
		p, _, _ := strings.Cut(name, "/")
		if !strings.HasPrefix(p, "m") {
			continue
		}
		want := p + "-1," + p + "-2"
		if got := e.Rows(name, "SELECT v FROM t ORDER BY v"); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	var snaps []struct {
		Label string
		User  bool
	}
	_ = json.Unmarshal([]byte(e.OK("snapshot", "list", "m1/main", "--json").Stdout), &snaps)
	labelled := 0
	for _, s := range snaps {
		if s.User && s.Label == "during-storm" {
			labelled++
		}
	}
	if labelled != 1 {
		t.Errorf("snapshots of m1/main = %+v, want one labelled during-storm", snaps)
	}
}

// testConcurrentFreshHome starts the first commands of a new VELO_HOME at
// once: the state database is created once, whoever comes first.
func testConcurrentFreshHome(e *env) {
	t := e.T
	f := &env{&harness.Env{T: t, Storage: e.Storage, Home: harness.TmpDir(t, "velo-home-"), Pool: filepath.Join(e.Pool, "fresh")}}
	if err := os.Mkdir(f.Pool, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Teardown)
	cmds := [][]string{
		{"project", "create", "f1", "--pool", f.Pool},
		{"project", "create", "f2", "--pool", f.Pool},
		{"project", "create", "f3", "--pool", f.Pool},
		{"status", "--json"},
		{"project", "list", "--json"},
	}
	for i, r := range f.runAtOnce(cmds) {
		f.assertClean(r, cmds[i], 0)
	}
	for _, p := range []string{"f1", "f2", "f3"} {
		if got := f.Psql(p+"/main", "SELECT 1"); got != "1" {
			t.Errorf("%s/main answers %q", p, got)
		}
	}
	f.assertPortsUnique()
	f.AssertDoctorHealthy()
	f.AssertNoLeaks()
}
