package copy_test

import (
	"testing"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/copy"
	"github.com/velohq/velo/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	root := t.TempDir()
	storagetest.Suite(t, func(t *testing.T) storage.Driver {
		d, err := copy.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func BenchmarkSnapshotClone(b *testing.B) {
	d, err := copy.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Bench(b, d)
}
