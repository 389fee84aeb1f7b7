package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

func newBranchCommand(g *Globals) *cobra.Command {
	return groupCommand("branch", []string{"br"}, "Create, reset, start, stop and delete branches",
		newBranchCreateCommand(g), newBranchListCommand(g), newBranchGetCommand(g), newBranchDeleteCommand(g),
		newBranchResetCommand(g), newBranchPasswordCommand(g), newBranchEnvCommand(g), newBranchStartCommand(g), newBranchStopCommand(g), newBranchRestartCommand(g),
		newBranchProtectCommand(g, true), newBranchProtectCommand(g, false), newBranchSetCommand(g),
		newBranchRenameCommand(g), newBranchPromoteCommand(g), newBranchRestoreCommand(g))
}

// branchCreateOptions are the flags of velo branch create.
type branchCreateOptions struct {
	Parent, PITR string
	FromSnapshot string
	IfNotExists  bool
	Expiry       engine.ExpiryOptions
	NewPassword  bool
	Mask         string
	JSON         bool
}

func (o *branchCreateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Parent, "parent", "", "branch to copy (default PROJECT/main)")
	fs.StringVar(&o.PITR, "pitr", "", "recover to a point in time (RFC 3339 or '2 hours ago') or an LSN (0/3000060)")
	fs.StringVar(&o.FromSnapshot, "from-snapshot", "", "clone this snapshot (ID or unique prefix, as velo snapshot list shows) instead of the parent's current data")
	fs.BoolVar(&o.IfNotExists, "if-not-exists", false, "succeed, changing nothing, when the branch exists with the same parent (a rerun CI job)")
	expiryFlags(fs, &o.Expiry)
	fs.BoolVar(&o.NewPassword, "new-password", false, "give the branch a superuser password of its own, set before it takes a login (default: its parent's, which is in the copied data)")
	fs.StringVar(&o.Mask, "mask", "", "mask the branch with this SQL file before it takes any connection from outside (default: the project's, velo project set --mask)")
	jsonFlag(fs, &o.JSON)
}

