// Package cli is Velo's command line: one file per noun, in restic's
// style. Each command is a newXCommand that builds the cobra command, an
// xOptions struct whose AddFlags defines its flags, and a runX(ctx, g,
// opts, args...) that does the work with no cobra types, so that tests call
// it directly. Output goes through a ui.Printer: text or one JSON document
// of internal/view on stdout, progress and warnings on stderr.
package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/ui"
)

// Version is set at build time.
var Version = "dev"

// Globals are what every command shares: where output goes, the command
// line, and the parts cmd/velo builds for the engine.
type Globals struct {
	Stdout, Stderr io.Writer
	Args           []string
	// Runtime runs the branches' servers (native.New()).
	Runtime runtime.Runtime
	// Pools builds the storage drivers (drivers.Pools{}).
	Pools engine.Pools
	// Containers connects to the Docker engine for projects made with
	// --image.
	Containers engine.ConnectContainers
	// Steps prints a changing command's steps on Stderr under --json too:
	// the HTTP API runs commands with it and streams them (serve.go).
	Steps bool
}

// Home is VELO_HOME, default ~/.velo.
func Home() (string, error) {
	if h := os.Getenv("VELO_HOME"); h != "" {
		if !filepath.IsAbs(h) {
			abs, err := filepath.Abs(h)
			if err != nil {
				return "", err
			}
			h = abs
		}
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the home directory (%v); set VELO_HOME", err)
	}
	return filepath.Join(home, ".velo"), nil
}

// printer is a command's output: JSON or text on stdout; progress on
// stderr unless the output is JSON or quiet (read commands); warnings on
// stderr always.
func (g *Globals) printer(asJSON, quiet bool) *ui.Printer {
	if g.Steps {
		return ui.NewStepsPrinter(g.Stdout, g.Stderr, asJSON, quiet)
	}
	return ui.NewPrinter(g.Stdout, g.Stderr, asJSON, quiet)
}

// open opens the engine for a command, and the printer it prints with
// (JSON or text; quiet progress for a read command): the one place a
// command gets them, with the home, the runtime and pools cmd/velo built.
// The caller closes the engine.
func (g *Globals) open(ctx context.Context, asJSON, quiet bool) (*ui.Printer, *engine.Engine, error) {
	p := g.printer(asJSON, quiet)
	cfg, err := g.config(p)
	if err != nil {
		return nil, nil, err
	}
	e, err := engine.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return p, e, nil
}

// config is the engine's configuration for a command printing with p:
// the home, the runtime and pools cmd/velo built, and the command line
// (secrets redacted) its journal entries name.
func (g *Globals) config(p *ui.Printer) (engine.Config, error) {
	home, err := Home()
	if err != nil {
		return engine.Config{}, err
	}
	return engine.Config{Home: home, Runtime: g.Runtime, Pools: g.Pools, Containers: g.Containers, Progress: p.Progress(), Command: "velo " + strings.Join(redactArgs(g.Args), " ")}, nil
}

// NewRoot builds the velo command tree.
func NewRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "velo",
		Short: "Postgres with instant branching",
		Long: `Velo gives PostgreSQL git-like branches on one Linux host: every branch is a
full, writable copy of its parent's data made by a copy-on-write clone, running
as its own Postgres server.`,
		Version:       versionLine(buildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Unknown commands, flags and help topics, and empty flag values,
		// are refused with exit code 2 and the input quoted (input.go).
		Args:              unknownSubcommand,
		RunE:              showHelp,
		PersistentPreRunE: requireValues,
	}
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetVersionTemplate("{{.Version}}")
	root.AddCommand(newProjectCommand(g), newBranchCommand(g), newSnapshotCommand(g), newWALCommand(g), newDiffCommand(g), newStatusCommand(g), newPruneCommand(g), newDoctorCommand(g), newSetupCommand(g), newServiceFileCommand(g), newServeCommand(g), newVersionCommand(g), newManCommand(g), newTokenCommand(g), newUICommand(g))
	root.SetHelpCommand(newHelpCommand(root))
	strictCompletion(root)
	completeNames(g, root)
	suggest(root)
	explainErrors(root)
	return root
}

// explainErrors passes every command's error through explain, which knows
// what the layers below cannot: where VELO_HOME is.
func explainErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error { return explain(run(c, args)) }
	}
	for _, sub := range c.Commands() {
		explainErrors(sub)
	}
}

// explain says "the disk is full, here" for a failure to write the state
// that a full VELO_HOME caused (SQLite says only "disk I/O error").
func explain(err error) error {
	if err == nil {
		return nil
	}
	home, herr := Home()
	if herr != nil {
		return err
	}
	return state.DiskFull(err, home)
}

// suggest makes every group offer "did you mean" for a mistyped
// subcommand within two edits (unknownSubcommand asks; cobra only sets
// the distance itself on the path it takes without an Args function).
func suggest(c *cobra.Command) {
	c.SuggestionsMinimumDistance = 2
	for _, sub := range c.Commands() {
		suggest(sub)
	}
}

// usageError is bad usage, of kind errdefs.ErrUsage (exit code 2). Every
// refusal of the command line is made one where cobra makes it: the flag
// error func (flagError), the Args validators (exactArgs, maxArgs,
// unknownSubcommand) and the help topic; never told by cobra's text.
type usageError struct{ error }

func (u usageError) Unwrap() []error { return []error{errdefs.ErrUsage, u.error} }

// exactArgs is cobra.ExactArgs with a message that shows the usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d; usage: %s", c.CommandPath(), n, len(args), c.UseLine())}
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Errorf("%s takes at most %d argument(s), got %d; usage: %s", c.CommandPath(), n, len(args), c.UseLine())}
		}
		return nil
	}
}

// groupCommand is a noun whose bare use shows its help, and whose unknown
// subcommands are usage errors.
func groupCommand(use string, aliases []string, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   short,
		Args:    unknownSubcommand,
		RunE:    showHelp,
	}
	c.AddCommand(subs...)
	return c
}

// jsonFlag is --json, which every command that prints a result takes.
func jsonFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print one JSON document on stdout")
}

// quietFlag is -q/--quiet on list commands.
func quietFlag(fs *pflag.FlagSet, p *bool, what string) {
	fs.BoolVarP(p, "quiet", "q", false, "print only "+what+", one a line")
}

// checkQuiet refuses --quiet beside --json.
func checkQuiet(quiet, asJSON bool) error {
	if quiet && asJSON {
		return usageError{fmt.Errorf("--quiet prints names and --json a document: give one of them")}
	}
	return nil
}

var passwordSetting = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactArgs masks the passwords a SOURCE argument may hold (a URL's, or a
// password= setting) in the command line that the journal and the lock
// record and that doctor shows.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if j := strings.Index(a, "://"); j >= 0 {
			if u, err := url.Parse(a[strings.LastIndexAny(a[:j], "= ")+1:]); err == nil && u.User != nil {
				if _, has := u.User.Password(); has {
					prefix := a[:strings.LastIndexAny(a[:j], "= ")+1]
					u.User = url.UserPassword(u.User.Username(), "xxx")
					a = prefix + strings.Replace(u.String(), ":xxx@", ":***@", 1)
				}
			}
		}
		out[i] = passwordSetting.ReplaceAllString(a, "${1}***")
	}
	return out
}
