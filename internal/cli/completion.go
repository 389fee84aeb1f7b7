package cli

// Shell completion (velo completion bash|zsh|fish) of commands, flags and
// the names in the state: projects, branches and snapshots, through
// cobra's dynamic completion (the shell runs velo __complete ...).

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/api"
)

// completes is what each command's first argument, and each flag that
// names a branch, is completed from.
var completes = map[string]names{
	"project get": projects, "project delete": projects, "project refresh": projects, "project set": projects, "wal push": projects,
	"branch create": newBranch, "branch list": projects,
	"branch get": branches, "branch delete": branches, "branch reset": branches, "branch password": branches,
	"branch env": branches, "branch protect": branches, "branch unprotect": branches, "branch set": branches, "branch rename": branches, "branch promote": branches, "branch restore": branches, "project rename": projects, "branch start": branches, "branch stop": branches, "branch restart": branches,
	"snapshot create": branches, "snapshot list": branches, "snapshot delete": snapshots, "snapshot push": snapshots, "snapshot cleanup": branches,
	"wal info": projectsAndBranches, "wal cleanup": branches, "service-file": projectsAndBranches, "diff": branches,
	"token revoke": tokens,
}

// flagCompletes are the flags that name a branch.
var flagCompletes = map[string]map[string]names{
	"branch create": {"parent": branches},
}

type names int

const (
	projects names = iota
	branches
	projectsAndBranches
	// newBranch is a name not yet taken: the projects, as PROJECT/.
	newBranch
	snapshots
	// tokens are the HTTP API's token IDs (velo token list).
	tokens
)

// completeNames sets the completions of the command tree under root.
func completeNames(g *Globals, root *cobra.Command) {
	commands := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		commands[strings.TrimPrefix(c.CommandPath(), "velo ")] = c
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for path, what := range completes {
		c := commands[path]
		what := what
		c.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return g.complete(c.Context(), what, toComplete)
		}
	}
	for path, flags := range flagCompletes {
		for flag, what := range flags {
			what := what
			_ = commands[path].RegisterFlagCompletionFunc(flag, func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				return g.complete(c.Context(), what, toComplete)
			})
		}
	}
}

// complete lists the names of the state that start with prefix. It only
// reads: a home that does not exist yet is not made, and any error is no
// completion rather than a message in the middle of the user's line.
func (g *Globals) complete(ctx context.Context, what names, prefix string) ([]string, cobra.ShellCompDirective) {
	none := cobra.ShellCompDirectiveNoFileComp
	home, err := Home()
	if err != nil {
		return nil, none
	}
	if what == tokens {
		toks, _ := api.NewAuth(home, false).Tokens()
		var out []string
		for _, t := range toks {
			if strings.HasPrefix(t.ID, prefix) {
				out = append(out, t.ID)
			}
		}
		return out, none
	}
	if _, err := os.Stat(filepath.Join(home, "state.db")); err != nil {
		return nil, none
	}
	if ctx == nil {
		ctx = context.Background()
	}
	_, e, err := g.open(ctx, false, true)
	if err != nil {
		return nil, none
	}
	defer e.Close()
	var out []string
	add := func(s string) {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	directive := none
	// The records alone: completion must answer at once, without asking
	// the servers or the storage as branch list does.
	q := e.Store.Q()
	ps, err := q.Projects(ctx)
	if err != nil {
		return nil, none
	}
	for _, p := range ps {
		switch what {
		case projects, projectsAndBranches:
			add(p.Name)
		case newBranch:
			add(p.Name + "/")
			directive |= cobra.ShellCompDirectiveNoSpace
		}
		switch what {
		case branches, projectsAndBranches:
			bs, err := q.Branches(ctx, p.ID)
			if err != nil {
				return nil, none
			}
			for _, b := range bs {
				add(p.Name + "/" + b.Name)
			}
		case snapshots:
			ss, err := q.Snapshots(ctx, p.ID)
			if err != nil {
				return nil, none
			}
			for _, s := range ss {
				add(s.ID)
			}
		}
	}
	return out, directive
}
