package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/velohq/velo/internal/bench"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/storage/drivers"
)

// inServerClone times PostgreSQL 18's own copy-on-write clone, the
// strongest alternative to a branch where a new database in the same
// server is enough: `CREATE DATABASE ... TEMPLATE postgres STRATEGY
// FILE_COPY` with file_copy_method = clone, on a server whose data
// directory lies on the driver's pool (a clone of main's volume, so the
// same filesystem Velo's branches use), until the new database answers.
// Only where the filesystem can clone files (btrfs and XFS reflink; on
// zfs-fuse and plain directories PostgreSQL's clone has nothing to call)
// and only with PostgreSQL 18 or later.
func (m *measure) inServerClone(ctx context.Context) error {
	if m.c.pgMajor < 18 || (m.p.driver != "btrfs" && m.p.driver != "reflink") {
		return nil
	}
	d, err := drivers.Open(ctx, m.p.driver, m.p.name)
	if err != nil {
		return err
	}
	runAs, err := pg.LookupRunAs()
	if err != nil {
		return err
	}
	if err := exec1(ctx, m.main.Port, m.password, "postgres", "CHECKPOINT"); err != nil {
		return err
	}
	if err := d.Snapshot(ctx, m.main.Volume, "inserver-s"); err != nil {
		return err
	}
	path, err := d.Clone(ctx, "inserver-s", "inserver-v")
	if err != nil {
		return errors.Join(err, d.DestroySnapshot(ctx, "inserver-s"))
	}
	defer func() {
		_ = d.DestroyVolume(context.WithoutCancel(ctx), "inserver-v")
		_ = d.DestroySnapshot(context.WithoutCancel(ctx), "inserver-s")
	}()
	srv, err := startPostgres(ctx, m.c, filepath.Join(path, "pgdata"), runAs, m.password, m.scale, "file_copy_method=clone")
	if err != nil {
		return err
	}
	defer srv.stop()
	logf("%s %d MB: in-server clone on %s, port %d", m.p.driver, m.size, path, srv.port)
	s, err := timeRuns(m.c.reps, func(i int) (time.Duration, error) {
		db := fmt.Sprintf("fc%d", i)
		start := time.Now()
		if err := exec1(ctx, srv.port, m.password, "template1", "CREATE DATABASE "+db+" TEMPLATE postgres STRATEGY FILE_COPY"); err != nil {
			return 0, err
		}
		if err := answers(ctx, srv.port, m.password, db, m.scale); err != nil {
			return 0, err
		}
		d := time.Since(start)
		return d, exec1(ctx, srv.port, m.password, "template1", "DROP DATABASE "+db)
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, bench.InServerClone, s)
	return nil
}
