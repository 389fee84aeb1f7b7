package cli

import (
	"context"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
	"github.com/velohq/velo/internal/view"
)

func newWALCommand(g *Globals) *cobra.Command {
	return groupCommand("wal", nil, "Inspect and trim the continuous WAL archives", newWALInfoCommand(g), newWALCleanupCommand(g), newWALPushCommand(g), newWALFetchCommand(g))
}

func newWALInfoCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "info [PROJECT[/BRANCH]]",
		Short: "Show WAL archives: size, segments, continuity, and the moments --pitr can reach",
		Args:  maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := optionalArg(args, validateProjectOrRef)
			if err != nil {
				return err
			}
			return runWALInfo(c.Context(), g, o, ref)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runWALInfo(ctx context.Context, g *Globals, o jsonOptions, ref string) error {
	p, e, err := g.open(ctx, o.JSON, true)
	if err != nil {
		return err
	}
	defer e.Close()
	infos, err := e.WAL(ctx, ref)
	if err != nil {
		return err
	}
	for _, w := range infos {
		if w.Archive != nil && w.Archive.Warning != "" {
			p.Warn("%s: %s", w.Branch, w.Archive.Warning)
		}
	}
	if err := p.Result(view.NewWALs(infos), func(w io.Writer) { printWAL(w, infos) }); err != nil {
		return err
	}
	for _, w := range infos {
		if !w.Continuous {
			return fmt.Errorf("the WAL archive of %s has gaps: point-in-time branches cannot cross them", w.Branch)
		}
	}
	return nil
}

func printWAL(w io.Writer, infos []engine.WALInfo) {
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	for i, a := range infos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s\n  Directory:  %s\n  Segments:   %d (%s)\n", a.Branch, a.Directory, a.Segments, ui.Bytes(a.Bytes))
		if a.Oldest != nil {
			fmt.Fprintf(w, "  Oldest:     %s  %s\n  Newest:     %s  %s\n", a.Oldest.Name, when(&a.Oldest.Time), a.Newest.Name, when(&a.Newest.Time))
		}
		if a.Continuous {
			fmt.Fprintf(w, "  Continuity: ok\n")
		} else {
			for _, gap := range a.Gaps {
				fmt.Fprintf(w, "  Continuity: BROKEN: %s\n", gap)
			}
		}
		fmt.Fprintf(w, "  PITR range: %s to %s\n", when(a.Earliest), when(a.Latest))
		if a.Archive != nil {
			fmt.Fprintf(w, "  Archive:    %s\n", archiveText(a.Archive))
		}
	}
}

func newWALCleanupCommand(g *Globals) *cobra.Command {
	var o cleanupOptions
	c := &cobra.Command{
		Use:   "cleanup PROJECT/BRANCH --days N",
		Short: "Remove archived WAL older than N days that no snapshot still needs",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.DaysSet = c.Flags().Changed("days")
			return runWALCleanup(c.Context(), g, o, args[0])
		},
	}
	o.AddFlags(c.Flags(), "segments")
	return c
}

func runWALCleanup(ctx context.Context, g *Globals, o cleanupOptions, ref string) error {
	if err := o.check("wal cleanup"); err != nil {
		return err
	}
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := e.CleanupWAL(ctx, ref, o.Days, o.DryRun)
	if err != nil {
		return err
	}
	return p.Result(view.NewWALCleanup(res), func(w io.Writer) {
		verb := "Removed"
		if o.DryRun {
			verb = "Would remove"
		}
		for _, n := range res.Removed {
			fmt.Fprintf(w, "%s %s\n", verb, n)
		}
		for _, n := range res.RemovedRemote {
			fmt.Fprintf(w, "%s %s from %s\n", verb, n, res.Archive)
		}
		if res.KeptFrom != "" {
			fmt.Fprintf(w, "Kept %s and later: a snapshot needs them\n", res.KeptFrom)
		}
		if res.PushedKeptFrom != "" {
			fmt.Fprintf(w, "Kept %s and later in %s: a pushed snapshot needs them\n", res.PushedKeptFrom, res.Archive)
		}
		if len(res.NotUploaded) > 0 {
			fmt.Fprintf(w, "Kept %d segment(s) old enough to go in the local archive: not in %s yet (velo wal push)\n", len(res.NotUploaded), res.Archive)
		}
		fmt.Fprintf(w, "%s %d segment(s), %s\n", verb, len(res.Removed), ui.Bytes(res.Bytes))
		if res.Archive != "" {
			fmt.Fprintf(w, "%s %d segment(s) from %s\n", verb, len(res.RemovedRemote), res.Archive)
		}
	})
}

