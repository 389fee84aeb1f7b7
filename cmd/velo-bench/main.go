// Command velo-bench measures Velo against what a user does without it, on
// this machine, in one run: for each storage driver present and each
// database size, `velo branch create` (until the branch answers a query),
// reset, delete and status; the alternatives (CREATE DATABASE TEMPLATE,
// pg_dump | pg_restore, pg_basebackup and a start); the floor (CHECKPOINT,
// snapshot, clone and a bare postgres start, without Velo); and the cost of
// a running branch (TPS, disk after changed rows, memory of an idle server).
// It prints the tables and writes results.csv, results.json, results.md and
// chart.png. It needs root: it makes loop-mounted pools and a zfs-fuse pool.
//
//	scripts/bench.sh --sizes 100MB,1GB,3GB --reps 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/hostsetup"
)

type config struct {
	velo         string
	pgBin        string
	pgMajor      int
	work         string
	out          string
	sizes        []int // MB
	drivers      []string
	reps         int
	branches     int
	tpsTime      time.Duration
	keep         bool
	alternatives bool
	tpsRounds    int
	// image, when set, also times branch create, reset and delete in a
	// project of this Docker image (velo project create --image).
	image      string
	imports    bool // measure the physical import (velo project create --from)
	logical    bool // with imports, measure the logical import too (--logical)
	onlyImport bool // measure branch create and the import only
	diffOnly   bool // measure velo diff only
	wakeOnly   bool // measure velo serve's wake only
	serveOnly  bool // measure velo serve's figures only
	inUse      int  // branches in use in velo serve's fleet
}

func main() {
	var c config
	var sizes, drivers string
	flag.StringVar(&c.velo, "velo", "velo", "the velo binary to measure")
	flag.StringVar(&c.pgBin, "pg-bin", "/usr/lib/postgresql/15/bin", "directory of pgbench, pg_dump, pg_restore, pg_basebackup and postgres of the major measured")
	flag.StringVar(&sizes, "sizes", "100MB,1GB,3GB", "pgbench database sizes, comma-separated")
	flag.StringVar(&drivers, "drivers", "btrfs,zfs,reflink,copy", "storage drivers to measure, comma-separated; those whose tools are missing are left out with a note")
	flag.IntVar(&c.reps, "reps", 5, "measured repetitions of each figure, after one warm-up run")
	flag.IntVar(&c.branches, "branches", 50, "branches that exist while `velo status --json` is timed (at the smallest size)")
	flag.IntVar(&c.tpsRounds, "tps-rounds", 2, "pgbench runs on main and on the branch, each, alternating which goes first")
	flag.DurationVar(&c.tpsTime, "tps-time", 15*time.Second, "length of each pgbench run comparing a branch's TPS with main's (at the largest size)")
	flag.StringVar(&c.work, "work", "/var/tmp/velo-bench", "directory for pool images, homes and copies (emptied first)")
	flag.StringVar(&c.out, "out", "bench-results", "directory for results.csv, results.json, results.md and chart.png")
	flag.BoolVar(&c.keep, "keep", false, "leave the pools and homes in place at the end")
	flag.BoolVar(&c.alternatives, "alternatives", true, "measure TEMPLATE, pg_dump | pg_restore and pg_basebackup too (on the first driver's databases); false measures Velo alone, as after a change to it")
	flag.StringVar(&c.image, "image", "", "also time branch create, reset and delete in a project made with --image IMG (a Docker image of the measured major, present in the engine DOCKER_HOST names), at every size")
	flag.BoolVar(&c.imports, "import", true, "measure a physical import too: velo project create --from a plain server holding the same database, against pg_basebackup by hand into the pool; branch create on the following main; its replay lag under pgbench")
	flag.BoolVar(&c.logical, "logical", true, "with --import, measure a logical import too: velo project create --from --logical against pg_dump -Fd -j | pg_restore -j by hand into a server on the pool")
	flag.BoolVar(&c.onlyImport, "only-import", false, "measure branch create and the import only (implies --import)")
	flag.BoolVar(&c.diffOnly, "diff-only", false, "measure velo diff alone (at every size), against a full ordered scan of both sides")
	flag.BoolVar(&c.wakeOnly, "wake-only", false, "measure velo serve's wake alone (at every size): connect through the router to a suspended branch until its first row, against a bare postgres start on the same clone")
	flag.BoolVar(&c.serveOnly, "serve-only", false, "measure velo serve alone (at every size): the wake, pgbench -S and -S -C through the router against direct, and --branches branches with --in-use of them in use and the rest suspended against all running (memory, velo status)")
	flag.IntVar(&c.inUse, "in-use", 10, "with --serve-only, branches of the fleet that keep a session through velo serve")
	flag.Parse()
	c.imports = c.imports || c.onlyImport
	if flag.NArg() > 0 {
		usage("unexpected argument %q", flag.Arg(0))
	}
	for _, s := range strings.Split(sizes, ",") {
		b, err := hostsetup.ParseSize(strings.TrimSpace(s))
		if err != nil || b < 10<<20 {
			usage("--sizes: %q is not a size of at least 10MB (say 100MB, 1GB)", s)
		}
		c.sizes = append(c.sizes, int(b>>20))
	}
	slices.Sort(c.sizes)
	c.sizes = slices.Compact(c.sizes)
	for _, d := range strings.Split(drivers, ",") {
		d = strings.TrimSpace(d)
		if !slices.Contains([]string{"btrfs", "zfs", "reflink", "copy"}, d) {
			usage("--drivers: %q is not one of btrfs, zfs, reflink, copy", d)
		}
		if !slices.Contains(c.drivers, d) {
			c.drivers = append(c.drivers, d)
		}
	}
	if c.reps < 1 || c.reps > 1000 {
		usage("--reps must be between 1 and 1000")
	}
	if c.branches < 1 || c.branches > 500 {
		usage("--branches must be between 1 and 500")
	}
	if c.serveOnly && (c.inUse < 1 || c.inUse > c.branches) {
		usage("--in-use must be between 1 and --branches (%d)", c.branches)
	}
	if c.tpsRounds < 1 || c.tpsRounds > 100 {
		usage("--tps-rounds must be between 1 and 100")
	}
	if c.tpsTime < time.Second {
		usage("--tps-time must be at least 1s")
	}
	if err := reachable(c.work); err != nil {
		usage("--work: %v", err)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "velo-bench: needs root, to make loop-mounted pools and a zfs-fuse pool; run it with sudo")
		os.Exit(2)
	}
	var err error
	if c.velo, err = exec.LookPath(c.velo); err != nil {
		usage("--velo: %v (build it: go build -o /usr/local/bin/velo ./cmd/velo)", err)
	}
	for _, tool := range []string{"pgbench", "pg_dump", "pg_restore", "pg_basebackup", "postgres"} {
		if _, err := os.Stat(filepath.Join(c.pgBin, tool)); err != nil {
			usage("--pg-bin: %s has no %s (apt-get install postgresql)", c.pgBin, tool)
		}
	}
	if c.pgMajor, err = pgMajor(c.pgBin); err != nil {
		fmt.Fprintln(os.Stderr, "velo-bench:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, c)
	if rep != nil && len(rep.Results) > 0 {
		if werr := write(c.out, rep); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "velo-bench:", err)
		os.Exit(1)
	}
}

