package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/velohq/velo/internal/view"
)

// Commit and Modified stand in, set with -ldflags -X by
// scripts/package.sh, for the build information's vcs.revision and
// vcs.modified where go build cannot stamp them (a git worktree, or
// -buildvcs=false).
var Commit, Modified string

// buildInfo is how this binary was built.
func buildInfo() view.Version {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi, Version, Commit, Modified)
}

// versionOf is the version the package gave (version, set with -ldflags
// -X), else the module's from the build information (go install
// ...@v1.2.3); the commit and whether the tree had changes from the
// build information, which go build stamps from git, else from commit
// and modified.
func versionOf(bi *debug.BuildInfo, version, commit, modified string) view.Version {
	v := view.Version{Version: version, Commit: commit, Modified: modified == "true", Go: runtime.Version()}
	if bi == nil {
		return v
	}
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// versionLine is what velo --version and velo version print.
func versionLine(v view.Version) string {
	s := "velo " + v.Version
	if v.Commit != "" {
		s += ", commit " + v.Commit
		if v.Modified {
			s += " (modified)"
		}
	}
	return s + ", " + v.Go + "\n"
}

func newVersionCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "version",
		Short: "Show the version, the commit it was built from and whether the tree was modified",
		Args:  exactArgs(0),
		RunE:  func(c *cobra.Command, args []string) error { return runVersion(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runVersion(_ context.Context, g *Globals, o jsonOptions) error {
	v := buildInfo()
	return g.printer(o.JSON, true).Result(v, func(w io.Writer) { fmt.Fprint(w, versionLine(v)) })
}
