package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/storage"
)

// Bench measures what a branch costs on driver d: it lays out 1 GB the way
// a Postgres data directory is laid out, then times Snapshot and Clone of it
// on each iteration, destroying both outside the timer. It reports the
// mean snapshot-ms and clone-ms. The page cache is warm and the data synced,
// as after a CHECKPOINT.
func Bench(b *testing.B, d storage.Driver) {
	ctx := context.Background()
	prefix := fmt.Sprintf("b%04x", rand.IntN(1<<16))
	vol, err := d.CreateVolume(ctx, prefix+"v")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.DestroyVolume(ctx, prefix+"v") })
	n, files := layDataDir(b, vol)
	syscall.Sync()
	b.Logf("%s: data directory of %d MB in %d files", d.Name(), n/mb, files)

	var snapTime, cloneTime time.Duration
	i := 0
	for b.Loop() {
		snap, clone := fmt.Sprintf("%ss%d", prefix, i), fmt.Sprintf("%sc%d", prefix, i)
		i++
		start := time.Now()
		if err := d.Snapshot(ctx, prefix+"v", snap); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := d.Clone(ctx, snap, clone); err != nil {
			b.Fatal(err)
		}
		snapTime += mid.Sub(start)
		cloneTime += time.Since(mid)

		b.StopTimer()
		if err := d.DestroyVolume(ctx, clone); err != nil {
			b.Fatal(err)
		}
		if err := d.DestroySnapshot(ctx, snap); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		b.StartTimer()
	}
	b.ReportMetric(float64(snapTime.Microseconds())/1e3/float64(i), "snapshot-ms")
	b.ReportMetric(float64(cloneTime.Microseconds())/1e3/float64(i), "clone-ms")
}

// benchSegment is the segment size of the benchmark's relations. Postgres
// splits a relation into 1 GB files (16384, 16384.1, ...); a smaller size
// gives 300 MB relations several segments, as larger tables have.
const benchSegment = 128 * mb

// layDataDir writes about 1 GB under root, shaped like a data directory:
// three 300 MB relations in segments with their free-space and visibility
// maps, about 1000 small relations of 8 to 64 KB, four 16 MB WAL segments
// and the small files around them. It returns the bytes and files written.
func layDataDir(b *testing.B, root string) (int64, int) {
	b.Helper()
	var total int64
	files := 0
	write := func(rel string, size int64) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			b.Fatal(err)
		}
		if err := writeData(p, size); err != nil {
			b.Fatal(err)
		}
		total += size
		files++
	}
	db := filepath.Join("base", "16384")
	for r := 0; r < 3; r++ {
		node := 16400 + r
		left := int64(300 * mb)
		for seg := 0; left > 0; seg++ {
			name := fmt.Sprint(node)
			if seg > 0 {
				name += fmt.Sprintf(".%d", seg)
			}
			write(filepath.Join(db, name), min(left, benchSegment))
			left -= benchSegment
		}
		write(filepath.Join(db, fmt.Sprintf("%d_fsm", node)), 96<<10)
		write(filepath.Join(db, fmt.Sprintf("%d_vm", node)), 8<<10)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		dir := db
		switch i % 4 {
		case 0:
			dir = filepath.Join("base", "1")
		case 1:
			dir = filepath.Join("base", "5")
		}
		write(filepath.Join(dir, fmt.Sprint(20000+i)), int64(1+rng.IntN(8))*8<<10)
	}
	for i := 1; i <= 4; i++ {
		write(filepath.Join("pg_wal", fmt.Sprintf("0000000100000000000000%02X", i)), 16*mb)
	}
	for _, f := range []string{"PG_VERSION", "postgresql.conf", "pg_hba.conf", "global/pg_control", "global/1262", "pg_xact/0000", "pg_multixact/offsets/0000"} {
		write(f, 8<<10)
	}
	for _, d := range []string{"pg_wal/archive_status", "pg_tblspc", "pg_snapshots", "pg_stat_tmp", "pg_logical/snapshots"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	return total, files
}

// writeData writes size bytes of incompressible data to a new file.
func writeData(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16), 9})
	buf := make([]byte, min(size, mb))
	for left := size; left > 0; left -= int64(len(buf)) {
		if left < int64(len(buf)) {
			buf = buf[:left]
		}
		_, _ = r.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
