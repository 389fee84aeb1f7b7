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

// The branch lifecycle commands: protect, unprotect, set (expiry), prune.

// expiryFlags are --ttl and --expires-at, which branch create and branch
// set share.
func expiryFlags(fs *pflag.FlagSet, o *engine.ExpiryOptions) {
	fs.StringVar(&o.TTL, "ttl", "", "delete the branch this long from now, at the next velo prune (90s, 30m, 2h, 1d, 2w)")
	fs.StringVar(&o.ExpiresAt, "expires-at", "", "delete the branch at this time, at the next velo prune (RFC 3339; no zone means UTC)")
}

func newBranchProtectCommand(g *Globals, protect bool) *cobra.Command {
	var o jsonOptions
	use, short := "protect", "Protect a branch: delete, reset and expiry refuse it, even with --force"
	if !protect {
		use, short = "unprotect", "Remove a branch's protection"
	}
	c := &cobra.Command{
		Use:   use + " PROJECT/BRANCH",
		Short: short,
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runBranchProtect(c.Context(), g, o, args[0], protect)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchProtect(ctx context.Context, g *Globals, o jsonOptions, ref string, protect bool) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.ProtectBranch(ctx, ref, protect); err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, ref, func(w io.Writer) {
		if protect {
			fmt.Fprintf(w, "Protected %s: delete, reset and expiry refuse it (velo branch unprotect %s undoes this)\n", ref, ref)
		} else {
			fmt.Fprintf(w, "%s is no longer protected\n", ref)
		}
	})
}

// branchSetOptions are the flags of velo branch set.
type branchSetOptions struct {
	engine.BranchSettings
	JSON bool
}

func (o *branchSetOptions) AddFlags(fs *pflag.FlagSet) {
	expiryFlags(fs, &o.Expiry)
	fs.BoolVar(&o.Expiry.Never, "no-expiry", false, "the branch never expires")
	idleFlag(fs, &o.Idle, "suspend the branch after this long without clients through velo serve (30s, 10m, 2h, 1d), or never; default: the project's (velo project set --idle), never for main")
	jsonFlag(fs, &o.JSON)
}

// idleFlag is --idle, which branch set and project set share.
func idleFlag(fs *pflag.FlagSet, v *string, usage string) {
	fs.StringVar(v, "idle", "", usage)
}

