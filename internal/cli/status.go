package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/ui"
)

func newStatusCommand(g *Globals) *cobra.Command {
	var asJSON, sizes bool
	c := &cobra.Command{
		Use:     "status",
		Aliases: []string{"ls"},
		Short:   "Show pools, projects and branches with their live state",
		Args:    exactArgs(0),
		RunE:    func(c *cobra.Command, args []string) error { return runStatus(c.Context(), g, asJSON, sizes) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVarP(&sizes, "size", "s", false, sizeFlagHelp)
	return c
}

// sizeFlagHelp explains --size, which status and branch list share.
const sizeFlagHelp = "show each branch's space on btrfs, XFS and copy too, where it takes time in proportion to the data (ZFS always shows it)"

func runStatus(ctx context.Context, g *Globals, asJSON, sizes bool) error {
	e, err := g.engine(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	rep, err := e.Status(ctx, sizes)
	if err != nil {
		return err
	}
	if asJSON {
		return ui.JSON(g.Stdout, rep)
	}
	w := g.Stdout
	fmt.Fprintln(w, "Velo Status")
	fmt.Fprintln(w)
	if len(rep.Pools) > 0 {
		fmt.Fprintln(w, "Storage")
		t := ui.Table{Header: []string{"Pool", "Driver", "Health", "Size", "Used", "Free"}}
		for _, p := range rep.Pools {
			if p.Error != "" {
				t.Rows = append(t.Rows, []string{p.Name, p.Storage, "ERROR: " + p.Error, "-", "-", "-"})
				continue
			}
			pct := 0.0
			if p.Size > 0 {
				pct = 100 * float64(p.Used) / float64(p.Size)
			}
			t.Rows = append(t.Rows, []string{p.Name, p.Storage, p.Health, ui.Bytes(p.Size), fmt.Sprintf("%s (%.1f%%)", ui.Bytes(p.Used), pct), ui.Bytes(p.Free)})
		}
		t.Render(w)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Projects (%d)\n", len(rep.Projects))
	if len(rep.Projects) == 0 {
		fmt.Fprintln(w, "  none yet; create one with: velo project create NAME")
		return nil
	}
	t := ui.Table{Header: []string{"", "Name", "Type", "Image", "Branches", "Created"}, Separate: true}
	for _, p := range rep.Projects {
		dot := "●"
		for _, b := range p.BranchList {
			if b.State != "running" {
				dot = "○"
			}
		}
		kind := "project"
		if p.Source != nil {
			kind = fmt.Sprintf("%s import of %s:%d", p.Source.Mode, p.Source.Host, p.Source.Port)
		}
		t.Rows = append(t.Rows, []string{dot, p.Name, kind, fmt.Sprintf("PostgreSQL %d", p.PGMajor), fmt.Sprint(p.Branches), p.CreatedAt.Local().Format(time.DateTime)})
		depth := map[string]int{}
		for _, b := range p.BranchList {
			d := 0
			if b.Parent != "" {
				d = depth[b.Parent] + 1
			}
			depth[b.Name] = d
			dot := "●"
			if b.State != "running" {
				dot = "○"
			}
			// main and its children sit at one level, as in git's view of
			// branches; deeper descendants are indented under their parent.
			indent := ""
			for i := 1; i < d; i++ {
				indent += "  "
			}
			t.Rows = append(t.Rows, []string{dot, "  " + indent + "↳ " + b.Name, stateText(b), fmt.Sprintf("Port %d", b.Port), sizeText(b.Exclusive), b.CreatedAt.Local().Format(time.DateTime)})
		}
	}
	t.Render(w)
	return nil
}

// sizeText shows a branch's space, or "-" when it was not computed.
func sizeText(n *int64) string {
	if n == nil {
		return "-"
	}
	return ui.Bytes(*n)
}