func newBranchCreateCommand(g *Globals) *cobra.Command {
	var o branchCreateOptions
	c := &cobra.Command{
		Use:   "create PROJECT/BRANCH",
		Short: "Create a branch: a running copy of its parent's current data",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchCreate(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchCreate(ctx context.Context, g *Globals, o branchCreateOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	conn, err := e.CreateBranch(ctx, engine.CreateBranchOptions{Ref: ref, Parent: o.Parent, PITR: o.PITR, IfNotExists: o.IfNotExists, Expiry: o.Expiry, NewPassword: o.NewPassword, FromSnapshot: o.FromSnapshot, Mask: o.Mask})
	if err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, ref, func(w io.Writer) { printConn(w, conn) })
}

// printBranchResult ends a command that changed a branch: under --json
// the branch as branch get shows it (without the sizes that walk its
// files: branch get has them), else text.
func printBranchResult(ctx context.Context, p *ui.Printer, e *engine.Engine, ref string, text func(io.Writer)) error {
	if !p.JSON() {
		text(p.Out())
		return nil
	}
	b, err := e.BranchWithoutSizes(ctx, ref)
	if err != nil {
		return err
	}
	return p.Document(view.NewBranch(b))
}

// branchListOptions are the flags of velo branch list.
type branchListOptions struct {
	JSON, Sizes, Quiet bool
}

func (o *branchListOptions) AddFlags(fs *pflag.FlagSet) {
	jsonFlag(fs, &o.JSON)
	fs.BoolVarP(&o.Sizes, "size", "s", false, sizeFlagHelp)
	quietFlag(fs, &o.Quiet, "the branches' names (PROJECT/BRANCH)")
}

func newBranchListCommand(g *Globals) *cobra.Command {
	var o branchListOptions
	c := &cobra.Command{
		Use:     "list [PROJECT]",
		Aliases: []string{"ls"},
		Short:   "List branches",
		Args:    maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			project, err := optionalArg(args, validateProject)
			if err != nil {
				return err
			}
			return runBranchList(c.Context(), g, o, project)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchList(ctx context.Context, g *Globals, o branchListOptions, project string) error {
	if err := checkQuiet(o.Quiet, o.JSON); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	bs, err := e.Branches(ctx, project, o.Sizes && !o.Quiet)
	if err != nil {
		return err
	}
	return p.Result(view.NewBranches(bs), func(w io.Writer) {
		switch {
		case o.Quiet:
			for _, b := range bs {
				fmt.Fprintln(w, b.Name)
			}
		case len(bs) == 0:
			fmt.Fprintln(w, "No branches. Create a project with: velo project create NAME")
		default:
			branchTable(bs).Render(w)
		}
	})
}

func branchTable(bs []engine.BranchInfo) ui.Table {
	t := ui.Table{Header: []string{"Branch", "Parent", "State", "Port", "Size", "Created"}}
	for _, b := range bs {
		t.Rows = append(t.Rows, []string{b.Name, dash(b.Parent), stateText(b), fmt.Sprint(b.Port), sizeText(b.Exclusive), b.CreatedAt.Local().Format(time.DateTime)})
	}
	return t
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// idleText is how long velo serve lets a branch idle, and why.
func idleText(b engine.BranchInfo) string {
	s := "never suspended"
	if b.Idle > 0 {
		s = "suspended by velo serve after " + engine.IdleText(b.Idle) + " without clients"
	}
	switch b.IdleFrom {
	case engine.IdleFromProject:
		s += " (the project's default)"
	case engine.IdleFromMain:
		s += " (main takes no project default)"
	}
	return s
}

func stateText(b engine.BranchInfo) string {
	s := b.State
	if b.State == "running" && !b.StartedAt.IsZero() {
		s = "running " + ui.Age(time.Since(b.StartedAt))
	}
	if b.SuspendedAt != nil {
		s = "suspended " + ui.Age(time.Since(*b.SuspendedAt))
	}
	if b.Protected {
		s += ", protected"
	}
	if b.ExpiresAt != nil {
		s += ", " + expiryText(b)
	}
	return s
}

// jsonOptions are the flags of a command whose only flag is --json.
type jsonOptions struct{ JSON bool }

func (o *jsonOptions) AddFlags(fs *pflag.FlagSet) { jsonFlag(fs, &o.JSON) }

func newBranchGetCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "get PROJECT/BRANCH",
		Short: "Show a branch: its server, space, and where its files are",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchGet(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchGet(ctx context.Context, g *Globals, o jsonOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	b, err := e.Branch(ctx, ref)
	if err != nil {
		return err
	}
	return p.Result(view.NewBranch(b), func(w io.Writer) { printBranch(w, b) })
}

func printBranch(w io.Writer, b engine.BranchInfo) {
	fmt.Fprintf(w, "Branch:     %s\nParent:     %s\nState:      %s\nPort:       %d\nURL:        %s\nOne port:   %s (velo serve)\n            %s (TLS)\nIdle:       %s\nSize:       %s exclusive, %s referenced\nCreated:    %s\n",
		b.Name, dash(b.Parent), stateText(b), b.Port, b.URL, b.RouterURL, b.RouterTLSURL, idleText(b), sizeText(b.Exclusive), sizeText(b.Reference), b.CreatedAt.Local().Format(time.DateTime))
	if b.Masked {
		fmt.Fprintf(w, "Masked:     yes\n")
	}
	if b.PITRLSN != "" {
		fmt.Fprintf(w, "PITR:       LSN %s, from snapshot %s\n", b.PITRLSN, b.SourceSnapshot)
	}
	if b.PITRTarget != nil {
		fmt.Fprintf(w, "PITR:       %s, from snapshot %s\n", b.PITRTarget.UTC().Format("2006-01-02 15:04:05.000000 UTC"), b.SourceSnapshot)
	}
	if b.Protected {
		fmt.Fprintf(w, "Protected:  yes (velo branch unprotect %s to allow delete, reset and expiry)\n", b.Name)
	}
	if b.ExpiresAt != nil {
		fmt.Fprintf(w, "Expires:    %s (%s)\n", b.ExpiresAt.UTC().Format(time.RFC3339), expiryText(b))
	}
	if b.CACert != "" {
		fmt.Fprintf(w, "TLS CA:     %s\n", b.CACert)
	}
	fmt.Fprintf(w, "Data:       %s\nSockets:    %s\nLog:        %s\n", dash(b.DataDir), b.SocketDir, b.LogFile)
	if b.Problem != "" {
		fmt.Fprintf(w, "Problem:    %s\n", b.Problem)
	}
}

// forceOptions are the flags of the deletes (--force) and of reset
// (--force, --json).
type forceOptions struct {
	Force bool
	JSON  bool
}

// AddFlags defines --force, which does what force says, and --json when
// the command prints a result.
func (o *forceOptions) AddFlags(fs *pflag.FlagSet, force string, withJSON bool) {
	fs.BoolVar(&o.Force, "force", false, force)
	if withJSON {
		jsonFlag(fs, &o.JSON)
	}
}

func newBranchDeleteCommand(g *Globals) *cobra.Command {
	var o forceOptions
	c := &cobra.Command{
		Use:     "delete PROJECT/BRANCH",
		Aliases: []string{"rm"},
		Short:   "Delete a branch, its server and its data",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runBranchDelete(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags(), "also delete the branch's descendants", false)
	return c
}

func runBranchDelete(ctx context.Context, g *Globals, o forceOptions, ref string) error {
	p, e, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.DeleteBranch(ctx, ref, o.Force); err != nil {
		return err
	}
	p.Printf("Deleted branch %s\n", ref)
	return nil
}

func newBranchResetCommand(g *Globals) *cobra.Command {
	var o forceOptions
	c := &cobra.Command{
		Use:   "reset PROJECT/BRANCH",
		Short: "Replace a branch's data with its parent's current data (like git reset --hard)",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchReset(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags(), "reset even though the branch has descendants", true)
	return c
}

func runBranchReset(ctx context.Context, g *Globals, o forceOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.ResetBranch(ctx, ref, o.Force); err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, ref, func(w io.Writer) { fmt.Fprintf(w, "Reset branch %s\n", ref) })
}

func newBranchPasswordCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:     "password PROJECT/BRANCH",
		Aliases: []string{"pass"},
		Short:   "Show a branch's connection details with its password",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runBranchPassword(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchPassword(ctx context.Context, g *Globals, o jsonOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	c, err := e.Password(ctx, ref)
	if err != nil {
		return err
	}
	return p.Result(view.NewConn(c), func(w io.Writer) {
		fmt.Fprintf(w, "Branch:   %s\nHost:     %s\nPort:     %d\nUser:     %s\nPassword: %s\nDatabase: %s\nURL:      %s\nOne port: %s (velo serve)\n          %s (TLS)\n", c.Branch, c.Host, c.Port, c.User, c.Password, c.Database, c.URL, c.RouterURL, c.RouterTLSURL)
		if c.CACert != "" {
			fmt.Fprintf(w, "TLS CA:   %s\n", c.CACert)
		}
	})
}

// serverOptions are the flags of branch start and stop.
type serverOptions struct {
	All, JSON bool
}

func (o *serverOptions) AddFlags(fs *pflag.FlagSet, all string) {
	fs.BoolVar(&o.All, "all", false, all)
	jsonFlag(fs, &o.JSON)
}

// check refuses a branch and --all together, or neither; every says what
// --all takes.
func (o serverOptions) check(verb, every string, args []string) error {
	switch {
	case !o.All && len(args) == 0:
		return usageError{fmt.Errorf("name the branch to %s (velo branch %s P/B), or give --all to %s every branch %s", verb, verb, verb, every)}
	case o.All && len(args) == 1:
		return usageError{fmt.Errorf("name a branch (velo branch %s P/B) or give --all, not both", verb)}
	}
	return nil
}

func newBranchStartCommand(g *Globals) *cobra.Command {
	var o serverOptions
	c := &cobra.Command{
		Use:   "start PROJECT/BRANCH | --all",
		Short: "Start a branch's server; --all starts every branch left running (after a reboot)",
		Args:  maxArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchStart(c.Context(), g, o, args) },
	}
	o.AddFlags(c.Flags(), "start every branch that was running (it was not stopped with velo branch stop)")
	return c
}

func runBranchStart(ctx context.Context, g *Globals, o serverOptions, args []string) error {
	if err := o.check("start", "left running", args); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if o.All {
		res, err := e.StartAll(ctx)
		if perr := p.Result(view.NewStartResults(res), func(w io.Writer) {
			printServerResults(w, res, "%s: started on port %d\n", "%s: already running on port %d\n")
		}); perr != nil {
			return perr
		}
		return err
	}
	conn, already, err := e.StartBranch(ctx, args[0])
	if err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, args[0], func(w io.Writer) {
		if already {
			fmt.Fprintf(w, "%s is already running on port %d\n", args[0], conn.Port)
			return
		}
		printConn(w, conn)
	})
}

// printServerResults prints what start --all or stop --all did, with the
// line formats (branch, port) of a change and of none.
func printServerResults(w io.Writer, res []engine.ServerResult, changed, already string) {
	for _, r := range res {
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "%s: failed: %s\n", r.Branch, r.Error)
		case r.Changed:
			fmt.Fprintf(w, changed, r.Branch, r.Port)
		default:
			fmt.Fprintf(w, already, r.Branch, r.Port)
		}
	}
}

func newBranchStopCommand(g *Globals) *cobra.Command {
	var o serverOptions
	c := &cobra.Command{
		Use:   "stop PROJECT/BRANCH | --all",
		Short: "Stop a branch's server; its data stays. --all stops every running branch",
		Args:  maxArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchStop(c.Context(), g, o, args) },
	}
	o.AddFlags(c.Flags(), "stop every running branch (start --all then leaves them stopped)")
	return c
}

func runBranchStop(ctx context.Context, g *Globals, o serverOptions, args []string) error {
	if err := o.check("stop", "running", args); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if o.All {
		res, err := e.StopAll(ctx)
		if perr := p.Result(view.NewStopResults(res), func(w io.Writer) {
			printServerResults(w, res, "%s: stopped (port %d)\n", "%s: already stopped (port %d)\n")
		}); perr != nil {
			return perr
		}
		return err
	}
	already, err := e.StopBranch(ctx, args[0])
	if err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, args[0], func(w io.Writer) {
		if already {
			fmt.Fprintf(w, "%s is already stopped\n", args[0])
		} else {
			fmt.Fprintf(w, "Stopped %s\n", args[0])
		}
	})
}

func newBranchRestartCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "restart PROJECT/BRANCH",
		Short: "Restart a branch's server",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchRestart(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchRestart(ctx context.Context, g *Globals, o jsonOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	conn, err := e.RestartBranch(ctx, ref)
	if err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, ref, func(w io.Writer) { printConn(w, conn) })
}
