package engine

import (
	"context"
	"errors"
	"unicode"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
)

// importProject makes a project from an existing server (--from): a base
// backup followed by streaming (physical), or a dump restored (logical).
func (e *Engine) importProject(ctx context.Context, o CreateProjectOptions, listen []string) (Conn, error) {
	src, err := checkImportFlags(o)
	if err != nil {
		return Conn{}, err
	}
	if o.Logical {
		return e.createLogical(ctx, o, src, listen)
	}
	_ = src
	_ = listen
	return Conn{}, errdefs.Invalid("physical import is not built yet")
}

// checkImportFlags checks the flags of an import and parses SOURCE.
func checkImportFlags(o CreateProjectOptions) (pg.Source, error) {
	if o.From == "" {
		return pg.Source{}, errdefs.Invalid("--logical, --no-follow, --slot and --database go with --from SOURCE")
	}
	if o.Logical && (o.Slot || o.NoFollow) {
		return pg.Source{}, errdefs.Invalid("--slot and --no-follow are for a physical import; a logical one (--logical) takes one copy, refreshed with velo project refresh")
	}
	if o.Slot && o.NoFollow {
		return pg.Source{}, errdefs.Invalid("--slot keeps WAL on the source for main to stream, but --no-follow does not stream; drop one of them")
	}
	if len(o.Databases) > 0 && !o.Logical {
		return pg.Source{}, errdefs.Invalid("--database picks databases of a logical import; add --logical, or drop --database (a physical import takes the whole server)")
	}
	for _, d := range o.Databases {
		if err := checkDatabaseName(d); err != nil {
			return pg.Source{}, err
		}
	}
	src, err := pg.ParseSource(o.From)
	if err != nil {
		return src, errdefs.Invalid("%v", err)
	}
	return src, nil
}

// sourceError gives a source's errors their exit code: a refusal is bad
// input (2), no answer a failure (1).
//
//lint:ignore U1000 the import (issue 13) calls it once it is built.
func sourceError(err error) error {
	if errors.Is(err, pg.ErrSourceRefused) {
		return errdefs.Invalid("%w", err)
	}
	return err
}

// checkDatabaseName refuses what cannot be a database's name before the
// source is reached: Postgres takes any text of at most 63 bytes, but a
// control or format character in one is a typo or an attack, never a name.
func checkDatabaseName(d string) error {
	printable := d != ""
	for _, r := range d {
		printable = printable && unicode.IsPrint(r)
	}
	if !printable || len(d) > 63 {
		return errdefs.Invalid("--database %s is not a database name: names are printable text of at most 63 bytes", quote(d))
	}
	return nil
}
