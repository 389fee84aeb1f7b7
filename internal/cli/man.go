package cli

import (
	"context"
	"fmt"
	"os"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/velohq/velo/internal/ui"
)

func newManCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page per command into DIR (velo.1, velo-branch-create.1, ...)",
		Long: `Write the manual pages of every command, made from the same text as --help, into
DIR (made if missing): man -l DIR/velo-branch-create.1, or install them under
/usr/share/man/man1. SOURCE_DATE_EPOCH sets their date, for reproducible packages.`,
		Args: exactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(c *cobra.Command, args []string) error { return runMan(c.Context(), g, c.Root(), args[0]) },
	}
}

// checkManDir refuses a DIR no one means, before anything is made.
func checkManDir(dir string) error {
	switch {
	case dir == "":
		return usageError{fmt.Errorf("velo man DIR: DIR is empty: give it a value, e.g. velo man ./man")}
	case len(dir) > 4095:
		return usageError{fmt.Errorf("velo man DIR: %s is longer than a path can be (4095 bytes)", ui.Quote(dir))}
	}
	for _, r := range dir {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return usageError{fmt.Errorf("velo man DIR: %s holds a character that is not printable: paths must be printable text", ui.Quote(dir))}
		}
	}
	return nil
}

func runMan(_ context.Context, g *Globals, root *cobra.Command, dir string) error {
	if err := checkManDir(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "VELO", Section: "1", Source: "Velo " + buildInfo().Version, Manual: "Velo Manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Wrote the man pages to %s\n", dir)
	return nil
}
