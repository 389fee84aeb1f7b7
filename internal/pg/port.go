package pg

import (
	"errors"
	"fmt"
	"net"
)

// FreePort returns a TCP port that is free on 127.0.0.1 now and not in
// avoid (the ports of servers that are stopped but keep theirs). The kernel
// picks it from its ephemeral range; nothing reserves it, so the caller
// records it and a start that loses the race fails with Postgres's own
// "could not bind" in the log.
func FreePort(avoid map[int]bool) (int, error) {
	const attempts = 100
	for range attempts {
		l, err := net.Listen("tcp4", LocalHost+":0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		if !avoid[port] {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: every port the kernel offered is in use by velo")
}
