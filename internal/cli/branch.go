package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
)

func newBranchCommand(g *Globals) *cobra.Command {
	c := groupCommand("branch", []string{"br"}, "Create, reset, start, stop and delete branches")
	c.AddCommand(newBranchCreateCommand(g), newBranchListCommand(g), newBranchGetCommand(g), newBranchDeleteCommand(g),
		newBranchResetCommand(g), newBranchPasswordCommand(g), newBranchStartCommand(g), newBranchStopCommand(g), newBranchRestartCommand(g))
	return c
}

func newBranchCreateCommand(g *Globals) *cobra.Command {
	var o engine.CreateBranchOptions
	c := &cobra.Command{
		Use:   "create PROJECT/BRANCH",
		Short: "Create a branch: a running copy of its parent's current data",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Ref = args[0]
			return runBranchCreate(c.Context(), g, o)
		},
	}
	c.Flags().StringVar(&o.Parent, "parent", "", "branch to copy (default PROJECT/main)")
	c.Flags().StringVar(&o.PITR, "pitr", "", "recover to a point in time (RFC 3339 or '2 hours ago')")
	return c
}

func runBranchCreate(ctx context.Context, g *Globals, o engine.CreateBranchOptions) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	conn, err := e.CreateBranch(ctx, o)
	if err != nil {
		return err
	}
	printConn(g.Stdout, conn)
	return nil
}

func newBranchListCommand(g *Globals) *cobra.Command {
	var asJSON, sizes bool
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
			return runBranchList(c.Context(), g, project, asJSON, sizes)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVarP(&sizes, "size", "s", false, sizeFlagHelp)
	return c
}

func runBranchList(ctx context.Context, g *Globals, project string, asJSON, sizes bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	bs, err := e.Branches(ctx, project, sizes)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, bs)
	}
	if len(bs) == 0 {
		fmt.Fprintln(g.Stdout, "No branches. Create a project with: velo project create NAME")
		return nil
	}
	branchTable(bs).Render(g.Stdout)
	return nil
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

func stateText(b engine.BranchInfo) string {
	if b.State == "running" && !b.StartedAt.IsZero() {
		return "running | " + ui.Age(time.Since(b.StartedAt))
	}
	return b.State
}

func newBranchGetCommand(g *Globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "get PROJECT/BRANCH",
		Short: "Show a branch",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchGet(c.Context(), g, args[0], asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runBranchGet(ctx context.Context, g *Globals, ref string, asJSON bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	b, err := e.Branch(ctx, ref)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, b)
	}
	fmt.Fprintf(g.Stdout, "Branch:   %s\nParent:   %s\nState:    %s\nPort:     %d\nURL:      %s\nSize:     %s exclusive, %s referenced\nCreated:  %s\n",
		b.Name, dash(b.Parent), stateText(b), b.Port, b.URL, sizeText(b.Exclusive), sizeText(b.Reference), b.CreatedAt.Local().Format(time.DateTime))
	if b.CACert != "" {
		fmt.Fprintf(g.Stdout, "TLS CA:   %s\n", b.CACert)
	}
	if b.Problem != "" {
		fmt.Fprintf(g.Stdout, "Problem:  %s\n", b.Problem)
	}
	return nil
}

func newBranchDeleteCommand(g *Globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "delete PROJECT/BRANCH",
		Aliases: []string{"rm"},
		Short:   "Delete a branch, its server and its data",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runBranchDelete(c.Context(), g, args[0], force) },
	}
	c.Flags().BoolVar(&force, "force", false, "also delete the branch's descendants")
	return c
}

func runBranchDelete(ctx context.Context, g *Globals, ref string, force bool) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.DeleteBranch(ctx, ref, force); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Deleted branch %s\n", ref)
	return nil
}

func newBranchResetCommand(g *Globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "reset PROJECT/BRANCH",
		Short: "Replace a branch's data with its parent's current data (like git reset --hard)",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchReset(c.Context(), g, args[0], force) },
	}
	c.Flags().BoolVar(&force, "force", false, "reset even though the branch has descendants")
	return c
}

func runBranchReset(ctx context.Context, g *Globals, ref string, force bool) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.ResetBranch(ctx, ref, force); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Reset branch %s\n", ref)
	return nil
}

func newBranchPasswordCommand(g *Globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "password PROJECT/BRANCH",
		Aliases: []string{"pass"},
		Short:   "Show a branch's connection details with its password",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runBranchPassword(c.Context(), g, args[0], asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runBranchPassword(ctx context.Context, g *Globals, ref string, asJSON bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	c, err := e.Password(ctx, ref)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, c)
	}
	fmt.Fprintf(g.Stdout, "Branch:   %s\nHost:     %s\nPort:     %d\nUser:     %s\nPassword: %s\nDatabase: %s\nURL:      %s\n", c.Branch, c.Host, c.Port, c.User, c.Password, c.Database, c.URL)
	return nil
}

func newBranchStartCommand(g *Globals) *cobra.Command {
	var all, asJSON bool
	c := &cobra.Command{
		Use:   "start PROJECT/BRANCH | --all",
		Short: "Start a branch's server; --all starts every branch left running (after a reboot)",
		Args:  maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case !all && len(args) == 0:
				return usageError{fmt.Errorf("name the branch to start (velo branch start P/B), or give --all to start every branch left running")}
			case all && len(args) == 1:
				return usageError{fmt.Errorf("name a branch (velo branch start P/B) or give --all, not both")}
			}
			e, err := g.engine(c.Context(), asJSON)
			if err != nil {
				return err
			}
			defer e.Close()
			if all {
				res, err := e.StartAll(c.Context())
				if asJSON {
					if jerr := ui.JSON(g.Stdout, res); jerr != nil {
						return jerr
					}
				} else {
					for _, r := range res {
						switch {
						case r.Error != "":
							fmt.Fprintf(g.Stdout, "%s: failed: %s\n", r.Branch, r.Error)
						case r.Started:
							fmt.Fprintf(g.Stdout, "%s: started on port %d\n", r.Branch, r.Port)
						default:
							fmt.Fprintf(g.Stdout, "%s: already running on port %d\n", r.Branch, r.Port)
						}
					}
				}
				return err
			}
			conn, already, err := e.StartBranch(c.Context(), args[0])
			if err != nil {
				return err
			}
			if already {
				fmt.Fprintf(g.Stdout, "%s is already running on port %d\n", args[0], conn.Port)
				return nil
			}
			printConn(g.Stdout, conn)
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "start every branch that was running (it was not stopped with velo branch stop)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (with --all)")
	return c
}

func newBranchStopCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop PROJECT/BRANCH",
		Short: "Stop a branch's server; its data stays",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine(c.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			already, err := e.StopBranch(c.Context(), args[0])
			if err != nil {
				return err
			}
			if already {
				fmt.Fprintf(g.Stdout, "%s is already stopped\n", args[0])
			} else {
				fmt.Fprintf(g.Stdout, "Stopped %s\n", args[0])
			}
			return nil
		},
	}
}

func newBranchRestartCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restart PROJECT/BRANCH",
		Short: "Restart a branch's server",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine(c.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			conn, err := e.RestartBranch(c.Context(), args[0])
			if err != nil {
				return err
			}
			printConn(g.Stdout, conn)
			return nil
		},
	}
}
