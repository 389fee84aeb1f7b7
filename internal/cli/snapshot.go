package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

func newSnapshotCommand(g *Globals) *cobra.Command {
	return groupCommand("snapshot", []string{"snap"}, "Keep, list and delete snapshots of branches",
		newSnapshotCreateCommand(g), newSnapshotListCommand(g), newSnapshotDeleteCommand(g), newSnapshotCleanupCommand(g), newSnapshotPushCommand(g))
}

// snapshotCreateOptions are the flags of velo snapshot create.
type snapshotCreateOptions struct {
	Label string
	Push  bool
	JSON  bool
}

func (o *snapshotCreateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Label, "label", "", "a label to remember it by (printable text, up to 100 characters)")
	fs.BoolVar(&o.Push, "push", false, "also store it in the project's archive bucket (velo snapshot push)")
	jsonFlag(fs, &o.JSON)
}

func newSnapshotCreateCommand(g *Globals) *cobra.Command {
	var o snapshotCreateOptions
	c := &cobra.Command{
		Use:   "create PROJECT/BRANCH",
		Short: "Take a consistent snapshot of a branch; prints its ID",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runSnapshotCreate(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runSnapshotCreate(ctx context.Context, g *Globals, o snapshotCreateOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	s, err := e.CreateSnapshot(ctx, ref, o.Label)
	if err != nil {
		return err
	}
	v := view.NewSnapshot(s)
	if o.Push {
		r, err := e.PushSnapshot(ctx, s.ID)
		if err != nil {
			return fmt.Errorf("snapshot %s was taken but not pushed: %w; push it with velo snapshot push %s", s.ID, err, s.ID)
		}
		pv := view.NewSnapshotPush(r)
		v.Pushed = &pv
	}
	return p.Result(v, func(w io.Writer) { fmt.Fprintln(w, s.ID) })
}

func newSnapshotPushCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "push ID",
		Short: "Store a snapshot (by its ID or a unique prefix) in its project's archive bucket, for project create --from-archive",
		Long: `Store a snapshot in the bucket of its project's archive (velo project set --archive):
the tar of its data directory, in parts of 256 MB, and a manifest naming the WAL a
recovery from it needs, the Postgres major and the project. Each object is written
once and verified by its SHA-256; a snapshot already pushed is left as it is. Every
push is a whole copy (no incremental stream). The project's WAL is uploaded after it.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runSnapshotPush(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runSnapshotPush(ctx context.Context, g *Globals, o jsonOptions, prefix string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	r, err := e.PushSnapshot(ctx, prefix)
	if err != nil {
		return err
	}
	return p.Result(view.NewSnapshotPush(r), func(w io.Writer) {
		if r.Already {
			fmt.Fprintf(w, "Snapshot %s is in %s already\n", r.ID, r.Archive)
		} else {
			fmt.Fprintf(w, "Pushed snapshot %s to %s (%s in %d parts)\n", r.ID, r.Archive, ui.Bytes(r.Size), r.Parts)
		}
		if r.WALError != "" {
			fmt.Fprintf(w, "The WAL after it is not all uploaded yet (%s); velo serve or velo wal push uploads it\n", r.WALError)
		}
	})
}

func newSnapshotListCommand(g *Globals) *cobra.Command {
	var o listOptions
	c := &cobra.Command{
		Use:     "list [PROJECT/BRANCH]",
		Aliases: []string{"ls"},
		Short:   "List snapshots, newest first",
		Args:    maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := optionalArg(args, validateRef)
			if err != nil {
				return err
			}
			return runSnapshotList(c.Context(), g, o, ref)
		},
	}
	o.AddFlags(c.Flags(), "the snapshots' IDs")
	return c
}

func runSnapshotList(ctx context.Context, g *Globals, o listOptions, ref string) error {
	if err := checkQuiet(o.Quiet, o.JSON); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	ss, err := e.Snapshots(ctx, ref)
	if err != nil {
		return err
	}
	return p.Result(view.NewSnapshots(ss), func(w io.Writer) {
		switch {
		case o.Quiet:
			for _, s := range ss {
				fmt.Fprintln(w, s.ID)
			}
		case len(ss) == 0:
			fmt.Fprintln(w, "No snapshots. Take one with: velo snapshot create PROJECT/BRANCH --label LABEL")
		default:
			t := ui.Table{Header: []string{"ID", "Branch", "Label", "Created", "Size"}}
			for _, s := range ss {
				label := snapshotRole(s)
				t.Rows = append(t.Rows, []string{s.ID, dash(s.Branch), label, fmt.Sprintf("%s (%s ago)", s.CreatedAt.Local().Format(time.DateTime), ui.Age(time.Since(s.CreatedAt))), ui.Bytes(s.Exclusive)})
			}
			t.Render(w)
		}
	})
}

func newSnapshotDeleteCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot (by its ID or a unique prefix of at least 4 characters)",
		Args:    exactArgs(1),
		RunE:    func(c *cobra.Command, args []string) error { return runSnapshotDelete(c.Context(), g, args[0]) },
	}
}

func runSnapshotDelete(ctx context.Context, g *Globals, prefix string) error {
	p, e, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	defer e.Close()
	id, err := e.DeleteSnapshot(ctx, prefix)
	if err != nil {
		return err
	}
	p.Printf("Deleted snapshot %s\n", id)
	return nil
}

// cleanupOptions are the flags of snapshot cleanup and wal cleanup.
type cleanupOptions struct {
	DryRun, JSON bool
	Days         int
	// DaysSet: --days was given; it is required.
	DaysSet bool
}

// AddFlags defines the flags of a cleanup of what (snapshots, segments).
func (o *cleanupOptions) AddFlags(fs *pflag.FlagSet, what string) {
	intVar(fs, &o.Days, "days", 0, "delete "+what+" older than this many days")
	fs.BoolVar(&o.DryRun, "dry-run", false, "list what would be deleted, delete nothing")
	jsonFlag(fs, &o.JSON)
}

// check refuses a cleanup without --days.
func (o cleanupOptions) check(command string) error {
	if !o.DaysSet {
		return usageError{fmt.Errorf("--days N is required; see velo %s --help", command)}
	}
	return nil
}

// snapshotCleanupOptions are cleanupOptions and --all.
type snapshotCleanupOptions struct {
	cleanupOptions
	All bool
}

func (o *snapshotCleanupOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.All, "all", false, "every branch's snapshots")
	o.cleanupOptions.AddFlags(fs, "snapshots")
}

func newSnapshotCleanupCommand(g *Globals) *cobra.Command {
	var o snapshotCleanupOptions
	c := &cobra.Command{
		Use:   "cleanup [PROJECT/BRANCH | --all] --days N",
		Short: "Delete snapshots older than N days that no branch was made from",
		Long: `Delete snapshots older than N days that no branch was made from.

In a project with an archive in object storage, the snapshots pushed there (velo snapshot
push) older than N days go too, except the project's newest pushed snapshot, which is what
velo project create --from-archive restores. The WAL they needed goes with velo wal cleanup.`,
		Args: maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.DaysSet = c.Flags().Changed("days")
			if err := o.check("snapshot cleanup"); err != nil {
				return err
			}
			ref, err := optionalArg(args, validateRef)
			if err != nil {
				return err
			}
			if err := engine.CheckCleanupScope(ref, o.All); err != nil {
				return err
			}
			return runSnapshotCleanup(c.Context(), g, o, ref)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runSnapshotCleanup(ctx context.Context, g *Globals, o snapshotCleanupOptions, ref string) error {
	if err := o.check("snapshot cleanup"); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := e.CleanupSnapshots(ctx, ref, o.All, o.Days, o.DryRun)
	if err != nil {
		return err
	}
	return p.Result(view.NewSnapshotCleanup(res), func(w io.Writer) {
		verb := "Deleted"
		if o.DryRun {
			verb = "Would delete"
		}
		for _, s := range res.Removed {
			fmt.Fprintf(w, "%s %s  %s  %s  %s\n", verb, s.ID, dash(s.Branch), s.CreatedAt.Local().Format(time.DateTime), ui.Bytes(s.Exclusive))
		}
		for _, k := range res.Kept {
			fmt.Fprintf(w, "Kept %s: %s\n", k.ID, k.Reason)
		}
		for _, c := range res.Shrunk {
			fmt.Fprintf(w, "Point-in-time window: %s\n", c)
		}
		for _, s := range res.RemovedPushed {
			fmt.Fprintf(w, "%s %s  %s/%s  %s  %s from %s\n", verb, s.ID, s.Project, dash(s.Branch), s.CreatedAt.Local().Format(time.DateTime), ui.Bytes(s.Size), s.Archive)
		}
		for _, s := range res.KeptPushed {
			fmt.Fprintf(w, "Kept %s in %s: %s\n", s.ID, s.Archive, s.Reason)
		}
		fmt.Fprintf(w, "%s %d snapshot(s), freeing %s\n", verb, len(res.Removed), ui.Bytes(res.Freed))
		if len(res.RemovedPushed) > 0 {
			fmt.Fprintf(w, "%s %d pushed snapshot(s) from the bucket; the WAL they needed goes with velo wal cleanup\n", verb, len(res.RemovedPushed))
		}
	})
}

// snapshotRole is the Label column: the user's label, or what Velo keeps
// the snapshot for (the origin of branches, the start of a branch's
// point-in-time window).
func snapshotRole(s engine.SnapshotInfo) string {
	if s.User {
		return s.Label
	}
	var roles []string
	if len(s.Clones) > 0 {
		roles = append(roles, "origin of "+strings.Join(s.Clones, ", "))
	}
	if s.PITRBase {
		roles = append(roles, "oldest point-in-time base of "+dash(s.Branch))
	}
	if len(roles) == 0 {
		return "-"
	}
	return "(" + strings.Join(roles, "; ") + ")"
}
