package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/test/e2e/harness"
)

// crashDrivers are the storages the crash test runs on: every command on
// btrfs, and all but PITR and project delete on zfs (the atomic drivers);
// on copy, the slowest, snapshot create and branch create, which snapshot
// a running server through the backup protocol, as the non-atomic drivers
// do.
var crashDrivers = []string{"btrfs", "zfs", "copy"}

// TestCrashAtEveryStep kills every multi-step command with SIGKILL at each
// of its journalled steps in turn (VELO_FAULT=step:N for N = 1, 2, ...
// until the command completes, then VELO_FAULT=finish: every step done, the
// journal still open). After each kill: velo doctor reports the
// interrupted command, velo doctor --repair mends it, velo doctor then
// finds nothing, the pool holds exactly what the records name, main's rows
// are intact, and the command works (it is run again when the repair undid
// it). Each kill is logged as a table line: driver, command, step, outcome.
func TestCrashAtEveryStep(t *testing.T) {
	type cell struct{ outcome, repair string }
	rank := map[string]int{} // "command\tstep" → its place in the table
	var mu sync.Mutex
	table := map[string]map[string]cell{} // "command\tstep" → driver → cell
	var order []string
	// The drivers run side by side, each with its own home and pool: much
	// of a run is waiting for servers and filesystems.
	t.Run("drivers", func(t *testing.T) {
		for _, d := range crashDrivers {
			t.Run(d, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, d)
				c := &crashRun{e: e}
				c.outcome = func(command, step, outcome, repair string) {
					mu.Lock()
					defer mu.Unlock()
					key := command + "\t" + step
					if table[key] == nil {
						table[key] = map[string]cell{}
						order = append(order, key)
						// Commands in the order they run, steps in theirs.
						n, _ := strconv.Atoi(strings.Fields(step + " 999")[0])
						if step == "finish" {
							n = 999
						}
						rank[key] = c.index*1000 + n
					}
					table[key][d] = cell{outcome, repair}
				}
				for i, cc := range c.cases() {
					c.index = i
					if cc.drivers != nil && !slices.Contains(cc.drivers, d) {
						if cc.keep {
							c.plain(cc)
						}
						continue
					}
					ok := t.Run(strings.ReplaceAll(cc.name, " ", "_"), func(t *testing.T) {
						e.T = t
						c.every(cc)
					})
					e.T = t
					if !ok {
						t.Fatalf("%s failed: the commands after it need what it leaves", cc.name)
					}
				}
			})
		}
	})
	sort.SliceStable(order, func(i, j int) bool { return rank[order[i]] < rank[order[j]] })
	// The whole table, as docs/reliability.md shows it: the repair as the
	// first driver saw it, with any other driver's where it differs.
	var b strings.Builder
	fmt.Fprintf(&b, "\n| command | killed after | velo doctor --repair did | %s |\n|---|---|---|%s\n",
		strings.Join(crashDrivers, " | "), strings.Repeat("---|", len(crashDrivers)))
	for _, key := range order {
		command, step, _ := strings.Cut(key, "\t")
		var outs, repairs []string
		for _, d := range crashDrivers {
			cl, ok := table[key][d]
			if !ok {
				outs = append(outs, "–")
				continue
			}
			outs = append(outs, cl.outcome)
			if len(repairs) == 0 {
				repairs = append(repairs, cl.repair)
			} else if cl.repair != repairs[0] {
				repairs = append(repairs, d+": "+cl.repair)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", command, step, strings.Join(repairs, "; "), strings.Join(outs, " | "))
	}
	t.Log(b.String())
}

// crashCase is one command to kill at every step.
type crashCase struct {
	name  string // as the table shows it
	args  func() []string
	setup func() // makes what the command needs, once
	// done tells whether the command's change is there; check asserts it
	// in full (the rows a new branch holds...); undo takes it back, so that
	// the command can run again.
	done  func() bool
	check func()
	undo  func()
	// keep leaves the change of the last run in place for the cases after.
	keep bool
	// drivers it is killed on; nil means all. Elsewhere a case that keeps
	// its change is run once, plainly, for the cases after it.
	drivers []string
}

type crashRun struct {
	e *env
	// witness is the branch whose rows must never move, and its rows.
	witness, rows string
	outcome       func(command, step, outcome, repair string)
	index         int // of the case being run, in cases()
}

// plain runs a case's command once, without a fault.
func (c *crashRun) plain(cc crashCase) {
	if cc.setup != nil {
		cc.setup()
	}
	c.e.OK(cc.args()...)
	cc.check()
}

// every runs the command with VELO_FAULT=step:1, step:2, ... until a run
// is not killed (that run must succeed), then with VELO_FAULT=finish.
func (c *crashRun) every(cc crashCase) {
	e := c.e
	if cc.setup != nil {
		cc.setup()
	}
	steps := 0
	for n := 1; ; n++ {
		if n > 40 {
			e.T.Fatalf("%s: still killed at step %d", cc.name, n)
		}
		if !c.crashAt(cc, fmt.Sprintf("step:%d", n), n) {
			steps = n - 1
			break
		}
	}
	if steps == 0 {
		e.T.Fatalf("%s journals no step", cc.name)
	}
	if !c.crashAt(cc, "finish", steps) {
		e.T.Fatalf("%s with VELO_FAULT=finish was not killed", cc.name)
	}
}

// crashAt runs the command with the fault armed. If it was not killed, it
// must have succeeded: false. Otherwise it checks the repair (see
// TestCrashAtEveryStep), reports the outcome and returns true, with things
// as they were before the run unless this is the last run of a case that
// keeps its change.
func (c *crashRun) crashAt(cc crashCase, fault string, n int) bool {
	e := c.e
	e.T.Helper()
	args := cc.args()
	before := c.view()
	r, sig := c.runFault(fault, args...)
	if sig == 0 {
		if r.Code != 0 {
			e.T.Fatalf("velo %s with VELO_FAULT=%s: not killed, and failed: %s", strings.Join(args, " "), fault, r)
		}
		if !cc.done() {
			e.T.Fatalf("velo %s succeeded, but its change is not there", strings.Join(args, " "))
		}
		cc.check()
		cc.undo()
		return false
	}
	if sig != syscall.SIGKILL {
		e.T.Fatalf("velo %s with VELO_FAULT=%s: died by %v, want SIGKILL: %s", strings.Join(args, " "), fault, sig, r)
	}

	// Doctor sees the interrupted command and the steps it journalled.
	var rep harness.DoctorJSON
	d := e.Run("doctor", "--json")
	if err := json.Unmarshal([]byte(d.Stdout), &rep); err != nil || d.Code != 1 {
		e.T.Fatalf("doctor after a kill at %s: want exit 1 and JSON, got %v: %s", fault, err, d)
	}
	command := "velo " + strings.Join(args, " ")
	if len(rep.Operations) != 1 || rep.Operations[0].Command != command || len(rep.Operations[0].Steps) != n {
		e.T.Fatalf("after a kill at %s, doctor should show %q interrupted after %d steps: %+v", fault, command, n, rep.Operations)
	}
	step := "finish"
	if fault != "finish" {
		step = fmt.Sprintf("%d %s", n, rep.Operations[0].Steps[n-1].Action)
	}

	// Repair; then doctor finds nothing, the pool holds what the records
	// name, only the branches' servers run, and main's rows are there.
	var rr struct {
		Actions []struct {
			Action, Text string
			Done         bool
		}
	}
	rp := e.Run("doctor", "--repair", "--json")
	if err := json.Unmarshal([]byte(rp.Stdout), &rr); err != nil || rp.Code != 0 {
		e.T.Fatalf("doctor --repair after a kill at %s: %v: %s", step, err, rp)
	}
	var did, kinds []string
	for _, a := range rr.Actions {
		if !a.Done {
			e.T.Fatalf("doctor --repair after a kill at %s did not %s: %s", step, a.Text, rp)
		}
		if a.Action != "finish-operation" {
			did = append(did, a.Text)
			k := a.Action
			switch {
			case k == "remove-file" && strings.HasSuffix(a.Text, ".aws"):
				k = "remove-credentials"
			case k == "remove-file" && strings.HasSuffix(a.Text, ".pgpass"):
				k = "remove-password"
			}
			kinds = append(kinds, k)
		}
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
	c.assertNoStrayServers()
	if c.witness != "" {
		if got := e.Rows(c.witness, "SELECT v FROM t ORDER BY v"); got != c.rows {
			e.T.Fatalf("after a kill at %s and the repair, %s has rows %s, want %s", step, c.witness, got, c.rows)
		}
	}

	// The outcome: the change made (finished), things as they were
	// (undone, or no change when the repair had nothing to do but close
	// the journal), or in between (partly done).
	var outcome string
	after := c.view()
	switch {
	case cc.done():
		outcome = "finished"
		cc.check()
	case after == before && len(did) == 0:
		outcome = "no change"
	case after == before:
		outcome = "undone"
	default:
		outcome = "partly done"
		e.T.Logf("after a kill at %s and the repair:\nbefore %s\nafter  %s", step, before, after)
		// The command finishes what it began.
		e.OK(args...)
		if !cc.done() {
			e.T.Fatalf("velo %s succeeded after the repair, but its change is not there", strings.Join(args, " "))
		}
		cc.check()
	}
	// Back to where the command started, so that the next run takes the
	// same steps, one further; the command itself runs again there.
	if outcome == "finished" || outcome == "partly done" {
		if fault != "finish" || !cc.keep {
			cc.undo()
		}
	}
	e.T.Logf("crash | %s | %s | %s | %s | repair: %s", e.Storage, cc.name, step, outcome, strings.Join(did, "; "))
	c.outcome(cc.name, step, outcome, repairSummary(kinds))
	return true
}

// repairSummary says in a few words what a repair did, from its actions.
func repairSummary(kinds []string) string {
	words := map[string]string{
		"stop-server":        "stop orphan server",
		"drop-record":        "drop record",
		"destroy-volume":     "destroy volume",
		"destroy-snapshot":   "destroy snapshot",
		"remove-archive":     "remove WAL archive",
		"remove-leftover":    "remove leftover",
		"remove-file":        "remove socket dir and log",
		"remove-credentials": "remove object store credentials file",
		"remove-password":    "remove password file",
		"start-server":       "start branch again",
		"drop-slot":          "drop slot on the source",
	}
	count := map[string]int{}
	var order []string
	for _, k := range kinds {
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	var out []string
	for _, k := range order {
		w := words[k]
		if w == "" {
			w = k
		}
		if count[k] > 1 {
			w = fmt.Sprintf("%s ×%d", w, count[k])
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return "close the journal entry"
	}
	return strings.Join(out, ", ")
}

// view is what a user sees of the home: every branch and its state, and
// every snapshot.
func (c *crashRun) view() string {
	e := c.e
	e.T.Helper()
	var bs []struct{ Name, State string }
	if err := json.Unmarshal([]byte(e.OK("branch", "list", "--json").Stdout), &bs); err != nil {
		e.T.Fatal(err)
	}
	var snaps []struct{ ID string }
	if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "--json").Stdout), &snaps); err != nil {
		e.T.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Name+":"+b.State)
	}
	for _, s := range snaps {
		out = append(out, s.ID)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// runFault runs velo with VELO_FAULT set and reports the signal that
// killed it (0 when it exited).
func (c *crashRun) runFault(fault string, args ...string) (harness.Result, syscall.Signal) {
	e := c.e
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.VeloBin, args...)
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home, "VELO_FAULT="+fault), e.Extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			e.T.Fatalf("velo %s: %v", strings.Join(args, " "), err)
		}
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return harness.Result{Code: -1, Stdout: out.String(), Stderr: errb.String()}, ws.Signal()
	}
	return harness.Result{Code: ws.ExitStatus(), Stdout: out.String(), Stderr: errb.String()}, 0
}

