package serve

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Listener is one service of the daemon, on its own address (the router,
// the HTTP API) or on none (Ln nil: the uploader).
type Listener struct {
	Name string
	Ln   net.Listener
	// Serve runs until ctx ends, owning Ln.
	Serve func(ctx context.Context, ln net.Listener) error
}

// Run runs every listener until ctx ends or one of them fails; then it
// stops the others and returns the first failure.
func Run(ctx context.Context, ls ...Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Serve(ctx, l.Ln); err != nil {
				errs[i] = errors.New(l.Name + ": " + err.Error())
			}
			cancel()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
