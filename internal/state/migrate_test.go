package state

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// TestOpenNewHomeAtOnce opens a new home from several stores at the same
// moment, as velo processes started together do: each opens it, and the
// migrations run once.
func TestOpenNewHomeAtOnce(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		home := filepath.Join(t.TempDir(), "home")
		const n = 8
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, err := Open(ctx, home)
				if err == nil {
					_, err = s.Q().Projects(ctx)
					s.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, open %d: %v", round, i, err)
			}
		}
		s, err := Open(ctx, home)
		if err != nil {
			t.Fatal(err)
		}
		var rows, v int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &v); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || v != len(migrations) {
			t.Errorf("round %d: schema_version has %d rows, version %d; want 1 row, version %d", round, rows, v, len(migrations))
		}
		s.Close()
	}
}