// assertNoStrayServers checks that the servers running on this home's
// data are exactly the branches' that run.
func (c *crashRun) assertNoStrayServers() {
	e := c.e
	e.T.Helper()
	var bs []struct{ Name, State string }
	if err := json.Unmarshal([]byte(e.OK("branch", "list", "--json").Stdout), &bs); err != nil {
		e.T.Fatal(err)
	}
	running := 0
	for _, b := range bs {
		if b.State == "running" {
			running++
		}
	}
	dir := e.Pool
	if e.Storage == "zfs" {
		out, err := exec.Command("zfs", "get", "-H", "-o", "value", "mountpoint", e.Pool).Output()
		if err != nil {
			e.T.Fatalf("zfs get mountpoint %s: %v", e.Pool, err)
		}
		dir = strings.TrimSpace(string(out))
	}
	if n := len(harness.ServersUnder(dir)); n != running {
		e.T.Fatalf("%d servers run on %s, but %d branches are running: %+v", n, dir, running, bs)
	}
}

// cases are the commands, in an order where each leaves what the next needs.
func (c *crashRun) cases() []crashCase {
	e := c.e
	exists := func(args ...string) func() bool {
		return func() bool {
			r := e.Run(args...)
			if r.Code != 0 && r.Code != 2 {
				e.T.Fatalf("velo %s: %s", strings.Join(args, " "), r)
			}
			return r.Code == 0
		}
	}
	create := func(name string) []string {
		args := []string{"project", "create", name, "--pool", e.Pool}
		if e.Storage == "copy" || e.Storage == "reflink" {
			args = append(args, "--storage", e.Storage)
		}
		return args
	}
	rowsOf := func(ref string) string { return e.Rows(ref, "SELECT v FROM t ORDER BY v") }
	wantRows := func(ref, want string) {
		e.T.Helper()
		if got := rowsOf(ref); got != want {
			e.T.Fatalf("%s has rows %s, want %s", ref, got, want)
		}
	}
	const label = "crash-test"
	snapshotID := func() string {
		var snaps []struct{ ID, Label string }
		if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "cr/main", "--json").Stdout), &snaps); err != nil {
			e.T.Fatal(err)
		}
		for _, s := range snaps {
			if s.Label == label {
				return s.ID
			}
		}
		return ""
	}
	makeGone := func() {
		e.OK(create("gone")...)
		e.Psql("gone/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
		e.OK("branch", "create", "gone/b")
		e.OK("snapshot", "create", "gone/main")
	}
	var pitr string // the moment the PITR branch recovers to
	pitrRows := ""
	return append([]crashCase{
		{
			name:    "project create",
			drivers: []string{"btrfs", "zfs"},
			args:    func() []string { return create("cr") },
			done:    exists("project", "get", "cr"),
			check:   func() { e.Psql("cr/main", "SELECT 1") },
			undo:    func() { e.OK("project", "delete", "cr") },
			keep:    true,
		},
		{
			name: "snapshot create",
			setup: func() {
				e.Psql("cr/main", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)")
				c.witness, c.rows = "cr/main", "1,2,3"
			},
			args:  func() []string { return []string{"snapshot", "create", "cr/main", "--label", label} },
			done:  func() bool { return snapshotID() != "" },
			check: func() {},
			undo:  func() { e.OK("snapshot", "delete", snapshotID()) },
			keep:  true, // the point-in-time branch starts from it
		},
		{
			name: "branch create",
			setup: func() {
				// A moment after the snapshot, for the point-in-time branch.
				e.Psql("cr/main", "INSERT INTO t VALUES (4)")
				at, err := time.Parse("2006-01-02 15:04:05.999999-07", e.Psql("cr/main", "SELECT clock_timestamp()"))
				if err != nil {
					e.T.Fatal(err)
				}
				pitr, pitrRows = at.Add(100*time.Millisecond).UTC().Format(time.RFC3339Nano), "1,2,3,4"
				c.rows = "1,2,3,4"
				time.Sleep(200 * time.Millisecond)
			},
			args:  func() []string { return []string{"branch", "create", "cr/dev"} },
			done:  exists("branch", "get", "cr/dev"),
			check: func() { wantRows("cr/dev", c.rows) },
			undo:  func() { e.OK("branch", "delete", "cr/dev") },
			keep:  true,
		},
		{
			name:    "branch reset",
			drivers: []string{"btrfs", "zfs"},
			setup:   func() { e.Psql("cr/dev", "INSERT INTO t VALUES (100)") },
			args:    func() []string { return []string{"branch", "reset", "cr/dev"} },
			done: func() bool {
				switch got := rowsOf("cr/dev"); got {
				case c.rows:
					return true
				case c.rows + ",100":
					return false // its own data, untouched
				default:
					e.T.Fatalf("cr/dev has rows %s: neither its own nor main's", got)
					return false
				}
			},
			check: func() { wantRows("cr/dev", c.rows) },
			undo:  func() { e.Psql("cr/dev", "INSERT INTO t VALUES (100)") },
		},
		{
			name:    "branch create --pitr",
			drivers: []string{"btrfs"}, // its clone is branch create's; the rest is Postgres's recovery
			args:    func() []string { return []string{"branch", "create", "cr/pit", "--pitr", pitr} },
			done:    exists("branch", "get", "cr/pit"),
			check:   func() { wantRows("cr/pit", pitrRows) },
			undo:    func() { e.OK("branch", "delete", "cr/pit") },
		},
		c.restoreCase(), c.restoreToCase(),
		{
			name:    "branch rename",
			drivers: []string{"btrfs", "zfs"},
			// cr/dev as main's data, and no user snapshot of the volumes
			// the restores replaced keeping them (zfs).
			setup: func() {
				e.OK("branch", "reset", "cr/dev")
				var snaps []struct {
					ID   string
					User bool
				}
				if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "cr/dev", "--json").Stdout), &snaps); err != nil {
					e.T.Fatal(err)
				}
				for _, sn := range snaps {
					if sn.User {
						e.OK("snapshot", "delete", sn.ID)
					}
				}
			},
			args:  func() []string { return []string{"branch", "rename", "cr/dev", "cr/renamed"} },
			done:  exists("branch", "get", "cr/renamed"),
			check: func() { wantRows("cr/renamed", c.rows) },
			undo:  func() { e.OK("branch", "rename", "cr/renamed", "cr/dev") },
		},
		{
			name:    "branch promote",
			drivers: []string{"btrfs", "zfs"},
			args:    func() []string { return []string{"branch", "promote", "cr/dev", "--name", "main-was"} },
			done:    exists("branch", "get", "cr/main-was"),
			check: func() {
				wantRows("cr/main", c.rows)
				wantRows("cr/main-was", c.rows)
			},
			undo: func() { e.OK("branch", "promote", "cr/main-was", "--name", "dev") },
		},
		{
			name:    "branch delete",
			drivers: []string{"btrfs", "zfs"},
			args:    func() []string { return []string{"branch", "delete", "cr/dev"} },
			done:    func() bool { return !exists("branch", "get", "cr/dev")() },
			check:   func() {},
			undo:    func() { e.OK("branch", "create", "cr/dev") },
			keep:    true,
		},
		{
			// A project of its own with a branch and a user snapshot, so
			// that every kind of step is taken; cr/main is the witness.
			name:    "project delete",
			drivers: []string{"btrfs"}, // its steps are branch delete's, then the project's
			setup:   makeGone,
			args:    func() []string { return []string{"project", "delete", "gone", "--force"} },
			done:    func() bool { return !exists("project", "get", "gone")() },
			check:   func() {},
			undo:    makeGone,
			keep:    true,
		},
	}, append(append(c.logicalCases(), c.physicalCases()...), c.archiveCases()...)...)
}

