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

func newProjectCommand(g *Globals) *cobra.Command {
	return groupCommand("project", []string{"proj"}, "Create, list, inspect and delete projects",
		newProjectCreateCommand(g), newProjectListCommand(g), newProjectGetCommand(g), newProjectDeleteCommand(g), newProjectRefreshCommand(g), newProjectRenameCommand(g), newProjectSetCommand(g))
}

// projectCreateOptions are the flags of velo project create.
type projectCreateOptions struct {
	engine.CreateProjectOptions
	// ArchiveTimeoutSet: --archive-timeout was given (0 is then refused;
	// the engine reads an unset 0 as the default).
	ArchiveTimeoutSet bool
	JSON              bool
}

func (o *projectCreateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Pool, "pool", "", "ZFS pool name or absolute path to keep the data in")
	fs.StringVar(&o.Storage, "storage", "", "force a storage driver: zfs, btrfs, reflink or copy")
	intVar(fs, &o.PGVersion, "pg-version", 0, "PostgreSQL major version (default: the highest installed)")
	fs.StringVar(&o.Image, "image", "", "run the servers in containers of this Docker image with PostgreSQL in it (docker pull it first; the engine is DOCKER_HOST's, else /var/run/docker.sock)")
	fs.DurationVar(&o.ArchiveTimeout, "archive-timeout", time.Minute, "longest time a commit waits before its WAL is archived (so reachable by --pitr)")
	fs.StringVar(&o.From, "from", "", "import an existing server: a libpq URL (postgresql://USER@HOST:PORT/DB) or service=NAME; the password comes from PGPASSWORD, ~/.pgpass or the service file (a URL's shows in ps)")
	fs.BoolVar(&o.Logical, "logical", false, "with --from: dump and restore instead of a base backup (any source major up to --pg-version)")
	fs.BoolVar(&o.NoFollow, "no-follow", false, "with --from: take one copy and promote it, instead of main following the source")
	fs.BoolVar(&o.Slot, "slot", false, "with --from: stream through a replication slot on the source, which keeps WAL there while Velo is away (and fills its disk if Velo never comes back); velo project delete drops it")
	fs.StringArrayVar(&o.Databases, "database", nil, "with --from --logical: a database to import (repeatable; default all)")
	fs.BoolVar(&o.IfNotExists, "if-not-exists", false, "succeed, changing nothing, when the project exists (refused if a --pool, --storage or --pg-version given differs)")
	fs.StringVar(&o.Listen, "listen", "", "addresses the servers listen on besides 127.0.0.1: IP addresses, localhost, or * (comma-separated); other addresses than loopback must use TLS")
	archiveFlags(fs, &o.Archive, &o.ArchiveEndpoint)
	fs.StringVar(&o.FromArchive, "from-archive", "", "restore another host's project from its archive in object storage, s3://BUCKET/PREFIX (its newest pushed snapshot and the WAL after it; --archive-endpoint for non-AWS stores)")
	fs.StringVar(&o.PITR, "pitr", "", "with --from-archive: recover to this moment (RFC 3339, '2 hours ago') or LSN, from the newest snapshot pushed before it")
	fs.BoolVar(&o.Follow, "follow", false, "with --from-archive: main stays a read-only hot standby that keeps replaying new WAL from the bucket")
	jsonFlag(fs, &o.JSON)
}

// archiveFlags are --archive and --archive-endpoint, of project create and
// project set.
func archiveFlags(fs *pflag.FlagSet, archive, endpoint *string) {
	fs.StringVar(archive, "archive", "", "also keep the WAL archive in S3-compatible object storage: s3://BUCKET/PREFIX (none: stop); credentials from the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials)")
	fs.StringVar(endpoint, "archive-endpoint", "", "with --archive or --from-archive: the URL of an S3-compatible service other than AWS (https://s3.example.com:9000)")
}

