package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/api"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
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
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the HTTP API's tokens: ID, access and when made (never the tokens themselves)",
		Args:    exactArgs(0),
		RunE:    func(c *cobra.Command, args []string) error { return runTokenList(g, asJSON) },
	}
	jsonFlag(list.Flags(), &asJSON)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Stop honouring a token at once (its ID, or a unique prefix of 4 or more, from velo token list)",
		Args:  exactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runTokenRevoke(g, args[0]) },
	}
	return groupCommand("token", nil, "Tokens of the HTTP API (velo serve)", create, list, revoke)
}

func runTokenList(g *Globals, asJSON bool) error {
	home, err := Home()
	if err != nil {
		return err
	}
	toks, err := api.NewAuth(home, false).Tokens()
	if err != nil {
		return err
	}
	doc := view.Tokens{}
	for _, t := range toks {
		v := view.Token{ID: t.ID, ReadOnly: t.Role == api.RoleReadOnly, First: t.First}
		if !t.CreatedAt.IsZero() {
			c := t.CreatedAt.UTC()
			v.CreatedAt = &c
		}
		doc = append(doc, v)
	}
	return g.printer(asJSON, true).Result(doc, func(w io.Writer) {
		if len(doc) == 0 {
			fmt.Fprintln(w, "No tokens. velo serve makes one at its first start; velo token create makes more.")
			return
		}
		t := ui.Table{Header: []string{"ID", "Access", "Created", "Note"}}
		for _, v := range doc {
			access, created, note := "full", "-", ""
			if v.ReadOnly {
				access = "read-only"
			}
			if v.CreatedAt != nil {
				created = fmt.Sprintf("%s (%s ago)", v.CreatedAt.Local().Format(time.DateTime), ui.Age(time.Since(*v.CreatedAt)))
			}
			if v.First {
				note = "in " + api.TokenFile(home)
			}
			t.Rows = append(t.Rows, []string{v.ID, access, created, note})
		}
		t.Render(w)
	})
}

func runTokenRevoke(g *Globals, id string) error {
	home, err := Home()
	if err != nil {
		return err
	}
	t, err := api.NewAuth(home, false).RevokeToken(id)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Revoked token %s (%s): a call with it is refused (401) from now on\n", t.ID, t.Role)
	if t.First {
		fmt.Fprintf(g.Stdout, "It was the token in %s, which is removed; velo serve makes a new one there at its next start\n", api.TokenFile(home))
	}
	return nil
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
