package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/errdefs"
)

// run executes velo with args in a fresh VELO_HOME and returns the error
// and whether the home was touched.
func run(t *testing.T, args ...string) (error, bool) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	t.Setenv("VELO_HOME", home)
	var out, errb bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &errb, Args: args}
	root := NewRoot(g)
	root.SetArgs(args)
	err := root.Execute()
	_, statErr := os.Stat(home)
	return err, statErr == nil
}

// commands lists every command of the tree by its path below velo.
func commands(c *cobra.Command, path []string, f func(c *cobra.Command, path []string)) {
	f(c, path)
	for _, sub := range c.Commands() {
		commands(sub, append(append([]string{}, path...), sub.Name()), f)
	}
}

// TestUsageErrorsByType: every refusal of the command line, by cobra or
// by Velo, is of kind errdefs.ErrUsage and touches nothing, whatever its
// text: unknown commands, flags and shorthands, a flag without its value
// or of the wrong type, too many arguments, an unknown help topic.
func TestUsageErrorsByType(t *testing.T) {
	root := NewRoot(&Globals{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	var cases [][]string
	commands(root, nil, func(c *cobra.Command, path []string) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Args == nil {
			// cobra's default takes any argument of a leaf command.
			t.Errorf("velo %s has no Args validator", strings.Join(path, " "))
		}
		cases = append(cases,
			append(append([]string{}, path...), "--bogus"),
			append(append([]string{}, path...), "-Z"),
			append(append([]string{}, path...), "a", "b", "c", "d", "e", "f"),
		)
		if c.HasSubCommands() {
			cases = append(cases, append(append([]string{}, path...), "nosuchcommand"))
		}
	})
	cases = append(cases,
		[]string{"help", "nosuchtopic"},
		[]string{"snapshot", "cleanup", "--days"},
		[]string{"snapshot", "cleanup", "--days", "many"},
		[]string{"project", "create", "x", "--pool", ""},
		[]string{"branch", "create"},
		[]string{"--=x"},
	)
	for _, args := range cases {
		err, touched := run(t, args...)
		if !errors.Is(err, errdefs.ErrUsage) || errdefs.Of(err) != errdefs.ErrUsage {
			t.Errorf("velo %s: %v; want an error of kind ErrUsage", strings.Join(args, " "), err)
		}
		if touched {
			t.Errorf("velo %s made VELO_HOME", strings.Join(args, " "))
		}
	}
}

// TestUsageNotByText: an error that merely reads like cobra's is not
// bad usage.
func TestUsageNotByText(t *testing.T) {
	if errors.Is(errors.New(`unknown command "x"`), errdefs.ErrUsage) {
		t.Error("an error was told to be bad usage by its text")
	}
	if err := (usageError{errors.New("x")}); !errors.Is(err, errdefs.ErrUsage) || err.Error() != "x" {
		t.Errorf("usageError %q: want kind ErrUsage and its own text", err)
	}
}
