package engine_test

// The engine's use cases on the copy driver in a temporary directory, with
// the runtime and pools given as cmd/velo gives them. They need root (the
// servers run as the postgres user) and a Postgres install, as the runtime
// suite does, and skip without them unless VELO_TEST_REQUIRE says not to.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime/native"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/testenv"
	"github.com/velohq/velo/internal/ui"
)

// countingPools is drivers.Pools that counts the drivers it opens, to show
// the engine builds storage only through what it is given.
type countingPools struct {
	drivers.Pools
	opened int
}

func (c *countingPools) Open(ctx context.Context, driver, pool string) (storage.Driver, error) {
	c.opened++
	return c.Pools.Open(ctx, driver, pool)
}

// newEngine is an engine on a new home, with a pool directory beside it;
// both can be passed through by the postgres user.
func newEngine(t *testing.T) (*engine.Engine, *countingPools, string) {
	t.Helper()
	testenv.RequireRoot(t)
	if ins, err := pg.FindInstalls(context.Background()); err != nil || len(ins) == 0 {
		testenv.Skip(t, "postgres", "no Postgres install found")
	}
	dir, err := os.MkdirTemp("", "velo-engine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	pools := &countingPools{}
	e, err := engine.New(context.Background(), engine.Config{Home: filepath.Join(dir, "home"), Runtime: native.New(), Pools: pools,
		Progress: ui.Quiet(os.Stderr), Command: "velo test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Servers go before their directories.
		ctx := context.Background()
		if ps, err := e.Projects(ctx); err == nil {
			for _, p := range ps {
				if err := e.DeleteProject(ctx, p.Name, true); err != nil {
					t.Errorf("cleanup: delete project %s: %v", p.Name, err)
				}
			}
		}
		e.Close()
	})
	pool := filepath.Join(dir, "pool")
	if err := os.Mkdir(pool, 0o711); err != nil { // --pool must exist
		t.Fatal(err)
	}
	return e, pools, pool
}

// conn runs fn on a connection to ref's server.
func conn(t *testing.T, e *engine.Engine, ref string, fn func(context.Context, *pgx.Conn) error) {
	t.Helper()
	ctx := context.Background()
	c, err := e.Password(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pg.Connect(ctx, c.Port, c.Password)
	if err != nil {
		t.Fatalf("connect to %s: %v", ref, err)
	}
	defer pc.Close(ctx)
	if err := fn(ctx, pc); err != nil {
		t.Fatalf("on %s: %v", ref, err)
	}
}

func query(t *testing.T, e *engine.Engine, ref, sql string) string {
	t.Helper()
	var out string
	conn(t, e, ref, func(ctx context.Context, c *pgx.Conn) error { return c.QueryRow(ctx, sql).Scan(&out) })
	return out
}

func exec(t *testing.T, e *engine.Engine, ref, sql string) {
	t.Helper()
	conn(t, e, ref, func(ctx context.Context, c *pgx.Conn) error { _, err := c.Exec(ctx, sql); return err })
}

// TestProjectAndBranchesOnCopy: project create makes a running main on the
// given pool; branch create copies main's rows into a running branch of
// its own volume; a second create of that name is refused with nothing
// changed; branch delete takes the server, the volume and the record.
func TestProjectAndBranchesOnCopy(t *testing.T) {
	ctx := context.Background()
	e, pools, pool := newEngine(t)
	if _, err := e.CreateProject(ctx, engine.CreateProjectOptions{Name: "u", Pool: pool, Storage: "copy"}); err != nil {
		t.Fatal(err)
	}
	if pools.opened == 0 {
		t.Errorf("the engine built its storage without the pools it was given")
	}
	p, err := e.Project(ctx, "u")
	if err != nil || p.Storage != "copy" || p.Pool != pool || p.Branches != 1 {
		t.Fatalf("project u = %+v, %v", p, err)
	}
	exec(t, e, "u/main", "CREATE TABLE t AS SELECT 42 AS v")
	if _, err := e.CreateBranch(ctx, engine.CreateBranchOptions{Ref: "u/dev"}); err != nil {
		t.Fatal(err)
	}
	dev, err := e.Branch(ctx, "u/dev")
	if err != nil || dev.State != "running" || dev.Parent != "u/main" {
		t.Fatalf("u/dev = %+v, %v", dev, err)
	}
	if got := query(t, e, "u/dev", "SELECT v::text FROM t"); got != "42" {
		t.Errorf("u/dev has %s, want main's 42", got)
	}
	if _, err := os.Stat(filepath.Join(dev.DataDir, "PG_VERSION")); err != nil || filepath.Dir(filepath.Dir(dev.DataDir)) != filepath.Join(drivers.Root(pool), "vol") {
		t.Errorf("u/dev's data directory %s is not a volume of the pool: %v", dev.DataDir, err)
	}
	// The branch's writes stay its own.
	exec(t, e, "u/dev", "INSERT INTO t VALUES (7)")
	if got := query(t, e, "u/main", "SELECT count(*)::text FROM t"); got != "1" {
		t.Errorf("main sees %s rows after a write to dev, want 1", got)
	}

	before, _ := e.Branches(ctx, "u", false)
	if _, err := e.CreateBranch(ctx, engine.CreateBranchOptions{Ref: "u/dev"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second create of u/dev: %v, want ErrAlreadyExists", err)
	}
	if after, _ := e.Branches(ctx, "u", false); len(after) != len(before) {
		t.Errorf("a refused create changed the branches: %d, then %d", len(before), len(after))
	}

	if err := e.DeleteBranch(ctx, "u/dev", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Branch(ctx, "u/dev"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("u/dev after delete: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(dev.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("u/dev's data directory stays after delete: %v", err)
	}
	if got := query(t, e, "u/main", "SELECT v::text FROM t"); got != "42" {
		t.Errorf("main after deleting dev has %s", got)
	}
}
