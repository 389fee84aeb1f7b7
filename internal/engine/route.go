package engine

import (
	"context"
	"net"
	"strconv"

	"github.com/velohq/velo/internal/pg"
)

// Address is where velo serve's router reaches a branch's server: read
// from the state at each call, so that a branch created, started or reset
// by the CLI meanwhile is found as it is now.
func (e *Engine) Address(ctx context.Context, project, branch string) (string, error) {
	_, b, err := e.ref(ctx, project+"/"+branch)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(pg.LocalHost, strconv.Itoa(b.Port)), nil
}