func newProjectCreateCommand(g *Globals) *cobra.Command {
	var o projectCreateOptions
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project and its main branch, running",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.ArchiveTimeoutSet = c.Flags().Changed("archive-timeout")
			return runProjectCreate(c.Context(), g, o, args[0])
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runProjectCreate(ctx context.Context, g *Globals, o projectCreateOptions, name string) error {
	if o.ArchiveTimeoutSet {
		if err := engine.ValidateArchiveTimeout(o.ArchiveTimeout); err != nil {
			return err
		}
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	co := o.CreateProjectOptions
	co.Name = name
	conn, err := e.CreateProject(ctx, co)
	if err != nil {
		return err
	}
	if !p.JSON() {
		printConn(p.Out(), conn)
		if co.From != "" && !co.NoFollow && !co.Logical {
			fmt.Fprintf(p.Out(), "%s/main follows the source as a read-only hot standby: log in with the source's roles; velo branch create %s/NAME gives a writable copy with the password above\n", name, name)
		}
		if co.Follow {
			fmt.Fprintf(p.Out(), "%s/main follows %s as a read-only hot standby: log in with the first host's roles; velo branch create %s/NAME gives a writable copy with the password above\n", name, co.FromArchive, name)
		}
		return nil
	}
	return printProject(ctx, p, e, name)
}

// printProject prints a project with its branches as project get does.
func printProject(ctx context.Context, p *ui.Printer, e *engine.Engine, name string) error {
	info, err := e.Project(ctx, name)
	if err != nil {
		return err
	}
	bs, err := e.Branches(ctx, name, true)
	if err != nil {
		return err
	}
	return p.Result(view.NewProjectDetail(info, bs), func(w io.Writer) {
		fmt.Fprintf(w, "Project:    %s\nStorage:    %s on %s\nPostgreSQL: %d\nListen:     %s\n", info.Name, info.Storage, info.Pool, info.PGMajor, info.Listen)
		if info.Image != "" {
			fmt.Fprintf(w, "Image:      %s (runtime %s)\n", info.Image, info.Runtime)
		}
		if info.CACert != "" {
			fmt.Fprintf(w, "TLS CA:     %s\n", info.CACert)
		}
		fmt.Fprintf(w, "Idle:       %s (branches but main without an --idle of their own)\n", engine.IdleText(info.Idle))
		if info.Source != nil {
			fmt.Fprintf(w, "Source:     %s\n", info.Source.Summary())
		}
		if info.Mask != "" {
			fmt.Fprintf(w, "Mask:       every new branch of unmasked data (%d bytes of SQL; velo project get %s --json shows it)\n", len(info.Mask), info.Name)
		}
		if info.Archive != nil {
			fmt.Fprintf(w, "Archive:    %s\n", archiveText(info.Archive))
		}
		fmt.Fprintf(w, "Created:    %s\n\n", info.CreatedAt.Local().Format(time.DateTime))
		branchTable(bs).Render(w)
	})
}

func printConn(w io.Writer, c engine.Conn) {
	fmt.Fprintf(w, "\nConnection ready:\n  %s\n", c.URL)
	if c.CACert != "" {
		fmt.Fprintf(w, "TLS certificate authority (for sslmode=verify-full sslrootcert=...):\n  %s\n", c.CACert)
	}
}

// listOptions are the flags of a list command: --json or --quiet.
type listOptions struct{ JSON, Quiet bool }

func (o *listOptions) AddFlags(fs *pflag.FlagSet, what string) {
	jsonFlag(fs, &o.JSON)
	quietFlag(fs, &o.Quiet, what)
}

func newProjectListCommand(g *Globals) *cobra.Command {
	var o listOptions
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List projects",
		Args:    exactArgs(0),
		RunE:    func(c *cobra.Command, args []string) error { return runProjectList(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags(), "the projects' names")
	return c
}

func runProjectList(ctx context.Context, g *Globals, o listOptions) error {
	if err := checkQuiet(o.Quiet, o.JSON); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	ps, err := e.Projects(ctx)
	if err != nil {
		return err
	}
	return p.Result(view.NewProjects(ps), func(w io.Writer) {
		switch {
		case o.Quiet:
			for _, p := range ps {
				fmt.Fprintln(w, p.Name)
			}
		case len(ps) == 0:
			fmt.Fprintln(w, "No projects. Create one with: velo project create NAME")
		default:
			t := ui.Table{Header: []string{"Name", "Storage", "Pool", "PostgreSQL", "Branches", "Created"}}
			for _, p := range ps {
				t.Rows = append(t.Rows, []string{p.Name, p.Storage, p.Pool, fmt.Sprint(p.PGMajor), fmt.Sprint(p.Branches), p.CreatedAt.Local().Format(time.DateTime)})
			}
			t.Render(w)
		}
	})
}

func newProjectGetCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a project and its branches",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runProjectGet(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runProjectGet(ctx context.Context, g *Globals, o jsonOptions, name string) error {
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	return printProject(ctx, p, e, name)
}

func newProjectDeleteCommand(g *Globals) *cobra.Command {
	var o forceOptions
	c := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a project: its servers, data, snapshots and records",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runProjectDelete(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags(), "also delete the project's branches besides main", false)
	return c
}

func runProjectDelete(ctx context.Context, g *Globals, o forceOptions, name string) error {
	p, e, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.DeleteProject(ctx, name, o.Force); err != nil {
		return err
	}
	p.Printf("Deleted project %s\n", name)
	return nil
}

func newProjectRefreshCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh NAME",
		Short: "Take a new copy of an imported project's source into main (branches keep their data)",
		Long: `Copy the source again into a new volume for main, then swap it in: a logical
import (--logical) is dumped and restored again, a physical one made with
--no-follow gets a new base backup (its password found as libpq finds it:
PGPASSWORD, ~/.pgpass or the service file). Main keeps its port and password
and answers with its old data until the new copy is ready. Branches keep their
own data. A following main stays current by itself and is not refreshed.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runProjectRefresh(c.Context(), g, args[0]) },
	}
}

func runProjectRefresh(ctx context.Context, g *Globals, name string) error {
	p, e, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.RefreshProject(ctx, name); err != nil {
		return err
	}
	p.Printf("Refreshed project %s\n", name)
	return nil
}

// projectSetOptions are the flags of velo project set.
type projectSetOptions struct {
	Archive, ArchiveEndpoint string
	// Idle is the branches' default idle timeout ("" unchanged).
	Idle string
	// ArchiveSet: --archive was given.
	ArchiveSet bool
	// Mask is a SQL file for the default mask, or none ("" unchanged).
	Mask string
	JSON bool
}

func newProjectSetCommand(g *Globals) *cobra.Command {
	var o projectSetOptions
	c := &cobra.Command{
		Use:   "set NAME [--archive s3://BUCKET/PREFIX|none [--archive-endpoint URL]] [--idle D|never] [--mask FILE.sql|none]",
		Short: "Change a project's settings: its WAL archive in object storage, its branches' idle timeout, the mask its new branches get",
		Long: `velo project set NAME --archive s3://BUCKET/PREFIX keeps a copy of every WAL
segment the project's branches archive in an S3-compatible bucket: the local
archive stays the durable buffer, velo serve (or velo wal push) uploads from it,
and a segment leaves it only once it is in the bucket, verified by checksum.

The bucket is checked first: reachable and writable with the credentials of the
AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the shared
config and credentials files), and PREFIX free or already this project's (the
object PREFIX/velo-project.json names its project). --archive none stops the
uploads; what is in the bucket stays there.