func newWALPushCommand(g *Globals) *cobra.Command {
	var o jsonOptions
	c := &cobra.Command{
		Use:   "push [PROJECT]",
		Short: "Upload the WAL archives to the projects' object storage now (velo serve does it while it runs)",
		Long: `Upload every file of the local WAL archives (segments, .history and .backup
files) that is not in the project's bucket yet, verify each by its SHA-256 read
back from the store, and record it. An object that exists with other content is
reported and never overwritten. Credentials come from the AWS chain
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials).`,
		Args: maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := optionalArg(args, validateProject)
			if err != nil {
				return err
			}
			return runWALPush(c.Context(), g, o, ref)
		},
	}
	o.AddFlags(c.Flags())
	return c
}

func runWALPush(ctx context.Context, g *Globals, o jsonOptions, project string) error {
	p, e, err := g.open(ctx, o.JSON, false)
	if err != nil {
		return err
	}
	defer e.Close()
	rs, pushErr := e.PushWAL(ctx, project)
	if rs == nil {
		return pushErr
	}
	if err := p.Result(view.NewPush(rs), func(w io.Writer) {
		if len(rs) == 0 {
			fmt.Fprintln(w, "No project has an archive in object storage; set one with velo project set NAME --archive s3://BUCKET/PREFIX")
		}
		for _, r := range rs {
			fmt.Fprintf(w, "%s: uploaded %d file(s), %s; %d uploaded before\n", r.Project, r.Uploaded, ui.Bytes(r.Bytes), r.Already)
			a := engine.ArchiveSummary{URL: r.Archive, ArchiveCounts: r.ArchiveCounts}
			fmt.Fprintf(w, "  %s\n", archiveText(&a))
			for _, e := range r.Errors {
				fmt.Fprintf(w, "  error: %s\n", e)
			}
		}
	}); err != nil {
		return err
	}
	return pushErr
}

// walFetchOptions are the flags of velo wal fetch.
type walFetchOptions struct {
	Archive, Endpoint, Volume string
	Standby                   bool
}

func (o *walFetchOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Archive, "archive", "", "the archive: s3://BUCKET/PREFIX")
	fs.StringVar(&o.Endpoint, "archive-endpoint", "", "the URL of an S3-compatible service other than AWS")
	fs.StringVar(&o.Volume, "volume", "", "the volume whose WAL to read (PREFIX/wal/VOLUME/)")
	fs.BoolVar(&o.Standby, "standby", false, "for a standby: a store that does not answer is a plain failure, which Postgres retries")
}

func newWALFetchCommand(g *Globals) *cobra.Command {
	var o walFetchOptions
	c := &cobra.Command{
		Use:   "fetch FILE PATH",
		Short: "Download one WAL file from object storage (the restore_command of a project made with --from-archive)",
		Long: `Download the WAL file FILE (Postgres's %f) of a volume's archive in object storage
to PATH (%p), refusing it if its SHA-256 differs from the one it was stored with.
Postgres runs it as the restore_command of a project made with project create
--from-archive; it reads no state. A file not in the bucket exits 2, which Postgres
takes as the end of the WAL; a store that does not answer exits 126, which stops
a recovery rather than let it promote early (with --standby it exits 1 and the
standby retries). Credentials come from the AWS chain.`,
		Args: exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error { return runWALFetch(c.Context(), o, args[0], args[1]) },
	}
	o.AddFlags(c.Flags())
	return c
}

func runWALFetch(ctx context.Context, o walFetchOptions, name, path string) error {
	if o.Archive == "" || o.Volume == "" {
		return errdefs.Usage("velo wal fetch needs --archive s3://BUCKET/PREFIX and --volume ID")
	}
	switch {
	case path == "":
		return errdefs.Usage("velo wal fetch FILE PATH: PATH is empty: give it a value (Postgres's %%p)")
	case len(path) > 4095:
		return errdefs.Invalid("velo wal fetch FILE PATH: %s is longer than a path can be (4095 bytes)", ui.Quote(path))
	}
	for _, r := range path {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return errdefs.Invalid("velo wal fetch FILE PATH: %s holds a character that is not printable: paths must be printable text", ui.Quote(path))
		}
	}
	return engine.FetchWAL(ctx, engine.FetchWALOptions{Archive: o.Archive, Endpoint: o.Endpoint, Volume: o.Volume, Name: name, Path: path, Standby: o.Standby})
}
