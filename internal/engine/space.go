package engine

import (
	"context"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

// minPoolFree is the free space below which Velo starts no work that makes
// the Postgres servers of a pool write (a CHECKPOINT, the backup protocol,
// a WAL switch) or adds a server to it. A server that cannot write its WAL
// stops (PANIC), and on a copy-on-write pool every server shares the same
// free blocks: a checkpoint velo asked of a healthy parent on a full pool
// would stop it. 64 MiB holds a few WAL segments and a checkpoint's writes
// of a lightly used server.
const minPoolFree = 64 << 20

// requireSpace refuses, before anything is changed, to work on p's pool
// while it has less than minPoolFree free. A pool whose figures cannot be
// read is not refused: the work then fails on its own if it must.
func (e *Engine) requireSpace(ctx context.Context, p state.Project, d storage.Driver, what string) error {
	st, err := d.Pool(ctx)
	if err != nil || st.Free >= minPoolFree {
		return nil
	}
	// errdefs.ErrNoSpace, exit code 1: nothing is wrong with the input, and
	// freeing space makes the same command work.
	return errdefs.NoSpace("no space left on pool %s (project %s): %s free of %s, under the %s Velo keeps free so that the Postgres servers there can write their WAL; %s now could stop them; free space first with velo branch delete or velo snapshot delete (velo status shows what uses it), then retry",
		st.Name, p.Name, ui.Bytes(st.Free), ui.Bytes(st.Size), ui.Bytes(minPoolFree), what)
}
