package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
)

func newProjectCommand(g *Globals) *cobra.Command {
	c := groupCommand("project", []string{"proj"}, "Create, list, inspect and delete projects")
	c.AddCommand(newProjectCreateCommand(g), newProjectListCommand(g), newProjectGetCommand(g), newProjectDeleteCommand(g), newProjectRefreshCommand(g))
	return c
}

func newProjectCreateCommand(g *Globals) *cobra.Command {
	var o engine.CreateProjectOptions
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project and its main branch, running",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Name = args[0]
			// Given, 0 is refused: the engine reads an unset 0 as the default.
			if c.Flags().Changed("archive-timeout") {
				if err := engine.ValidateArchiveTimeout(o.ArchiveTimeout); err != nil {
					return err
				}
			}
			return runProjectCreate(c.Context(), g, o)
		},
	}
	c.Flags().StringVar(&o.Pool, "pool", "", "ZFS pool name or absolute path to keep the data in")
	c.Flags().StringVar(&o.Storage, "storage", "", "force a storage driver: zfs, btrfs, reflink or copy")
	intVar(c.Flags(), &o.PGVersion, "pg-version", 0, "PostgreSQL major version (default: the highest installed)")
	c.Flags().StringVar(&o.Image, "image", "", "Docker image (not available yet)")
	c.Flags().DurationVar(&o.ArchiveTimeout, "archive-timeout", time.Minute, "longest time a commit waits before its WAL is archived (so reachable by --pitr)")
	c.Flags().StringVar(&o.From, "from", "", "import an existing server: a libpq URL (postgresql://USER@HOST:PORT/DB) or service=NAME; the password comes from PGPASSWORD, ~/.pgpass or the service file (a URL's shows in ps)")
	c.Flags().BoolVar(&o.Logical, "logical", false, "with --from: dump and restore instead of a base backup (any source major up to --pg-version)")
	c.Flags().BoolVar(&o.NoFollow, "no-follow", false, "with --from: take one copy and promote it, instead of main following the source")
	c.Flags().BoolVar(&o.Slot, "slot", false, "with --from: stream through a replication slot on the source, which keeps WAL there while Velo is away (and fills its disk if Velo never comes back); velo project delete drops it")
	c.Flags().StringArrayVar(&o.Databases, "database", nil, "with --from --logical: a database to import (repeatable; default all)")
	c.Flags().StringVar(&o.Listen, "listen", "", "addresses the servers listen on besides 127.0.0.1: IP addresses, localhost, or * (comma-separated); other addresses than loopback must use TLS")
	return c
}

func runProjectCreate(ctx context.Context, g *Globals, o engine.CreateProjectOptions) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	conn, err := e.CreateProject(ctx, o)
	if err != nil {
		return err
	}
	printConn(g.Stdout, conn)
	return nil
}

func printConn(w io.Writer, c engine.Conn) {
	fmt.Fprintf(w, "\nConnection ready:\n  %s\n", c.URL)
	if c.CACert != "" {
		fmt.Fprintf(w, "TLS certificate authority (for sslmode=verify-full sslrootcert=...):\n  %s\n", c.CACert)
	}
}

func newProjectListCommand(g *Globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List projects",
		Args:    exactArgs(0),
		RunE:    func(c *cobra.Command, args []string) error { return runProjectList(c.Context(), g, asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runProjectList(ctx context.Context, g *Globals, asJSON bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	ps, err := e.Projects(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(g.Stdout, "No projects. Create one with: velo project create NAME")
		return nil
	}
	t := ui.Table{Header: []string{"Name", "Storage", "Pool", "PostgreSQL", "Branches", "Created"}}
	for _, p := range ps {
		t.Rows = append(t.Rows, []string{p.Name, p.Storage, p.Pool, fmt.Sprint(p.PGMajor), fmt.Sprint(p.Branches), p.CreatedAt.Local().Format(time.DateTime)})
	}
	t.Render(g.Stdout)
	return nil
}

func newProjectGetCommand(g *Globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a project and its branches",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runProjectGet(c.Context(), g, args[0], asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runProjectGet(ctx context.Context, g *Globals, name string, asJSON bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	p, err := e.Project(ctx, name)
	if err != nil {
		return err
	}
	bs, err := e.Branches(ctx, name, true)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, engine.ProjectStatus{ProjectInfo: p, BranchList: bs})
	}
	fmt.Fprintf(g.Stdout, "Project:    %s\nStorage:    %s on %s\nPostgreSQL: %d\nListen:     %s\n", p.Name, p.Storage, p.Pool, p.PGMajor, p.Listen)
	if p.CACert != "" {
		fmt.Fprintf(g.Stdout, "TLS CA:     %s\n", p.CACert)
	}
	if p.Source != nil {
		fmt.Fprintf(g.Stdout, "Source:     %s\n", p.Source.Summary())
	}
	fmt.Fprintf(g.Stdout, "Created:    %s\n\n", p.CreatedAt.Local().Format(time.DateTime))
	branchTable(bs).Render(g.Stdout)
	return nil
}

func newProjectDeleteCommand(g *Globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a project: its servers, data, snapshots and records",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runProjectDelete(c.Context(), g, args[0], force) },
	}
	c.Flags().BoolVar(&force, "force", false, "also delete the project's branches besides main")
	return c
}

func runProjectDelete(ctx context.Context, g *Globals, name string, force bool) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.DeleteProject(ctx, name, force); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Deleted project %s\n", name)
	return nil
}

func newProjectRefreshCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh NAME",
		Short: "Import a logically imported project's source again into main (branches keep their data)",
		Long: `Dump the source's databases again and restore them into a new volume for main,
then swap it in: main keeps its port and password, and answers with its old data
until the new one is ready. Branches keep their own data.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runProjectRefresh(c.Context(), g, args[0]) },
	}
}

func runProjectRefresh(ctx context.Context, g *Globals, name string) error {
	e, err := g.engine(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.RefreshProject(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Refreshed project %s\n", name)
	return nil
}