// logicalCases are project create --logical and project refresh from a
// PostgreSQL 15 source (btrfs only: their storage steps are project
// create's and branch reset's; the rest is pg_dump and pg_restore).
func (c *crashRun) logicalCases() []crashCase {
	e := c.e
	if e.Storage != "btrfs" {
		return nil
	}
	src := harness.StartSource(e.T)
	src.Psql("postgres", "CREATE ROLE shopper LOGIN PASSWORD 'shopper-pw'")
	src.Psql("postgres", "CREATE DATABASE shop OWNER shopper")
	src.Psql("shop", "SET ROLE shopper; CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10)")
	e.Extra = append(e.Extra, "PGPASSWORD="+src.Password)
	next := 11 // the next row the source gets
	lgExists := func() bool { return e.Run("project", "get", "lg").Code == 0 }
	create := []string{"project", "create", "lg", "--pool", e.Pool, "--from", src.URL(), "--logical", "--database", "shop"}
	items := func() string { return e.PsqlDB("lg/main", "shop", "SELECT count(*) || ':' || max(id) FROM items") }
	sourceItems := func() string { return src.Psql("shop", "SELECT count(*) || ':' || max(id) FROM items") }
	var port int
	return []crashCase{
		{
			name:    "project create --logical",
			drivers: []string{"btrfs"},
			args:    func() []string { return create },
			done:    lgExists,
			check: func() {
				if got, want := items(), sourceItems(); got != want {
					e.T.Fatalf("lg/main has items %s, the source %s", got, want)
				}
			},
			undo: func() { e.OK("project", "delete", "lg") },
		},
		{
			name:    "project refresh",
			drivers: []string{"btrfs"},
			setup: func() {
				e.OK(create...)
				port = e.Conn("lg/main").Port
				src.Psql("shop", fmt.Sprintf("INSERT INTO items VALUES (%d)", next))
				next++
			},
			args: func() []string { return []string{"project", "refresh", "lg"} },
			done: func() bool { return items() == sourceItems() },
			check: func() {
				if p := e.Conn("lg/main").Port; p != port {
					e.T.Fatalf("lg/main moved from port %d to %d", port, p)
				}
			},
			undo: func() {
				src.Psql("shop", fmt.Sprintf("INSERT INTO items VALUES (%d)", next))
				next++
			},
		},
	}
}

