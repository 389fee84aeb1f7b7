package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestManPagesFollowHelp: velo man writes one page per command, no more,
// each with the command's synopsis, its summary and every flag its
// --help shows, so a command or flag added without its page fails here.
func TestManPagesFollowHelp(t *testing.T) {
	dir := t.TempDir()
	root := NewRoot(&Globals{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	want := 0
	commands(NewRoot(&Globals{}), nil, func(c *cobra.Command, path []string) {
		if !c.IsAvailableCommand() && c.Name() != "velo" {
			return
		}
		want++
		name := strings.Join(append([]string{"velo"}, path...), "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("velo %s has no man page: %v", strings.Join(path, " "), err)
			return
		}
		page := string(b)
		first, _, _ := strings.Cut(c.Short, "(")
		if !strings.Contains(page, c.UseLine()) || !strings.Contains(page, strings.TrimSpace(first)) {
			t.Errorf("%s lacks the synopsis %q or the summary %q", name, c.UseLine(), first)
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s lacks --%s, which velo %s --help shows", name, f.Name, strings.Join(path, " "))
			}
		})
	})
	if len(pages) != want {
		t.Errorf("%d man pages for %d commands", len(pages), want)
	}
}
