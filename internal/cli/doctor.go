package cli

import (
	"context"
	"errors"
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

// doctorOptions are the flags of `velo doctor`.
type doctorOptions struct {
	JSON   bool
	Repair bool
	DryRun bool
	// RebuildState makes the records again from the backups, the storage
	// and the running servers; Force does so over a healthy state.db.
	RebuildState bool
	Force        bool
	Pools        []string
}

func (o *doctorOptions) AddFlags(fs *pflag.FlagSet) {
	jsonFlag(fs, &o.JSON)
	fs.BoolVar(&o.Repair, "repair", false, "finish or undo interrupted commands and remove orphans")
	fs.BoolVar(&o.DryRun, "dry-run", false, "with --repair or --rebuild-state: list what it would do, and do nothing")
	fs.BoolVar(&o.RebuildState, "rebuild-state", false, "make the state database again from its backups, the storage and the running servers")
	fs.BoolVar(&o.Force, "force", false, "with --rebuild-state: rebuild even though state.db is healthy")
	fs.StringArrayVar(&o.Pools, "pool", nil, "with --rebuild-state: another pool to search (repeatable)")
}

func newDoctorCommand(g *Globals) *cobra.Command {
	var o doctorOptions
	c := &cobra.Command{
		Use:   "doctor [--repair [--dry-run]] [--rebuild-state [--force] [--pool P]... [--dry-run]]",
		Short: "Check the host, pools, state and branches against reality; --repair mends what interrupted commands left",
		Long: `velo doctor checks the host (OS, filesystems, tools, Postgres), every pool in
use, the state database, and every project and branch against the storage and
the running servers. It finds orphans (volumes, snapshots, servers and WAL
archives that no record names, records whose volume is gone) and commands that
were interrupted. It exits 1 when something failed; warnings alone exit 0.

velo doctor --repair finishes or undoes interrupted commands and removes the
orphans, touching only what Velo named; --dry-run lists what it would do. It
never stops, removes or destroys what belongs to this home but has no record
(a running server, its archive, socket directory and log, a volume whose
identity file names this home): it reports them, with --rebuild-state as the fix.

velo doctor --rebuild-state makes the state database again when it is lost or
corrupt: from the newest backup in $VELO_HOME/backups that passes SQLite's
check, corrected by the storage (each volume's identity file names its home,
project and branch) and the running servers, with the passwords from
$VELO_HOME/secrets. It lists what it could not recover. It refuses while
state.db is healthy unless --force (the old file is kept aside); --pool names
more pools to search than those the backup and the running servers name.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error { return runDoctor(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runDoctor(ctx context.Context, g *Globals, o doctorOptions) error {
	if o.DryRun && !o.Repair && !o.RebuildState {
		return usageError{errors.New("--dry-run goes with --repair or --rebuild-state: velo doctor --repair --dry-run")}
	}
	if o.Repair && o.RebuildState {
		return usageError{errors.New("--repair and --rebuild-state are two steps: first velo doctor --rebuild-state, then velo doctor --repair")}
	}
	if (o.Force || len(o.Pools) > 0) && !o.RebuildState {
		return usageError{errors.New("--force and --pool go with --rebuild-state: velo doctor --rebuild-state --force")}
	}
	if o.RebuildState {
		return runRebuildState(ctx, g, o)
	}
	p, e, err := g.open(ctx, o.JSON, !o.Repair)
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

func runRebuildState(ctx context.Context, g *Globals, o doctorOptions) error {
	for _, p := range o.Pools {
		if p == "" {
			return usageError{errors.New("--pool needs a value: a ZFS pool name or an absolute path")}
		}
	}
	p := g.printer(o.JSON, false)
	cfg, err := g.config(p)
	if err != nil {
		return err
	}
	// Not g.open: the state database is what may not open.
	e := engine.NewWithoutState(cfg)
	rep, err := e.RebuildState(ctx, engine.RebuildOptions{Force: o.Force, DryRun: o.DryRun, Pools: o.Pools})
	if err != nil {
		return err
	}
	return p.Result(view.NewRebuild(rep), func(w io.Writer) { printRebuild(w, rep) })
}

func printRebuild(w io.Writer, rep engine.RebuildReport) {
	if rep.DryRun {
		fmt.Fprintln(w, "Dry run: nothing is changed. The rebuilt records would be:")
	}
	if rep.Base == "" {
		fmt.Fprintln(w, "From the storage alone (no good backup of the state database was found)")
	} else {
		fmt.Fprintf(w, "From %s (written %s), checked against the storage and the running servers\n", rep.Base, rep.BaseTime.Local().Format(time.DateTime))
	}
	for _, d := range rep.Damaged {
		fmt.Fprintf(w, "  skipped damaged backup %s\n", d)
	}
	fmt.Fprintf(w, "Pools searched: %s\n", listOrNone(rep.Pools))
	fmt.Fprintf(w, "Projects: %s\n", listOrNone(rep.Projects))
	fmt.Fprintln(w, "Branches:")
	for _, b := range rep.Branches {
		state, parent := "stopped", ""
		if b.Running {
			state = "running"
		}
		if b.Parent != "" {
			parent = ", parent " + b.Parent
		}
		fmt.Fprintf(w, "  %s: port %d, %s%s (from the %s)\n", b.Branch, b.Port, state, parent, b.From)
	}
	fmt.Fprintf(w, "Snapshots: %d\n", rep.Snapshots)
	if len(rep.Changes) > 0 {
		fmt.Fprintln(w, "Corrected by the storage and the servers:")
		for _, c := range rep.Changes {
			fmt.Fprintf(w, "  - %s\n", c)
		}
	}
	if len(rep.NotRecovered) > 0 {
		fmt.Fprintln(w, "Not recovered:")
		for _, c := range rep.NotRecovered {
			fmt.Fprintf(w, "  ✗ %s\n", c)
		}
	}
	if rep.DryRun {
		fmt.Fprintln(w, "Run velo doctor --rebuild-state without --dry-run to write them.")
		return
	}
	if rep.KeptAside != "" {
		fmt.Fprintf(w, "The state database it replaced is kept as %s.\n", rep.KeptAside)
	}
	fmt.Fprintln(w, "State rebuilt. Run velo doctor to check.")
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