// restoreCase is branch restore --snapshot of cr/dev, its replaced state
// kept as cr/dev-was: killed anywhere, cr/dev holds either its own rows
// or the snapshot's, and after the swap cr/dev-was holds its own.
func (c *crashRun) restoreCase() crashCase {
	e := c.e
	var id, had string // the snapshot, and the rows it holds
	rowsOf := func(ref string) string { return e.Rows(ref, "SELECT v FROM t ORDER BY v") }
	setup := func() {
		had = rowsOf("cr/dev")
		id = strings.TrimSpace(e.OK("snapshot", "create", "cr/dev", "--label", "restore-point").Stdout)
		e.Psql("cr/dev", "INSERT INTO t VALUES (200)")
	}
	return crashCase{
		name:    "branch restore --snapshot",
		drivers: []string{"btrfs", "zfs"},
		setup:   setup,
		args:    func() []string { return []string{"branch", "restore", "cr/dev", "--snapshot", id, "--name", "dev-was"} },
		done: func() bool {
			switch got := rowsOf("cr/dev"); got {
			case had:
				return true
			case had + ",200":
				if e.Run("branch", "get", "cr/dev-was").Code == 0 {
					e.T.Fatalf("cr/dev holds its own rows, yet cr/dev-was exists")
				}
				return false
			default:
				e.T.Fatalf("cr/dev has rows %s: neither its own nor the snapshot's", got)
				return false
			}
		},
		check: func() {
			if got := rowsOf("cr/dev-was"); got != had+",200" {
				e.T.Fatalf("cr/dev-was, the replaced state, has rows %s, want %s", got, had+",200")
			}
		},
		// The user's snapshot keeps the replaced volume while it lasts:
		// the undo resets cr/dev off it and deletes it, then takes anew.
		undo: func() {
			e.OK("branch", "delete", "cr/dev-was")
			e.OK("branch", "reset", "cr/dev")
			e.OK("snapshot", "delete", id)
			setup()
		},
	}
}

