package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/state"
)

// TestCompletion: the shell's completion request (velo __complete ...)
// is answered with the names in the state, and no home is made for it.
func TestCompletion(t *testing.T) {
	g, out, _ := testGlobals(t)
	complete := func(args ...string) []string {
		t.Helper()
		out.Reset()
		root := NewRoot(g)
		root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[:len(lines)-1] // the last line is the directive
	}
	if got := complete("branch", "get", ""); len(got) != 0 {
		t.Errorf("no home: %v", got)
	}
	home, _ := Home()
	st, err := state.Open(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	err = st.Tx(ctx, func(tx *state.Tx) error {
		for _, p := range []state.Project{{ID: "p1", Name: "demo", Driver: "copy", Pool: "/x", PGMajor: 17, CreatedAt: now}, {ID: "p2", Name: "shop", Driver: "copy", Pool: "/x", PGMajor: 17, CreatedAt: now}} {
			if err := tx.InsertProject(ctx, p); err != nil {
				return err
			}
		}
		for _, b := range []state.Branch{{ID: "b1", ProjectID: "p1", Name: "main", VolumeID: "v1", Port: 1, CreatedAt: now}, {ID: "b2", ProjectID: "p1", Name: "dev", ParentID: "b1", VolumeID: "v2", Port: 2, CreatedAt: now}, {ID: "b3", ProjectID: "p2", Name: "main", VolumeID: "v3", Port: 3, CreatedAt: now}} {
			if err := tx.InsertBranch(ctx, b); err != nil {
				return err
			}
		}
		return tx.InsertSnapshot(ctx, "p1", state.Snapshot{ID: "s0123456789ab", BranchID: "b1", VolumeID: "v1", User: true, CreatedAt: now})
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"branch", "get", ""}, "demo/dev demo/main shop/main"},
		{[]string{"branch", "get", "demo/"}, "demo/dev demo/main"},
		{[]string{"br", "rm", "s"}, "shop/main"},
		{[]string{"branch", "get", "demo/dev", ""}, ""},
		{[]string{"project", "get", ""}, "demo shop"},
		{[]string{"branch", "create", ""}, "demo/ shop/"},
		{[]string{"branch", "create", "demo/x", "--parent", "demo/"}, "demo/dev demo/main"},
		{[]string{"snapshot", "delete", ""}, "s0123456789ab"},
		{[]string{"wal", "info", "sh"}, "shop shop/main"},
	} {
		got := complete(c.args...)
		slices.Sort(got)
		if strings.Join(got, " ") != c.want {
			t.Errorf("velo %s<TAB>: %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
}

// TestCompletionScripts: velo completion SHELL prints a script that
// completes through velo __complete.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		root := NewRoot(&Globals{Stdout: &out, Stderr: &bytes.Buffer{}})
		root.SetArgs([]string{"completion", sh})
		if err := root.Execute(); err != nil || !strings.Contains(out.String(), "__complete") {
			t.Errorf("completion %s: %v\n%.200s", sh, err, out.String())
		}
	}
}

// TestEveryArgumentCompletes: every command that takes a name of the
// state completes it (a new command gets an entry in completes).
func TestEveryArgumentCompletes(t *testing.T) {
	// wal fetch takes Postgres's %f and %p, no names of the state.
	newNames := map[string]bool{"project create": true, "help": true, "wal fetch": true}
	commands(NewRoot(&Globals{}), nil, func(c *cobra.Command, path []string) {
		p := strings.Join(path, " ")
		if c.HasSubCommands() || newNames[p] || !strings.ContainsAny(c.Use, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") || strings.HasPrefix(p, "completion") || p == "setup" || p == "doctor" {
			return
		}
		if c.ValidArgsFunction == nil {
			t.Errorf("velo %s (%s) completes no names: add it to completes", p, c.Use)
		}
	})
}
