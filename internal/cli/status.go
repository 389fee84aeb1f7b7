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

// statusOptions are the flags of velo status.
type statusOptions struct{ JSON, Sizes bool }

func (o *statusOptions) AddFlags(fs *pflag.FlagSet) {
	jsonFlag(fs, &o.JSON)
	fs.BoolVarP(&o.Sizes, "size", "s", false, sizeFlagHelp)
}

func newStatusCommand(g *Globals) *cobra.Command {
	var o statusOptions
	c := &cobra.Command{
		Use:     "status",
		Aliases: []string{"ls"},
		Short:   "Show pools, projects and branches with their live state",
		Args:    exactArgs(0),
		RunE:    func(c *cobra.Command, args []string) error { return runStatus(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

// sizeFlagHelp explains --size, which status and branch list share.
const sizeFlagHelp = "show each branch's space on btrfs, XFS and copy too, where it takes time in proportion to the data (ZFS always shows it)"

func runStatus(ctx context.Context, g *Globals, o statusOptions) error {
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	rep, err := e.Status(ctx, o.Sizes)
	if err != nil {
		return err
	}
	for _, pr := range rep.Projects {
		if pr.Archive != nil && pr.Archive.Warning != "" {
			p.Warn("project %s: %s", pr.Name, pr.Archive.Warning)
		}
	}
	return p.Result(view.NewStatus(rep), func(w io.Writer) { printStatus(w, rep) })
}

// printStatus draws status in two tables that fit 80 columns with names
// of up to about 20 characters: ages instead of dates, "PG 17" for the
// version.
func printStatus(w io.Writer, rep engine.StatusReport) {
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
			t.Rows = append(t.Rows, []string{p.Name, p.Storage, p.Health, ui.Bytes(p.Size), fmt.Sprintf("%s (%.0f%%)", ui.Bytes(p.Used), pct), ui.Bytes(p.Free)})
		}
		t.Render(w)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Projects (%d)\n", len(rep.Projects))
	if len(rep.Projects) == 0 {
		fmt.Fprintln(w, "  none yet; create one with: velo project create NAME")
		return
	}
	t := ui.Table{Header: []string{"", "Name", "State", "Port", "Size", "Age"}, Separate: true}
	for _, p := range rep.Projects {
		dot := "●"
		for _, b := range p.BranchList {
			if b.State != "running" {
				dot = "○"
			}
		}
		kind := plural(p.Branches, "branch", "branches")
		if p.Source != nil {
			// Where from is in project get; here only what kind, to fit.
			kind = p.Source.Mode + " import"
		}
		t.Rows = append(t.Rows, []string{dot, p.Name, fmt.Sprintf("PG %d, %s", p.PGMajor, kind), "", "", ui.Age(time.Since(p.CreatedAt))})
		if p.Source != nil && p.Source.Following {
			t.Rows = append(t.Rows, []string{"", "  following: " + followText(p.Source), "", "", "", ""})
		}
		if p.Archive != nil {
			t.Rows = append(t.Rows, []string{"", "  archive: " + archiveText(p.Archive), "", "", "", ""})
		}
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
			indent := strings.Repeat("  ", max(d-1, 0))
			t.Rows = append(t.Rows, []string{dot, "  " + indent + "↳ " + b.Name, stateText(b), fmt.Sprint(b.Port), sizeText(b.Exclusive), ui.Age(time.Since(b.CreatedAt))})
		}
	}
	t.Render(w)
	// Every branch's one-port URL has the same form; the first shows it.
	if b := firstBranch(rep); b != nil {
		fmt.Fprintf(w, "\nOne port (velo serve): %s, and likewise PROJECT%%2FBRANCH for every branch\n", b.RouterURL)
	}
}

func firstBranch(rep engine.StatusReport) *engine.BranchInfo {
	for _, p := range rep.Projects {
		if len(p.BranchList) > 0 {
			return &p.BranchList[0]
		}
	}
	return nil
}

// sizeText shows a branch's space, or "-" when it was not computed.
func sizeText(n *int64) string {
	if n == nil {
		return "-"
	}
	return ui.Bytes(*n)
}

// followText is how a following main streams: "streaming, lag 0 B / 0.0 s".
func followText(s *engine.SourceInfo) string {
	t := s.State
	t += s.LagText()
	if s.Reason != "" {
		t += " (" + s.Reason + ")"
	}
	return t
}

// archiveText is where a project's WAL archive in object storage stands:
// "s3://b/p: 12 in bucket, 3 local only (48 MiB), lag 40 s, BEHIND: ...".
func archiveText(a *engine.ArchiveSummary) string {
	now := time.Now()
	t := fmt.Sprintf("%s: %d in bucket, %d local only (%s)", a.URL, a.InBucket, a.LocalOnly, ui.Bytes(a.LocalOnlyBytes))
	if a.LocalOnly > 0 {
		t += fmt.Sprintf(", upload lag %s", a.Lag(now).Round(time.Second))
	}
	if a.Behind(now) {
		t += ", uploads BEHIND"
	}
	if a.LastError != "" {
		t += "; last upload error: " + a.LastError
	}
	return t
}