// restoreToCase is branch restore --to a moment of cr/dev's WAL (btrfs:
// its clone is restore --snapshot's; the rest is Postgres's recovery).
// Its undo puts the replaced state back under the name cr/dev, so that
// the moment stays in reach of the next run.
func (c *crashRun) restoreToCase() crashCase {
	e := c.e
	var at, had string
	rowsOf := func(ref string) string { return e.Rows(ref, "SELECT v FROM t ORDER BY v") }
	return crashCase{
		name:    "branch restore --to",
		drivers: []string{"btrfs"},
		setup: func() {
			e.OK("snapshot", "create", "cr/dev")
			e.Psql("cr/dev", "INSERT INTO t VALUES (300)")
			had = rowsOf("cr/dev")
			t, err := time.Parse("2006-01-02 15:04:05.999999-07", e.Psql("cr/dev", "SELECT clock_timestamp()"))
			if err != nil {
				e.T.Fatal(err)
			}
			at = t.Add(100 * time.Millisecond).UTC().Format(time.RFC3339Nano)
			time.Sleep(300 * time.Millisecond)
			e.Psql("cr/dev", "INSERT INTO t VALUES (301)")
		},
		args: func() []string { return []string{"branch", "restore", "cr/dev", "--to", at, "--name", "dev-at"} },
		done: func() bool {
			switch got := rowsOf("cr/dev"); got {
			case had:
				return true
			case had + ",301":
				return false
			default:
				e.T.Fatalf("cr/dev has rows %s: neither its own nor those of %s", got, at)
				return false
			}
		},
		check: func() {
			if got := rowsOf("cr/dev-at"); got != had+",301" {
				e.T.Fatalf("cr/dev-at, the replaced state, has rows %s, want %s", got, had+",301")
			}
		},
		undo: func() {
			e.OK("branch", "delete", "cr/dev")
			e.OK("branch", "rename", "cr/dev-at", "cr/dev")
		},
	}
}