func usage(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "velo-bench: "+format+"\n", a...)
	flag.Usage()
	os.Exit(2)
}

func pgMajor(bin string) (int, error) {
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s/postgres --version: %w", bin, err)
	}
	var major int
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, fmt.Errorf("postgres --version printed nothing")
	}
	if _, err := fmt.Sscanf(f[len(f)-1], "%d", &major); err != nil {
		return 0, fmt.Errorf("postgres --version: unexpected %q", out)
	}
	return major, nil
}

// write saves the report in every form and prints its tables.
func write(dir string, rep *bench.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	save := func(name string, fn func(f *os.File) error) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			return
		}
		errs = append(errs, fn(f), f.Close())
	}
	save("results.csv", func(f *os.File) error { return rep.WriteCSV(f) })
	save("results.json", func(f *os.File) error { return rep.WriteJSON(f) })
	save("results.md", func(f *os.File) error { rep.Markdown(f); return nil })
	charted := true
	save("chart.png", func(f *os.File) error {
		err := rep.Chart(f)
		if errors.Is(err, bench.ErrNoChart) {
			charted, err = false, os.Remove(f.Name())
		}
		return err
	})
	fmt.Println()
	errs = append(errs, rep.Text(os.Stdout))
	if charted {
		fmt.Printf("\nwrote %s/results.csv, results.json, results.md and chart.png\n", dir)
	} else {
		fmt.Printf("\nwrote %s/results.csv, results.json and results.md (nothing to chart)\n", dir)
	}
	return errors.Join(errs...)
}

// logf prints a progress line on stderr.
func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// reachable checks that the Postgres servers, which run as the postgres
// user, can pass through every directory above work (it is made if
// missing).
func reachable(work string) error {
	abs, err := filepath.Abs(work)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is under %s (mode %04o), which the postgres user cannot pass through; choose a directory such as /var/tmp/velo-bench", work, dir, fi.Mode().Perm())
		}
		if dir == "/" {
			return nil
		}
	}
}
