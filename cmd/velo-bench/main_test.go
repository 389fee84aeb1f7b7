package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/testenv"
)

// build compiles velo and velo-bench into a directory of their own.
func build(t *testing.T) (velo, veloBench string) {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{"cmd/velo", "cmd/velo-bench"} {
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, "github.com/velohq/velo/"+pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return filepath.Join(dir, "velo"), filepath.Join(dir, "velo-bench")
}

// TestSmallRun runs the benchmark program the way its README says, at the
// smallest size, one repetition, on btrfs and copy, and checks that it
// measured every method, the floor and the cost of a branch, and wrote the
// CSV, JSON, Markdown and PNG it promises.
func TestSmallRun(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.btrfs")
	const pgBin = "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(pgBin, "pgbench")); err != nil {
		testenv.Skip(t, "postgres", "PostgreSQL 15 with pgbench is not installed")
	}
	velo, veloBench := build(t)
	// The servers run as postgres, which must pass through the work's
	// parents (t.TempDir's are private).
	parent, err := os.MkdirTemp("", "velo-bench-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	work, out := filepath.Join(parent, "work"), filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(veloBench, "--velo", velo, "--pg-bin", pgBin, "--sizes", "10MB", "--drivers", "btrfs,copy",
		"--reps", "1", "--branches", "3", "--tps-time", "1s", "--work", work, "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("velo-bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results.json: %v\n%s", err, b)
	}
	for _, d := range []string{"btrfs", "copy"} {
		for _, m := range []string{bench.VeloCreate, bench.VeloReset, bench.VeloDelete, bench.VeloStatus,
			bench.FloorTotal, bench.FloorCkpt, bench.FloorSnap, bench.FloorClone, bench.FloorStart,
			bench.ImportByHand, bench.ImportVelo, bench.ImportBranch, bench.LogicalByHand, bench.LogicalVelo} {
			r, ok := rep.Find(d, 10, m)
			if !ok || r.Runs != 1 || r.Median <= 0 {
				t.Errorf("%s: %s not measured: %+v", d, m, r)
			}
		}
	}
	for _, m := range bench.Alternatives {
		if r, ok := rep.Find("", 10, m); !ok || r.Median <= 0 {
			t.Errorf("%s not measured: %+v", m, r)
		}
	}
	if len(rep.Costs) != 2 {
		t.Fatalf("want the cost of a branch on btrfs and copy, got %+v", rep.Costs)
	}
	for _, c := range rep.Costs {
		if c.MainTPS <= 0 || c.BranchTP <= 0 || c.IdleRSS <= 0 || c.IdlePSS <= 0 || len(c.DiskAfter) == 0 {
			t.Errorf("%s: cost not measured: %+v", c.Driver, c)
		}
	}
	csv, err := os.ReadFile(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csv), bench.DumpRestor) || !strings.Contains(string(csv), "btrfs,10,") {
		t.Errorf("results.csv lacks rows:\n%s", csv)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || !strings.Contains(string(md), bench.Template) {
		t.Errorf("results.md: %v\n%s", err, md)
	}
	png, err := os.ReadFile(filepath.Join(out, "chart.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("chart.png is not a PNG: %v", err)
	}
	if !strings.Contains(stdout.String(), bench.VeloCreate) {
		t.Errorf("the table is not printed:\n%s", stdout.String())
	}
	// Nothing left behind: the pools are unmounted and the work emptied.
	if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), work) {
		t.Errorf("a pool under %s is still mounted", work)
	}
}

// TestBadFlags: a wrong flag is a usage error, exit 2, naming the flag,
// before anything is made.
func TestBadFlags(t *testing.T) {
	_, veloBench := build(t)
	parent, err := os.MkdirTemp("", "velo-bench-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(parent, "work")
	private := filepath.Join(t.TempDir(), "work") // t.TempDir is 0700
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sizes", "5MB"}, "--sizes"},
		{[]string{"--sizes", "lots"}, "--sizes"},
		{[]string{"--drivers", "ext4"}, "--drivers"},
		{[]string{"--reps", "0"}, "--reps"},
		{[]string{"--branches", "-1"}, "--branches"},
		{[]string{"--tps-time", "10ms"}, "--tps-time"},
		{[]string{"--tps-rounds", "0"}, "--tps-rounds"},
		{[]string{"--serve-only", "--in-use", "0"}, "--in-use"},
		{[]string{"--serve-only", "--branches", "5", "--in-use", "6"}, "--in-use"},
		{[]string{"--work", private}, "cannot pass through"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		cmd := exec.Command(veloBench, append([]string{"--work", work}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("velo-bench %v: want exit 2 saying %q, got %v: %s", tc.args, tc.want, err, out)
		}
		for _, dir := range []string{work, private} {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("velo-bench %v made %s", tc.args, dir)
			}
		}
	}
}
