package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/api"
)

// tokenOptions are the flags of velo token create.
type tokenOptions struct{ ReadOnly bool }

func (o *tokenOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.ReadOnly, "read-only", false, "the token may only read: a changing call, or one that shows a password, is refused (403)")
}

func newTokenCommand(g *Globals) *cobra.Command {
	var o tokenOptions
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a token for the HTTP API and print it (only its hash is kept)",
		Args:  exactArgs(0),
		RunE:  func(c *cobra.Command, args []string) error { return runTokenCreate(g, o) },
	}
	o.AddFlags(create.Flags())
	return groupCommand("token", nil, "Tokens of the HTTP API (velo serve)", create)
}

func runTokenCreate(g *Globals, o tokenOptions) error {
	home, err := Home()
	if err != nil {
		return err
	}
	role := api.RoleFull
	if o.ReadOnly {
		role = api.RoleReadOnly
	}
	tok, err := api.NewAuth(home, false).CreateToken(role)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, tok)
	return nil
}

func newUICommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ui",
		Short: "Print a new one-time link to velo serve's web page",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			home, err := Home()
			if err != nil {
				return err
			}
			link, err := api.NewAuth(home, false).PageLink()
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, link)
			return nil
		},
	}
}
