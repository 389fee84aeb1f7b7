package copy_test

import (
	"os"
	"testing"

	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/copy"
	"github.com/velohq/velo/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	// A filesystem of its own where it can have one: the suite reads the
	// pool's free space, which other tests writing to /tmp at the same
	// time would move (DestroyFreesSpace failed so under a parallel run).
	root := t.TempDir()
	if os.Geteuid() == 0 {
		root = storagetest.LoopFS(t, "ext4", 1<<30, []string{"-q", "-F"}, "")
	}
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
