package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/api"
	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
)

// testGlobals is a home of its own with output in buffers.
func testGlobals(t *testing.T) (*Globals, *bytes.Buffer, *bytes.Buffer) {
	t.Setenv("VELO_HOME", t.TempDir())
	var out, errb bytes.Buffer
	return &Globals{Stdout: &out, Stderr: &errb, Runtime: native.New(), Pools: drivers.Pools{}}, &out, &errb
}

// jsonCommands are the commands that print JSON with --json; every other
// command refuses --json (TestJSONHonouredOrRefused).
var jsonCommands = map[string]bool{
	"project create": true, "project list": true, "project get": true,
	"branch create": true, "branch list": true, "branch get": true, "branch reset": true, "branch password": true,
	"branch start": true, "branch stop": true, "branch restart": true,
	"branch protect": true, "branch unprotect": true, "branch set": true, "prune": true, "branch rename": true, "branch promote": true, "branch restore": true,
	"snapshot create": true, "snapshot list": true, "snapshot cleanup": true, "snapshot push": true,
	"wal info": true, "wal cleanup": true, "wal push": true, "project set": true, "diff": true, "status": true, "doctor": true, "version": true, "token list": true,
}

// TestJSONHonouredOrRefused: every command either takes --json (and is
// listed above, so that test/e2e TestJSON runs it) or refuses it as bad
// usage before doing anything.
func TestJSONHonouredOrRefused(t *testing.T) {
	g, _, _ := testGlobals(t)
	root := NewRoot(g)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			for _, s := range c.Commands() {
				walk(s)
			}
			return
		}
		path := strings.TrimPrefix(c.CommandPath(), "velo ")
		if c.Flags().Lookup("json") != nil {
			if !jsonCommands[path] {
				t.Errorf("velo %s takes --json but is not in jsonCommands (add it, and to test/e2e TestJSON)", path)
			}
			return
		}
		if jsonCommands[path] {
			t.Errorf("velo %s has no --json", path)
		}
		root := NewRoot(g)
		root.SetArgs(append(strings.Fields(path), "--json"))
		if err := root.ExecuteContext(context.Background()); err == nil || !errors.Is(err, errdefs.ErrUsage) {
			t.Errorf("velo %s --json: %v; want a usage error", path, err)
		}
	}
	walk(root)
}

// TestReadCommandsJSONOnEmptyHome runs the read commands' runX on a new
// home: each prints one document, with empty lists rather than null.
func TestReadCommandsJSONOnEmptyHome(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		run  func(*Globals) error
		want string
	}{
		"project list":  {func(g *Globals) error { return runProjectList(ctx, g, listOptions{JSON: true}) }, "[]"},
		"branch list":   {func(g *Globals) error { return runBranchList(ctx, g, branchListOptions{JSON: true}, "") }, "[]"},
		"snapshot list": {func(g *Globals) error { return runSnapshotList(ctx, g, listOptions{JSON: true}, "") }, "[]"},
		"wal info":      {func(g *Globals) error { return runWALInfo(ctx, g, jsonOptions{JSON: true}, "") }, "[]"},
		"status":        {func(g *Globals) error { return runStatus(ctx, g, statusOptions{JSON: true}) }, `{"pools":[],"projects":[]}`},
	} {
		g, out, errb := testGlobals(t)
		if err := c.run(g); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, out.Bytes()); err != nil || compact.String() != c.want {
			t.Errorf("%s --json = %q (%v), want %s", name, out.String(), err, c.want)
		}
		if errb.Len() != 0 {
			t.Errorf("%s --json wrote to stderr: %q", name, errb.String())
		}
	}
}

// TestFlagRules: flags that contradict each other are refused as usage,
// before a home is touched.
func TestFlagRules(t *testing.T) {
	ctx := context.Background()
	for name, run := range map[string]func(*Globals) error{
		"list --quiet --json":       func(g *Globals) error { return runProjectList(ctx, g, listOptions{JSON: true, Quiet: true}) },
		"branch list -q --json":     func(g *Globals) error { return runBranchList(ctx, g, branchListOptions{JSON: true, Quiet: true}, "") },
		"start with neither":        func(g *Globals) error { return runBranchStart(ctx, g, serverOptions{}, nil) },
		"start with both":           func(g *Globals) error { return runBranchStart(ctx, g, serverOptions{All: true}, []string{"a/b"}) },
		"stop with neither":         func(g *Globals) error { return runBranchStop(ctx, g, serverOptions{}, nil) },
		"snapshot cleanup no days":  func(g *Globals) error { return runSnapshotCleanup(ctx, g, snapshotCleanupOptions{}, "") },
		"wal cleanup no days":       func(g *Globals) error { return runWALCleanup(ctx, g, cleanupOptions{}, "a/b") },
		"doctor dry run alone":      func(g *Globals) error { return runDoctor(ctx, g, doctorOptions{DryRun: true}) },
		"setup size without a file": func(g *Globals) error { return runSetup(ctx, g, setupOptions{given: map[string]bool{"size": true}}) },
		"archive timeout 0": func(g *Globals) error {
			return runProjectCreate(ctx, g, projectCreateOptions{ArchiveTimeoutSet: true}, "p")
		},
	} {
		g, out, _ := testGlobals(t)
		err := run(g)
		if !errors.Is(err, errdefs.ErrUsage) && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v; want a usage error", name, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s printed %q", name, out.String())
		}
	}
}

// wide is a buffer that draws tables as a terminal (with boxes).
type wide struct{ bytes.Buffer }

func (*wide) Terminal() bool { return true }

// TestStatusFits80Columns draws a status of names of typical length, on a
// terminal and piped: no line is wider than 80 columns.
func TestStatusFits80Columns(t *testing.T) {
	size := int64(123_456_789)
	now := time.Now()
	b := func(name, parent string) engine.BranchInfo {
		return engine.BranchInfo{Name: name, Parent: parent, State: "running", StartedAt: now.Add(-50 * time.Hour), Port: 29999, Exclusive: &size, CreatedAt: now.Add(-400 * 24 * time.Hour)}
	}
	rep := engine.StatusReport{
		Pools: []engine.PoolInfo{{Storage: "btrfs", PoolStats: storage.PoolStats{Name: "/var/lib/velo/data", Size: 500 << 30, Used: 123 << 30, Free: 377 << 30, Health: "ONLINE"}}},
		Projects: []engine.ProjectStatus{{ProjectInfo: engine.ProjectInfo{Name: "shop", PGMajor: 17, Branches: 3, CreatedAt: now},
			BranchList: []engine.BranchInfo{b("shop/main", ""), b("shop/feature-x", "shop/main"), b("shop/fix-123", "shop/feature-x")}}},
	}
	for _, w := range []interface {
		io.Writer
		String() string
	}{&wide{}, &bytes.Buffer{}} {
		printStatus(w, rep)
		for _, line := range strings.Split(w.String(), "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("%d columns: %s", n, line)
			}
		}
	}
}

// TestAPICoversCommands: every command has an endpoint of the HTTP API,
// or is listed in internal/api as having none on purpose.
func TestAPICoversCommands(t *testing.T) {
	g, _, _ := testGlobals(t)
	have := api.Commands()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "velo"), " ")
		if !c.HasSubCommands() {
			if !have[path] {
				t.Errorf("velo %s has no endpoint in internal/api routes (nor a reason in notRouted)", path)
			}
			return
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(NewRoot(g))
}
