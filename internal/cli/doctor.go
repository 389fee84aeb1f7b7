package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

// doctorOptions are the flags of `velo doctor`.
type doctorOptions struct {
	JSON   bool
	Repair bool
	DryRun bool
}

func (o *doctorOptions) AddFlags(fs *pflag.FlagSet) {
	jsonFlag(fs, &o.JSON)
	fs.BoolVar(&o.Repair, "repair", false, "finish or undo interrupted commands and remove orphans")
	fs.BoolVar(&o.DryRun, "dry-run", false, "with --repair: list what it would do, and do nothing")
}

func newDoctorCommand(g *Globals) *cobra.Command {
	var o doctorOptions
	c := &cobra.Command{
		Use:   "doctor [--repair [--dry-run]]",
		Short: "Check the host, pools, state and branches against reality; --repair mends what interrupted commands left",
		Long: `velo doctor checks the host (OS, filesystems, tools, Postgres), every pool in
use, the state database, and every project and branch against the storage and
the running servers. It finds orphans (volumes, snapshots, servers and WAL
archives that no record names, records whose volume is gone) and commands that
were interrupted. It exits 1 when something failed; warnings alone exit 0.

velo doctor --repair finishes or undoes interrupted commands and removes the
orphans, touching only what Velo named; --dry-run lists what it would do.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error { return runDoctor(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runDoctor(ctx context.Context, g *Globals, o doctorOptions) error {
	if o.DryRun && !o.Repair {
		return usageError{errors.New("--dry-run goes with --repair: velo doctor --repair --dry-run")}
	}
	p := g.printer(o.JSON, !o.Repair)
	e, err := g.open(ctx, p)
	if err != nil {
		return err
	}
	defer e.Close()
	if o.Repair {
		return runRepair(ctx, p, e, o)
	}
	rep, err := e.Doctor(ctx)
	if err != nil {
		return err
	}
	if err := p.Result(view.NewDoctor(rep), func(w io.Writer) { printDoctor(w, rep) }); err != nil {
		return err
	}
	if rep.Failed > 0 {
		where := "the fixes above"
		if o.JSON {
			where = "each finding's fix"
		}
		return fmt.Errorf("doctor found %s; see %s", plural(rep.Failed, "problem", "problems"), where)
	}
	return nil
}

var sectionTitles = map[string]string{
	engine.SectionHost:       "Host",
	engine.SectionPools:      "Pools",
	engine.SectionState:      "State",
	engine.SectionProjects:   "Projects",
	engine.SectionBranches:   "Branches",
	engine.SectionOrphans:    "Orphans",
	engine.SectionOperations: "Interrupted operations",
}

var sectionOrder = []string{engine.SectionHost, engine.SectionPools, engine.SectionState, engine.SectionProjects,
	engine.SectionBranches, engine.SectionOrphans, engine.SectionOperations}

func mark(l engine.Level) string {
	switch l {
	case engine.LevelFailed:
		return "✗"
	case engine.LevelWarning:
		return "!"
	}
	return "✓"
}

func printDoctor(w io.Writer, rep engine.DoctorReport) {
	for i, sec := range sectionOrder {
		var fs []engine.Finding
		for _, f := range rep.Findings {
			if f.Section == sec {
				fs = append(fs, f)
			}
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, sectionTitles[sec])
		if len(fs) == 0 {
			fmt.Fprintln(w, "  ✓ none")
			continue
		}
		// Subjects line up in a column, but a long one (a path) gets a
		// line of its own rather than pushing every message right.
		const maxWidth = 20
		width := 0
		for _, f := range fs {
			if n := len([]rune(f.Subject)); n <= maxWidth {
				width = max(width, n)
			}
		}
		for _, f := range fs {
			if len([]rune(f.Subject)) > width {
				fmt.Fprintf(w, "  %s %s\n    %*s  %s\n", mark(f.Status), f.Subject, width, "", f.Message)
			} else {
				fmt.Fprintf(w, "  %s %-*s  %s\n", mark(f.Status), width, f.Subject, f.Message)
			}
			if f.Status != engine.LevelOK && f.Fix != "" {
				fmt.Fprintf(w, "    %*s  fix: %s\n", width, "", f.Fix)
			}
		}
	}
	fmt.Fprintln(w)
	switch {
	case rep.Failed == 0 && rep.Warnings == 0:
		fmt.Fprintln(w, "No problems found.")
	case rep.Failed == 0:
		fmt.Fprintf(w, "No problems found; %s above.\n", plural(rep.Warnings, "warning", "warnings"))
	default:
		fmt.Fprintf(w, "%s, %s. velo doctor --repair mends what Velo left (--dry-run first shows how); the other fixes are above.\n",
			plural(rep.Failed, "problem", "problems"), plural(rep.Warnings, "warning", "warnings"))
	}
}

func runRepair(ctx context.Context, p *ui.Printer, e *engine.Engine, o doctorOptions) error {
	rep, err := e.Repair(ctx, o.DryRun)
	if p.JSON() {
		if jerr := p.Document(view.NewRepair(rep)); jerr != nil {
			return jerr
		}
		return err
	}
	w := p.Out()
	if o.DryRun {
		fmt.Fprintln(w, "Dry run: nothing is changed.")
	}
	for _, a := range rep.Actions {
		switch {
		case o.DryRun:
			fmt.Fprintf(w, "  would %s\n      because %s\n", a.Text, a.Reason)
		case a.Done:
			fmt.Fprintf(w, "  ✓ %s\n", a.Text)
		case a.Error != "":
			fmt.Fprintf(w, "  ✗ %s: %s\n", a.Text, a.Error)
		default:
			fmt.Fprintf(w, "  - not done: %s\n", a.Text)
		}
	}
	if len(rep.Left) > 0 {
		fmt.Fprintln(w, "Not repaired:")
		for _, f := range rep.Left {
			fmt.Fprintf(w, "  %s %s: %s\n      fix: %s\n", mark(f.Status), f.Subject, f.Message, f.Fix)
		}
	}
	if err != nil {
		return err
	}
	switch {
	case len(rep.Actions) == 0:
		fmt.Fprintln(w, "Nothing to repair.")
	case o.DryRun:
		fmt.Fprintf(w, "%s to take; run velo doctor --repair to take them.\n", plural(len(rep.Actions), "action", "actions"))
	default:
		fmt.Fprintf(w, "Repaired: %s. Run velo doctor to check.\n", plural(len(rep.Actions), "action", "actions"))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
