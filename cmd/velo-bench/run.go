package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/bench"
)

// run measures every driver and size in turn and returns what it measured,
// even when it stops early on an error.
func run(ctx context.Context, c config) (*bench.Report, error) {
	host, _ := os.Hostname()
	rep := &bench.Report{Started: time.Now().UTC(), Host: host, Postgres: strconv.Itoa(c.pgMajor), Reps: c.reps, Branches: c.branches}
	if err := os.RemoveAll(c.work); err != nil {
		return nil, err
	}
	if err := mkdir(c.work); err != nil {
		return nil, err
	}
	alternativesDone := !c.alternatives
	for _, d := range c.drivers {
		p, err := makePool(ctx, c, d)
		if errors.Is(err, errMissing) {
			logf("%s: left out: %v", d, err)
			continue
		}
		if err != nil {
			return rep, err
		}
		logf("%s: pool %s", d, p.name)
		err = measureDriver(ctx, c, p, rep, !alternativesDone)
		alternativesDone = true
		if !c.keep {
			if rerr := p.remove(); rerr != nil {
				logf("%s: removing the pool: %v", d, rerr)
			}
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", d, err)
		}
	}
	if !c.keep {
		_ = os.RemoveAll(c.work)
	}
	return rep, nil
}

// velo runs the velo binary on one home.
type velo struct {
	bin, home string
	env       []string // besides VELO_HOME (PGPASSWORD for an import)
}