func newBranchSetCommand(g *Globals) *cobra.Command {
	var o branchSetOptions
	c := &cobra.Command{
		Use:   "set PROJECT/BRANCH [--ttl D | --expires-at TIME | --no-expiry] [--idle D|never]",
		Short: "Change a branch's expiry or idle timeout",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchSet(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchSet(ctx context.Context, g *Globals, o branchSetOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.SetBranch(ctx, ref, o.BranchSettings); err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, ref, func(w io.Writer) {
		b, err := e.Branch(ctx, ref)
		switch {
		case !o.Expiry.Given():
		case err != nil || b.ExpiresAt == nil:
			fmt.Fprintf(w, "%s never expires\n", ref)
		default:
			fmt.Fprintf(w, "%s expires at %s (%s); velo prune deletes it then\n", ref, b.ExpiresAt.UTC().Format(time.RFC3339), expiryText(b))
		}
		if o.Idle != "" && err == nil {
			fmt.Fprintf(w, "%s: %s\n", ref, idleText(b))
		}
	})
}

// expiryText is the time left of a branch that expires: "in 2h", "expired".
func expiryText(b engine.BranchInfo) string {
	if b.ExpiresAt == nil {
		return ""
	}
	left := time.Until(*b.ExpiresAt)
	if left <= 0 {
		return "expired"
	}
	return "expires in " + ui.Age(left)
}

// pruneOptions are the flags of velo prune.
type pruneOptions struct{ DryRun, JSON bool }

func (o *pruneOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.DryRun, "dry-run", false, "list the expired branches without deleting them")
	jsonFlag(fs, &o.JSON)
}

func newPruneCommand(g *Globals) *cobra.Command {
	var o pruneOptions
	c := &cobra.Command{
		Use:   "prune",
		Short: "Delete the branches whose expiry has passed (run it from cron)",
		Args:  exactArgs(0),
		RunE:  func(c *cobra.Command, args []string) error { return runPrune(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runPrune(ctx context.Context, g *Globals, o pruneOptions) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := e.Prune(ctx, o.DryRun)
	if err != nil {
		return err
	}
	return p.Result(view.NewPrune(res), func(w io.Writer) {
		verb := "Deleted"
		if o.DryRun {
			verb = "Would delete"
		}
		for _, b := range res.Deleted {
			fmt.Fprintf(w, "%s %s (expired %s)\n", verb, b.Branch, b.ExpiresAt.UTC().Format(time.RFC3339))
		}
		for _, b := range res.Kept {
			fmt.Fprintf(w, "Kept %s: %s\n", b.Branch, b.Reason)
		}
		if len(res.Deleted)+len(res.Kept) == 0 {
			fmt.Fprintln(w, "No branch has expired")
		}
	})
}

func newBranchRenameCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "rename PROJECT/BRANCH PROJECT/NEW",
		Short: "Rename a branch; its server, port, password, data and descendants stay",
		Args:  exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return runBranchRename(c.Context(), g, o, args[0], args[1])
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchRename(ctx context.Context, g *Globals, o jsonOptions, from, to string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.RenameBranch(ctx, from, to); err != nil {
		return err
	}
	return printBranchResult(ctx, p, e, to, func(w io.Writer) {
		fmt.Fprintf(w, "Renamed %s to %s (same server, port and password; run velo service-file --write again if you wrote one)\n", from, to)
	})
}

// branchPromoteOptions are the flags of velo branch promote.
type branchPromoteOptions struct {
	Name string
	JSON bool
}

func (o *branchPromoteOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Name, "name", "", "what the old main is called afterwards (default main-old-YYYYMMDD)")
	jsonFlag(fs, &o.JSON)
}

func newBranchPromoteCommand(g *Globals) *cobra.Command {
	var o branchPromoteOptions
	c := &cobra.Command{
		Use:   "promote PROJECT/BRANCH",
		Short: "Make a branch its project's main; the old main stays as a branch",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchPromote(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchPromote(ctx context.Context, g *Globals, o branchPromoteOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := e.PromoteBranch(ctx, ref, o.Name)
	if err != nil {
		return err
	}
	if p.JSON() {
		main, err := e.Branch(ctx, res.Main.Branch)
		if err != nil {
			return err
		}
		old, err := e.Branch(ctx, res.OldMain.Branch)
		if err != nil {
			return err
		}
		return p.Document(view.Promote{Main: view.NewBranch(main), OldMain: view.NewBranch(old)})
	}
	p.Printf("Promoted %s: it is now %s (port %d)\nThe old main is now %s (port %d)\nEach server kept its port and password: clients of port %d now reach the old main\n",
		ref, res.Main.Branch, res.Main.Port, res.OldMain.Branch, res.OldMain.Port, res.OldMain.Port)
	return nil
}

func newProjectRenameCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename OLD NEW",
		Short: "Rename a project; its branches, servers, ports, passwords and data stay",
		Args:  exactArgs(2),
		RunE:  func(c *cobra.Command, args []string) error { return runProjectRename(c.Context(), g, args[0], args[1]) },
	}
}

func runProjectRename(ctx context.Context, g *Globals, oldName, newName string) error {
	p, e, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.RenameProject(ctx, oldName, newName); err != nil {
		return err
	}
	p.Printf("Renamed project %s to %s: its branches are %s/BRANCH, on the same ports; its CA certificate moved to the new project's directory (velo project get %s shows it; run velo service-file --write again if you wrote one)\n", oldName, newName, newName, newName)
	return nil
}

// branchRestoreOptions are the flags of velo branch restore.
type branchRestoreOptions struct {
	To, Snapshot, Name string
	Discard, JSON      bool
}

func (o *branchRestoreOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.To, "to", "", "the moment of the branch's history to go back to (as --pitr: RFC 3339, relative such as 2h ago, no zone means UTC; or an LSN, 0/3000060)")
	fs.StringVar(&o.Snapshot, "snapshot", "", "a snapshot of the branch to go back to (an ID or unique prefix, velo snapshot list)")
	fs.StringVar(&o.Name, "name", "", "what the branch that keeps the replaced state is called (default BRANCH-old-YYYYMMDD)")
	fs.BoolVar(&o.Discard, "discard", false, "drop the replaced state instead of keeping it as a branch")
	jsonFlag(fs, &o.JSON)
}

func newBranchRestoreCommand(g *Globals) *cobra.Command {
	var o branchRestoreOptions
	c := &cobra.Command{
		Use:   "restore PROJECT/BRANCH --to TIME|LSN | --snapshot ID [--discard]",
		Short: "Put a branch back to a moment of its own history, keeping its port and password (the replaced state stays as a branch unless --discard)",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchRestore(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchRestore(ctx context.Context, g *Globals, o branchRestoreOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := e.RestoreBranch(ctx, engine.RestoreOptions{Ref: ref, To: o.To, Snapshot: o.Snapshot, Name: o.Name, Discard: o.Discard})
	if err != nil {
		return err
	}
	if p.JSON() {
		b, err := e.Branch(ctx, res.Branch.Branch)
		if err != nil {
			return err
		}
		doc := view.Restore{Restored: view.NewBranch(b), SnapshotID: res.Snapshot}
		if res.LSN != "" {
			doc.LSN = res.LSN
		} else if res.Snapshot == "" {
			t := res.Target.UTC()
			doc.Target = &t
		}
		if res.Kept != nil {
			k, err := e.Branch(ctx, res.Kept.Branch)
			if err != nil {
				return err
			}
			kv := view.NewBranch(k)
			doc.Kept = &kv
		}
		return p.Document(doc)
	}
	to := "snapshot " + res.Snapshot
	if res.LSN != "" {
		to = "LSN " + res.LSN
	} else if res.Snapshot == "" {
		to = res.Target.UTC().Format(time.RFC3339Nano)
	}
	p.Printf("Restored %s to %s (port %d and password unchanged)\n", res.Branch.Branch, to, res.Branch.Port)
	if res.Kept != nil {
		p.Printf("The state it replaced is branch %s (port %d); delete it with velo branch delete %s when you no longer need it\n", res.Kept.Branch, res.Kept.Port, res.Kept.Branch)
	} else {
		p.Printf("The state it replaced was discarded (--discard)\n")
	}
	return nil
}
