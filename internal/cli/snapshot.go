package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
)

func newSnapshotCommand(g *Globals) *cobra.Command {
	c := groupCommand("snapshot", []string{"snap"}, "Keep, list and delete snapshots of branches")
	c.AddCommand(newSnapshotCreateCommand(g), newSnapshotListCommand(g), newSnapshotDeleteCommand(g), newSnapshotCleanupCommand(g))
	return c
}

func newSnapshotCreateCommand(g *Globals) *cobra.Command {
	var label string
	c := &cobra.Command{
		Use:   "create PROJECT/BRANCH",
		Short: "Take a consistent snapshot of a branch; prints its ID",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine(c.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			s, err := e.CreateSnapshot(c.Context(), args[0], label)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, s.ID)
			return nil
		},
	}
	c.Flags().StringVar(&label, "label", "", "a label to remember it by (printable text, up to 100 characters)")
	return c
}

func newSnapshotListCommand(g *Globals) *cobra.Command {
	var asJSON bool
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
			return runSnapshotList(c.Context(), g, ref, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runSnapshotList(ctx context.Context, g *Globals, ref string, asJSON bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	ss, err := e.Snapshots(ctx, ref)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, ss)
	}
	if len(ss) == 0 {
		fmt.Fprintln(g.Stdout, "No snapshots. Take one with: velo snapshot create PROJECT/BRANCH --label LABEL")
		return nil
	}
	t := ui.Table{Header: []string{"ID", "Branch", "Label", "Created", "Size"}}
	for _, s := range ss {
		label := s.Label
		if !s.User {
			label = "(origin of " + strings.Join(s.Clones, ", ") + ")"
		}
		t.Rows = append(t.Rows, []string{s.ID, dash(s.Branch), label, fmt.Sprintf("%s (%s ago)", s.CreatedAt.Local().Format(time.DateTime), ui.Age(time.Since(s.CreatedAt))), ui.Bytes(s.Exclusive)})
	}
	t.Render(g.Stdout)
	return nil
}

func newSnapshotDeleteCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot (by its ID or a unique prefix of at least 4 characters)",
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine(c.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			id, err := e.DeleteSnapshot(c.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Stdout, "Deleted snapshot %s\n", id)
			return nil
		},
	}
}

func newSnapshotCleanupCommand(g *Globals) *cobra.Command {
	var all, dryRun, asJSON bool
	var days int
	c := &cobra.Command{
		Use:   "cleanup [PROJECT/BRANCH | --all] --days N",
		Short: "Delete snapshots older than N days that no branch was made from",
		Args:  maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("days") {
				return usageError{fmt.Errorf("--days N is required; see velo snapshot cleanup --help")}
			}
			ref, err := optionalArg(args, validateRef)
			if err != nil {
				return err
			}
			if err := engine.CheckCleanupScope(ref, all); err != nil {
				return err
			}
			e, err := g.engine(c.Context(), asJSON)
			if err != nil {
				return err
			}
			defer e.Close()
			res, err := e.CleanupSnapshots(c.Context(), ref, all, days, dryRun)
			if err != nil {
				return err
			}
			if asJSON {
				return ui.JSON(g.Stdout, res)
			}
			verb := "Deleted"
			if dryRun {
				verb = "Would delete"
			}
			for _, s := range res.Removed {
				fmt.Fprintf(g.Stdout, "%s %s  %s  %s  %s\n", verb, s.ID, dash(s.Branch), s.CreatedAt.Local().Format(time.DateTime), ui.Bytes(s.Exclusive))
			}
			for _, k := range res.Kept {
				fmt.Fprintf(g.Stdout, "Kept %s: %s\n", k.ID, k.Reason)
			}
			fmt.Fprintf(g.Stdout, "%s %d snapshot(s), freeing %s\n", verb, len(res.Removed), ui.Bytes(res.Freed))
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every branch's snapshots")
	intVar(c.Flags(), &days, "days", 0, "delete snapshots older than this many days")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