velo project set NAME --idle 10m makes velo serve suspend (stop, fast shutdown)
each branch of the project but main after ten minutes with no client, unless
the branch has an --idle of its own (velo branch set P/B --idle D|never). A
suspended branch starts again when a client connects through velo serve. main
is suspended only with an --idle set on it. --idle never turns it off.

velo project set NAME --mask FILE.sql masks every new branch of unmasked data with
the script (velo branch create --mask): its text is kept in the project, so a
later edit of the file changes nothing until it is set again; --mask none
clears it.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.ArchiveSet = c.Flags().Changed("archive")
			if !o.ArchiveSet && o.Idle == "" && o.Mask == "" {
				return usageError{fmt.Errorf("nothing to set: give --archive s3://BUCKET/PREFIX, --archive none, --idle D|never or --mask FILE.sql|none")}
			}
			return runProjectSet(c.Context(), g, o, args[0])
		},
	}
	archiveFlags(c.Flags(), &o.Archive, &o.ArchiveEndpoint)
	c.Flags().StringVar(&o.Mask, "mask", "", "mask every new branch of unmasked data with this SQL file (its text is kept: later edits of the file change nothing); none clears it")
	idleFlag(c.Flags(), &o.Idle, "suspend the project's branches but main after this long without clients through velo serve (30s, 10m, 2h, 1d), or never")
	jsonFlag(c.Flags(), &o.JSON)
	return c
}

func runProjectSet(ctx context.Context, g *Globals, o projectSetOptions, name string) error {
	if err := validateProject(name); err != nil {
		return err
	}
	if o.ArchiveSet {
		if _, err := engine.ParseArchive(o.Archive, o.ArchiveEndpoint); err != nil {
			return err
		}
	}
	var mask string
	if o.Mask != "" && o.Mask != "none" {
		var err error
		if mask, err = engine.ReadMask("--mask", o.Mask); err != nil {
			return err
		}
	}
	idle := 0
	if o.Idle != "" {
		var err error
		if idle, err = engine.ParseIdle(o.Idle); err != nil {
			return err
		}
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if o.Mask != "" {
		if err := e.SetProjectMask(ctx, name, mask); err != nil {
			return err
		}
	}
	if o.ArchiveSet {
		if err := e.SetArchive(ctx, name, o.Archive, o.ArchiveEndpoint); err != nil {
			return err
		}
	}
	if o.Idle != "" {
		if err := e.SetProjectIdle(ctx, name, idle); err != nil {
			return err
		}
	}
	return printProject(ctx, p, e, name)
}
