package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/ui"
)

func newWALCommand(g *Globals) *cobra.Command {
	c := groupCommand("wal", nil, "Inspect and trim the continuous WAL archives")
	c.AddCommand(newWALInfoCommand(g), newWALCleanupCommand(g))
	return c
}

func newWALInfoCommand(g *Globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "info [PROJECT[/BRANCH]]",
		Short: "Show WAL archives: size, segments, continuity, and the moments --pitr can reach",
		Args:  maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := optionalArg(args, validateProjectOrRef)
			if err != nil {
				return err
			}
			e, err := g.engine(c.Context(), true)
			if err != nil {
				return err
			}
			defer e.Close()
			infos, err := e.WAL(c.Context(), ref)
			if err != nil {
				return err
			}
			if asJSON {
				return ui.JSON(g.Stdout, infos)
			}
			when := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.UTC().Format("2006-01-02 15:04:05 UTC")
			}
			for i, w := range infos {
				if i > 0 {
					fmt.Fprintln(g.Stdout)
				}
				fmt.Fprintf(g.Stdout, "%s\n  Directory:  %s\n  Segments:   %d (%s)\n", w.Branch, w.Directory, w.Segments, ui.Bytes(w.Bytes))
				if w.Oldest != nil {
					fmt.Fprintf(g.Stdout, "  Oldest:     %s  %s\n  Newest:     %s  %s\n", w.Oldest.Name, when(&w.Oldest.Time), w.Newest.Name, when(&w.Newest.Time))
				}
				if w.Continuous {
					fmt.Fprintf(g.Stdout, "  Continuity: ok\n")
				} else {
					for _, gap := range w.Gaps {
						fmt.Fprintf(g.Stdout, "  Continuity: BROKEN: %s\n", gap)
					}
				}
				fmt.Fprintf(g.Stdout, "  PITR range: %s to %s\n", when(w.Earliest), when(w.Latest))
			}
			for _, w := range infos {
				if !w.Continuous {
					return fmt.Errorf("the WAL archive of %s has gaps: point-in-time branches cannot cross them", w.Branch)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newWALCleanupCommand(g *Globals) *cobra.Command {
	var dryRun, asJSON bool
	var days int
	c := &cobra.Command{
		Use:   "cleanup PROJECT/BRANCH --days N",
		Short: "Remove archived WAL older than N days that no snapshot still needs",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("days") {
				return usageError{fmt.Errorf("--days N is required; see velo wal cleanup --help")}
			}
			e, err := g.engine(c.Context(), asJSON)
			if err != nil {
				return err
			}
			defer e.Close()
			res, err := e.CleanupWAL(c.Context(), args[0], days, dryRun)
			if err != nil {
				return err
			}
			if asJSON {
				return ui.JSON(g.Stdout, res)
			}
			verb := "Removed"
			if dryRun {
				verb = "Would remove"
			}
			for _, n := range res.Removed {
				fmt.Fprintf(g.Stdout, "%s %s\n", verb, n)
			}
			if res.KeptFrom != "" {
				fmt.Fprintf(g.Stdout, "Kept %s and later: a snapshot needs them\n", res.KeptFrom)
			}
			fmt.Fprintf(g.Stdout, "%s %d segment(s), %s\n", verb, len(res.Removed), ui.Bytes(res.Bytes))
			return nil
		},
	}
	intVar(c.Flags(), &days, "days", 0, "remove segments older than this many days")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
