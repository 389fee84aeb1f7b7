package zfs_test

import (
	"context"
	"testing"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/storagetest"
	"github.com/velohq/velo/internal/storage/zfs"
	"github.com/velohq/velo/internal/storage/zfs/zfstest"
)

func TestConformance(t *testing.T) {
	pool := zfstest.Pool(t)
	storagetest.Suite(t, func(t *testing.T) storage.Driver {
		d, err := zfs.New(context.Background(), pool)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func BenchmarkSnapshotClone(b *testing.B) {
	d, err := zfs.New(context.Background(), zfstest.Pool(b))
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Bench(b, d)
}
