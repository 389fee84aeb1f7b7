package cli

// libpq's conventions: velo branch env (the PG* variables) and velo
// service-file (pg_service.conf and .pgpass), so that psql, pg_dump and
// every libpq program reach a branch without Velo (internal/pgconf).

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/pgconf"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

// branchEnvOptions are the flags of velo branch env.
// There is no --json: --format json is an object keyed by the variables'
// own names (PGHOST), which the snake_case contract of --json excludes.
type branchEnvOptions struct{ Format string }

func (o *branchEnvOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Format, "format", "shell", "shell (export lines for eval), dotenv (a .env file) or json (keyed PGHOST, ...)")
}

func newBranchEnvCommand(g *Globals) *cobra.Command {
	var o branchEnvOptions
	c := &cobra.Command{
		Use:   "env PROJECT/BRANCH",
		Short: "Print the PG* variables and DATABASE_URL of a branch, with its password: eval \"$(velo branch env demo/dev)\"",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runBranchEnv(c.Context(), g, o, args[0]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runBranchEnv(ctx context.Context, g *Globals, o branchEnvOptions, ref string) error {
	switch o.Format {
	case "shell", "dotenv", "json":
	default:
		return usageError{fmt.Errorf("--format %s is not shell, dotenv or json", ui.Quote(o.Format))}
	}
	if err := validateRef(ref); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.Format == "json", true)
	if err != nil {
		return err
	}
	defer e.Close()
	c, err := e.Password(ctx, ref)
	if err != nil {
		return err
	}
	vs := target(c).Vars()
	return p.Result(view.Env(pgconf.Map(vs)), func(w io.Writer) {
		if o.Format == "dotenv" {
			io.WriteString(w, pgconf.Dotenv(vs))
			return
		}
		io.WriteString(w, pgconf.Shell(vs))
	})
}

func target(c engine.Conn) pgconf.Target {
	return pgconf.Target{Branch: c.Branch, Host: c.Host, Port: c.Port, User: c.User, Password: c.Password, Database: c.Database, CACert: c.CACert}
}

// serviceFileOptions are the flags of velo service-file.
type serviceFileOptions struct{ Write bool }

func (o *serviceFileOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Write, "write", false, "write every branch's section into the service file ($PGSERVICEFILE or ~/.pg_service.conf) and its password into $PGPASSFILE or ~/.pgpass, keeping every other entry")
}

func newServiceFileCommand(g *Globals) *cobra.Command {
	var o serviceFileOptions
	c := &cobra.Command{
		Use:   "service-file [PROJECT | PROJECT/BRANCH] [--write]",
		Short: "Print (or --write) a pg_service.conf section per branch, [demo-dev], for psql service=demo-dev",
		Long: `Print a pg_service.conf section per branch, named PROJECT-BRANCH, with the host,
port, user, database and the project's TLS certificate authority, and no password.

With --write, the sections go into the user's service file ($PGSERVICEFILE, else
~/.pg_service.conf) and the passwords into the password file ($PGPASSFILE, else
~/.pgpass, mode 0600), each inside a block of Velo's marked by "# BEGIN velo" and
"# END velo" that is replaced whole at every write; every other line is kept. Run it
again after creating or deleting branches.`,
		Args: maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sel, err := optionalArg(args, validateProjectOrRef)
			if err != nil {
				return err
			}
			return runServiceFile(c.Context(), g, o, sel)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runServiceFile(ctx context.Context, g *Globals, o serviceFileOptions, sel string) error {
	if o.Write && sel != "" {
		return usageError{fmt.Errorf("--write writes every branch (the block is rewritten whole): leave out %s", ui.Quote(sel))}
	}
	p, e, err := g.open(ctx, false, true)
	if err != nil {
		return err
	}
	defer e.Close()
	// A selection that names nothing is refused as branch get refuses it.
	if strings.Contains(sel, "/") {
		if _, err := e.Branch(ctx, sel); err != nil {
			return err
		}
	} else if sel != "" {
		if _, err := e.Project(ctx, sel); err != nil {
			return err
		}
	}
	cs, err := e.Passwords(ctx)
	if err != nil {
		return err
	}
	var ts []pgconf.Target
	for _, c := range cs {
		if sel == "" || c.Branch == sel || strings.HasPrefix(c.Branch, sel+"/") {
			if err := pgconf.CheckValue("the CA certificate path", c.CACert); err != nil {
				return err
			}
			ts = append(ts, target(c))
		}
	}
	if !o.Write {
		block, _ := pgconf.ServiceBlock(ts, nil)
		p.Printf("%s", block)
		return nil
	}
	return writeServiceFiles(p, ts)
}

// writeServiceFiles checks both files first, so that a file Velo cannot
// read is refused with nothing changed, then writes the password file and
// the service file.
func writeServiceFiles(p *ui.Printer, ts []pgconf.Target) error {
	home, err := os.UserHomeDir()
	if err != nil {
		return fmt.Errorf("cannot find the home directory for ~/.pg_service.conf (%v); set PGSERVICEFILE and PGPASSFILE", err)
	}
	svcPath, passPath := os.Getenv("PGSERVICEFILE"), os.Getenv("PGPASSFILE")
	if svcPath == "" {
		svcPath = filepath.Join(home, ".pg_service.conf")
	}
	if passPath == "" {
		passPath = filepath.Join(home, ".pgpass")
	}
	svcReal, svcData, svcPerm, err := pgconf.ReadFile(svcPath, 0o644)
	if err != nil {
		return err
	}
	others, err := pgconf.ParseServices(svcPath, svcData)
	if err != nil {
		return err
	}
	passReal, passData, _, err := pgconf.ReadFile(passPath, 0o600)
	if err != nil {
		return err
	}
	if err := pgconf.CheckMarks(passPath, passData); err != nil {
		return err
	}
	block, skipped := pgconf.ServiceBlock(ts, others)
	for _, s := range skipped {
		p.Warn("service %s is left out: %s already has a section of that name, or two branches share it", s, svcPath)
	}
	// libpq ignores a password file that others can read.
	if err := pgconf.WriteAtomic(passReal, pgconf.Merge(passData, pgconf.PassBlock(ts), true), 0o600); err != nil {
		return err
	}
	if err := pgconf.WriteAtomic(svcReal, pgconf.Merge(svcData, block, false), svcPerm); err != nil {
		return err
	}
	p.Printf("Wrote %d service(s) to %s and their passwords to %s; connect with psql service=PROJECT-BRANCH\n", len(ts)-len(skipped), svcPath, passPath)
	return nil
}