func (v velo) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, v.bin, args...)
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+v.home), v.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("velo %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// branchInfo is what velo-bench reads of `velo branch get --json`.
type branchInfo struct {
	Port      int    `json:"port"`
	PID       int    `json:"pid"`
	Volume    string `json:"volume"`
	Exclusive int64  `json:"exclusive_bytes"`
	DataDir   string `json:"data_dir"`
}

func (v velo) branch(ctx context.Context, ref string) (branchInfo, error) {
	var b branchInfo
	out, err := v.run(ctx, "branch", "get", ref, "--json")
	if err != nil {
		return b, err
	}
	return b, json.Unmarshal([]byte(out), &b)
}

var portRE = regexp.MustCompile(`@localhost:(\d+)/`)

// ready times a velo command that leaves a branch running, from its start
// until a new connection to the branch has counted pgbench_branches.
func (v velo) ready(ctx context.Context, password string, scale int, args ...string) (time.Duration, error) {
	start := time.Now()
	out, err := v.run(ctx, args...)
	if err != nil {
		return 0, err
	}
	// create prints the URL; reset keeps the branch's port and prints none.
	var port int
	if m := portRE.FindStringSubmatch(out); m != nil {
		port, _ = strconv.Atoi(m[1])
	} else if b, err := v.branch(ctx, args[len(args)-1]); err == nil {
		port = b.Port
	} else {
		return 0, err
	}
	if err := answers(ctx, port, password, "postgres", scale); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// answers connects to db on port and checks that pgbench_branches holds
// scale rows.
func answers(ctx context.Context, port int, password, db string, scale int) error {
	conn, err := connect(ctx, port, password, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if scale == 0 {
		// An empty cluster (a target made beforehand): it answers.
		return conn.QueryRow(ctx, "SELECT 0").Scan(&n)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_branches").Scan(&n); err != nil {
		return fmt.Errorf("port %d, database %s: %w", port, db, err)
	}
	if n != scale {
		return fmt.Errorf("port %d, database %s: pgbench_branches has %d rows, want %d", port, db, n, scale)
	}
	return nil
}

func connect(ctx context.Context, port int, password, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", password, port, db))
}

func exec1(ctx context.Context, port int, password, db, sql string) error {
	conn, err := connect(ctx, port, password, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// timeRuns runs fn once as a warm-up and then reps times, and summarizes
// the measured runs.
func timeRuns(reps int, fn func(i int) (time.Duration, error)) (bench.Summary, error) {
	var ds []time.Duration
	for i := 0; i <= reps; i++ {
		d, err := fn(i)
		if err != nil {
			return bench.Summary{}, err
		}
		if i > 0 {
			ds = append(ds, d)
		}
	}
	return bench.Summarize(ds), nil
}

// timePairs is timeRuns for two ways of doing the same thing, run in
// turn (a then b, then b then a, ...) so that neither always meets the
// page cache and the pool's writeback as the other left them, each after
// a sync: the last run's writes are on disk before the next is timed.
func timePairs(reps int, a, b func(i int) (time.Duration, error)) (sa, sb bench.Summary, err error) {
	var da, db []time.Duration
	for i := 0; i <= reps; i++ {
		first, second, df, ds := a, b, &da, &db
		if i%2 == 1 {
			first, second, df, ds = b, a, &db, &da
		}
		for _, run := range []struct {
			fn func(int) (time.Duration, error)
			to *[]time.Duration
		}{{first, df}, {second, ds}} {
			syscall.Sync()
			d, err := run.fn(i)
			if err != nil {
				return sa, sb, err
			}
			if i > 0 {
				*run.to = append(*run.to, d)
			}
		}
	}
	return bench.Summarize(da), bench.Summarize(db), nil
}

// measureDriver builds a pgbench database of each size in a project on p
// and measures it.
func measureDriver(ctx context.Context, c config, p *pool, rep *bench.Report, alternatives bool) error {
	v := velo{bin: c.velo, home: filepath.Join(c.work, p.driver+"-home")}
	if err := mkdir(v.home); err != nil {
		return err
	}
	for i, size := range c.sizes {
		m := &measure{c: c, v: v, p: p, rep: rep, size: size, project: fmt.Sprintf("s%d", size)}
		if err := m.setUp(ctx); err != nil {
			return err
		}
		err := m.all(ctx, alternatives, i == 0, i == len(c.sizes)-1)
		if _, derr := v.run(context.WithoutCancel(ctx), "project", "delete", m.project, "--force"); derr != nil && err == nil {
			err = derr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// measure is one driver at one size.
type measure struct {
	c        config
	v        velo
	p        *pool
	rep      *bench.Report
	size     int
	project  string
	scale    int
	password string
	main     branchInfo
	dbBytes  int64
	// createArgs are more flags of the project's create (--image).
	createArgs []string
}

// scaleFor is the pgbench scale that makes about mb of database: 1 GB is
// scale 68 with PostgreSQL 15 (about 15 MB a scale step).
func scaleFor(mb int) int { return max(1, (mb*68+512)/1024) }

func (m *measure) setUp(ctx context.Context) error {
	m.scale = scaleFor(m.size)
	args := append([]string{"project", "create", m.project, "--pool", m.p.name, "--storage", m.p.driver, "--pg-version", strconv.Itoa(m.c.pgMajor)}, m.createArgs...)
	if _, err := m.v.run(ctx, args...); err != nil {
		return err
	}
	out, err := m.v.run(ctx, "branch", "password", m.project+"/main", "--json")
	if err != nil {
		return err
	}
	var pw struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(out), &pw); err != nil || pw.Password == "" {
		return fmt.Errorf("velo branch password --json: no password in %q", out)
	}
	m.password = pw.Password
	if m.main, err = m.v.branch(ctx, m.project+"/main"); err != nil {
		return err
	}
	logf("%s %d MB: pgbench -i -s %d", m.p.driver, m.size, m.scale)
	if err := m.pgbench(ctx, m.main.Port, "-i", "-q", "-s", strconv.Itoa(m.scale)); err != nil {
		return err
	}
	conn, err := connect(ctx, m.main.Port, m.password, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT pg_database_size('postgres')").Scan(&m.dbBytes); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// pgbench runs pgbench against the server on port and returns its output.
func (m *measure) pgbench(ctx context.Context, port int, args ...string) error {
	_, err := m.pgbenchOut(ctx, port, args...)
	return err
}

func (m *measure) pgbenchOut(ctx context.Context, port int, args ...string) (string, error) {
	return m.pgbenchDB(ctx, port, "postgres", args...)
}

// pgbenchDB runs pgbench against database db on port (through velo
// serve, db is PROJECT/BRANCH).
func (m *measure) pgbenchDB(ctx context.Context, port int, db string, args ...string) (string, error) {
	args = append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", db)
	cmd := exec.CommandContext(ctx, filepath.Join(m.c.pgBin, "pgbench"), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+m.password, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (m *measure) add(driver, method string, s bench.Summary) {
	m.rep.Results = append(m.rep.Results, bench.Result{Driver: driver, SizeMB: m.size, DBBytes: m.dbBytes, Method: method, Summary: s})
	who := driver
	if who == "" {
		who = "plain server"
	}
	logf("%s %d MB: %s: median %s, min %s, max %s", who, m.size, method, bench.Dur(s.Median), bench.Dur(s.Min), bench.Dur(s.Max))
}

func (m *measure) all(ctx context.Context, alternatives, smallest, largest bool) error {
	if m.c.diffOnly {
		return m.diffCost(ctx)
	}
	if m.c.wakeOnly {
		return m.wake(ctx)
	}
	if m.c.serveOnly {
		if err := m.wake(ctx); err != nil {
			return err
		}
		return m.serveFigures(ctx)
	}
	if err := m.veloCommands(ctx); err != nil {
		return err
	}
	if m.c.image != "" {
		if err := m.imageCommands(ctx); err != nil {
			return err
		}
	}
	if m.c.imports {
		if err := m.imports(ctx); err != nil {
			return err
		}
	}
	if m.c.onlyImport {
		return nil
	}
	if err := m.floor(ctx); err != nil {
		return err
	}
	if err := m.inServerClone(ctx); err != nil {
		return err
	}
	if alternatives {
		if err := m.alternatives(ctx); err != nil {
			return err
		}
	}
	if largest {
		if err := m.cost(ctx); err != nil {
			return err
		}
		if err := m.diffCost(ctx); err != nil {
			return err
		}
	}
	if smallest {
		if err := m.status(ctx); err != nil {
			return err
		}
	}
	return nil
}

// veloCommands times branch create, reset and delete, each until done (and,
// for create and reset, until the branch answers).
func (m *measure) veloCommands(ctx context.Context) error {
	return m.branchCommands(ctx, bench.VeloCreate, bench.VeloReset, bench.VeloDelete)
}

// imageCommands times the same in a project of the same size made with
// --image, whose servers run in containers.
func (m *measure) imageCommands(ctx context.Context) error {
	im := &measure{c: m.c, v: m.v, p: m.p, rep: m.rep, size: m.size, project: m.project + "-img", createArgs: []string{"--image", m.c.image}}
	if err := im.setUp(ctx); err != nil {
		return err
	}
	err := im.branchCommands(ctx, bench.VeloCreateImage, bench.VeloResetImage, bench.VeloDeleteImage)
	if _, derr := m.v.run(context.WithoutCancel(ctx), "project", "delete", im.project, "--force"); derr != nil && err == nil {
		err = derr
	}
	return err
}

func (m *measure) branchCommands(ctx context.Context, createMethod, resetMethod, deleteMethod string) error {
	var create, reset, del []time.Duration
	for i := 0; i <= m.c.reps; i++ {
		ref := fmt.Sprintf("%s/b%d", m.project, i)
		d, err := m.v.ready(ctx, m.password, m.scale, "branch", "create", ref)
		if err != nil {
			return err
		}
		// A change on the branch, so that reset has something to discard.
		if err := exec1(ctx, portOf(ctx, m.v, ref), m.password, "postgres", "UPDATE pgbench_branches SET bbalance = bbalance + 1"); err != nil {
			return err
		}
		r, err := m.v.ready(ctx, m.password, m.scale, "branch", "reset", ref)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := m.v.run(ctx, "branch", "delete", ref); err != nil {
			return err
		}
		x := time.Since(start)
		if i > 0 {
			create, reset, del = append(create, d), append(reset, r), append(del, x)
		}
	}
	m.add(m.p.driver, createMethod, bench.Summarize(create))
	m.add(m.p.driver, resetMethod, bench.Summarize(reset))
	m.add(m.p.driver, deleteMethod, bench.Summarize(del))
	return nil
}

func portOf(ctx context.Context, v velo, ref string) int {
	b, _ := v.branch(ctx, ref)
	return b.Port
}

// status times `velo status --json` with c.branches branches running, and
// reads the memory of their idle servers.
func (m *measure) status(ctx context.Context) error {
	logf("%s %d MB: creating %d branches for status", m.p.driver, m.size, m.c.branches)
	for i := range m.c.branches {
		if _, err := m.v.run(ctx, "branch", "create", fmt.Sprintf("%s/s%d", m.project, i)); err != nil {
			return err
		}
	}
	s, err := timeRuns(m.c.reps, func(int) (time.Duration, error) {
		start := time.Now()
		out, err := m.v.run(ctx, "status", "--json")
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		var st struct {
			Projects []struct {
				BranchList []struct {
					State string `json:"state"`
				} `json:"branch_list"`
			} `json:"projects"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return 0, err
		}
		running := 0
		for _, p := range st.Projects {
			for _, b := range p.BranchList {
				if b.State == "running" {
					running++
				}
			}
		}
		if running != m.c.branches+1 {
			return 0, fmt.Errorf("velo status shows %d branches running, want %d", running, m.c.branches+1)
		}
		return d, nil
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, bench.VeloStatus, s)
	// Idle servers: nothing has connected to them since they started.
	var pss, rss []int64
	for i := range m.c.branches {
		b, err := m.v.branch(ctx, fmt.Sprintf("%s/s%d", m.project, i))
		if err != nil {
			return err
		}
		p, r, err := treeMemory(b.PID)
		if err != nil {
			return err
		}
		pss, rss = append(pss, p), append(rss, r)
	}
	m.setCost(func(c *bench.Cost) { c.IdlePSS, c.IdleRSS = bench.Median(pss), bench.Median(rss) })
	return nil
}

// setCost updates this driver's cost record, making it when needed.
func (m *measure) setCost(fn func(*bench.Cost)) {
	for i := range m.rep.Costs {
		if m.rep.Costs[i].Driver == m.p.driver {
			fn(&m.rep.Costs[i])
			return
		}
	}
	c := bench.Cost{Driver: m.p.driver, DiskAfter: map[int]int64{}}
	fn(&c)
	m.rep.Costs = append(m.rep.Costs, c)
}

// cost measures what a running branch costs: pgbench TPS on a fresh branch
// against main's (the median of --tps-rounds runs of each), and the disk
// the branch holds alone after changing rows.
func (m *measure) cost(ctx context.Context) error {
	ref := m.project + "/tps"
	if _, err := m.v.run(ctx, "branch", "create", ref); err != nil {
		return err
	}
	b, err := m.v.branch(ctx, ref)
	if err != nil {
		return err
	}
	secs := strconv.Itoa(int(m.c.tpsTime.Seconds()))
	var mainTPS, branchTPS []float64
	// Each run starts just after a CHECKPOINT of the server it measures,
	// so that both pay the same full-page writes, and the order alternates
	// (main first, then the branch first), so that neither always runs on
	// the other's leftovers.
	for round := range m.c.tpsRounds {
		order := []int{m.main.Port, b.Port}
		if round%2 == 1 {
			order = []int{b.Port, m.main.Port}
		}
		for _, port := range order {
			if err := exec1(ctx, port, m.password, "postgres", "CHECKPOINT"); err != nil {
				return err
			}
			out, err := m.pgbenchOut(ctx, port, "-n", "-c", "4", "-j", "2", "-T", secs)
			if err != nil {
				return err
			}
			tps, err := parseTPS(out)
			if err != nil {
				return err
			}
			who := "main"
			if port == b.Port {
				who = "branch"
				branchTPS = append(branchTPS, tps)
			} else {
				mainTPS = append(mainTPS, tps)
			}
			logf("%s %d MB: pgbench round %d on %s: %.0f TPS", m.p.driver, m.size, round+1, who, tps)
		}
	}
	mt, bt := bench.Median(mainTPS), bench.Median(branchTPS)
	// Disk: a fresh branch, then more and more rows changed.
	disk := map[int]int64{}
	ref2 := m.project + "/disk"
	before, err := m.p.used(ctx)
	if err != nil {
		return err
	}
	if _, err := m.v.run(ctx, "branch", "create", ref2); err != nil {
		return err
	}
	after, err := m.p.used(ctx)
	if err != nil {
		return err
	}
	logf("%s %d MB: pool used grew by %s across a branch create", m.p.driver, m.size, bench.MB(after-before))
	b2, err := m.v.branch(ctx, ref2)
	if err != nil {
		return err
	}
	disk[0] = b2.Exclusive
	for _, n := range []int{1000, 10000, 100000} {
		if err := exec1(ctx, b2.Port, m.password, "postgres", fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", n)); err != nil {
			return err
		}
		if err := exec1(ctx, b2.Port, m.password, "postgres", "CHECKPOINT"); err != nil {
			return err
		}
		if b2, err = m.v.branch(ctx, ref2); err != nil {
			return err
		}
		disk[n] = b2.Exclusive
		logf("%s %d MB: branch's own disk after %d rows changed: %s", m.p.driver, m.size, n, bench.MB(b2.Exclusive))
	}
	m.setCost(func(c *bench.Cost) {
		c.SizeMB, c.MainTPS, c.BranchTP, c.DiskAfter, c.PoolGrowth = m.size, mt, bt, disk, after-before
	})
	for _, r := range []string{ref, ref2} {
		if _, err := m.v.run(ctx, "branch", "delete", r); err != nil {
			return err
		}
	}
	return nil
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)`)

func parseTPS(out string) (float64, error) {
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no TPS: %s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}
