package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/hostsetup"
	"github.com/velohq/velo/internal/pg"
)

// setupOptions are the flags of velo setup.
type setupOptions struct {
	poolFile, size, fs, mount string
	systemd, completion       bool
	unitDir, completionDir    string
	// bashCompletion writes the bash completion script (from the command tree).
	bashCompletion func(io.Writer) error
	// given are the flags set on the command line, which setup checks
	// against each other.
	given map[string]bool
}

func (o *setupOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.poolFile, "pool-file", "", "make a loop-backed pool in this image file (when the host has no ZFS pool)")
	fs.StringVar(&o.size, "size", "20G", "size of the pool image (sparse)")
	fs.StringVar(&o.fs, "fs", "btrfs", "filesystem of the pool image: btrfs or xfs (reflink)")
	fs.StringVar(&o.mount, "mount", "", "where to mount the pool (default: the image path without its extension)")
	fs.BoolVar(&o.systemd, "systemd", false, "install velo.service, which starts the branches that were running at boot")
	fs.StringVar(&o.unitDir, "unit-dir", "/etc/systemd/system", "where velo.service goes")
	fs.BoolVar(&o.completion, "completion", false, "install the bash completion of velo (as velo completion bash prints it)")
	fs.StringVar(&o.completionDir, "completion-dir", "/etc/bash_completion.d", "where the bash completion goes")
}

// check refuses flags that only count beside another.
func (o setupOptions) check() error {
	if o.poolFile == "" {
		for _, f := range []string{"size", "fs", "mount"} {
			if o.given[f] {
				return usageError{fmt.Errorf("--%s goes with --pool-file: velo setup --pool-file /var/lib/velo/pool.img --size 20G", f)}
			}
		}
	}
	if o.given["unit-dir"] && !o.systemd {
		return usageError{fmt.Errorf("--unit-dir goes with --systemd")}
	}
	if o.given["completion-dir"] && !o.completion {
		return usageError{fmt.Errorf("--completion-dir goes with --completion")}
	}
	return nil
}

func newSetupCommand(g *Globals) *cobra.Command {
	var o setupOptions
	c := &cobra.Command{
		Use:   "setup [--pool-file PATH --size 20G [--fs btrfs|xfs]] [--systemd] [--completion]",
		Short: "Prepare this host: a loop-backed pool, a boot unit; says what it did",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			o.given = map[string]bool{}
			c.Flags().Visit(func(f *pflag.Flag) { o.given[f.Name] = true })
			o.bashCompletion = func(w io.Writer) error { return c.Root().GenBashCompletionV2(w, true) }
			return runSetup(c.Context(), g, o)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

// setupUser is who Velo works for: the user behind sudo, else the caller.
func setupUser() string {
	if u := os.Getenv("SUDO_USER"); u != "" && os.Geteuid() == 0 {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

func runSetup(ctx context.Context, g *Globals, o setupOptions) error {
	// Every option is checked before anything is done or said.
	if err := o.check(); err != nil {
		return err
	}
	var pool hostsetup.PoolFileOptions
	if o.poolFile != "" {
		size, err := hostsetup.ParseSize(o.size)
		if err != nil {
			return usageError{fmt.Errorf("--size: %w", err)}
		}
		pool = hostsetup.PoolFileOptions{File: o.poolFile, Size: size, FS: o.fs, Mount: o.mount}
		if err := pool.Validate(); err != nil {
			return usageError{err}
		}
	}
	if o.systemd {
		if err := (hostsetup.UnitOptions{Dir: o.unitDir}).Validate(); err != nil {
			return usageError{err}
		}
	}
	if o.completion {
		if err := hostsetup.CheckPath("completion-dir", o.completionDir); err != nil {
			return usageError{err}
		}
	}
	w := g.Stdout
	fmt.Fprintln(w, "Velo setup")
	// What the host has, so the user knows what Velo will use.
	if installs, err := pg.FindInstalls(ctx); err == nil && len(installs) > 0 {
		var v []string
		for _, in := range installs {
			v = append(v, in.Version)
		}
		fmt.Fprintf(w, "  ✓ PostgreSQL %s\n", strings.Join(v, ", "))
	} else {
		fmt.Fprintln(w, "  ✗ no PostgreSQL found: apt-get install postgresql (or set VELO_PG_BIN)")
	}
	if out, err := exec.CommandContext(ctx, "zpool", "list", "-H", "-o", "name").Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		fmt.Fprintf(w, "  ✓ ZFS pools: %s\n", strings.Join(strings.Fields(string(out)), ", "))
	} else if o.poolFile == "" {
		fmt.Fprintln(w, "  · no ZFS pool: make a loop-backed one with velo setup --pool-file /var/lib/velo/pool.img --size 20G")
	}
	args := append([]string{"setup"}, g.Args[1:]...)
	if o.poolFile != "" {
		if u := setupUser(); u != "root" {
			pool.Owner = u
		}
		_, did, err := hostsetup.PoolFile(ctx, pool, args)
		for _, d := range did {
			fmt.Fprintf(w, "  ▸ %s\n", d)
		}
		if err != nil {
			return err
		}
	}
	if o.systemd {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		home, err := Home()
		if err != nil {
			return err
		}
		// Under sudo, the unit serves the user behind it, with their home.
		if su := os.Getenv("SUDO_USER"); su != "" && os.Getenv("VELO_HOME") == "" {
			if u, err := user.Lookup(su); err == nil {
				home = u.HomeDir + "/.velo"
			}
		}
		did, err := hostsetup.Unit(ctx, hostsetup.UnitOptions{Dir: o.unitDir, Velo: exe, Home: home, User: setupUser(), Enable: true}, args)
		for _, d := range did {
			fmt.Fprintf(w, "  ▸ %s\n", d)
		}
		if err != nil {
			return err
		}
	}
	if o.completion {
		var script bytes.Buffer
		if err := o.bashCompletion(&script); err != nil {
			return err
		}
		did, err := hostsetup.Completion(o.completionDir, script.Bytes(), args)
		if did != "" {
			fmt.Fprintf(w, "  ▸ %s\n", did)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
