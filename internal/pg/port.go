package pg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Ports are picked below Linux's ephemeral range (32768-60999), so that an
// outgoing connection never takes the port a stopped branch keeps.
const (
	portLow  = 20000
	portHigh = 32000
)

// FreePort returns a TCP port that is free on 127.0.0.1 now and not in
// avoid (the ports of servers that are stopped but keep theirs). Nothing
// reserves it, so the caller records it, and a start that loses the race
// fails with Postgres's own "could not bind" in the log.
func FreePort(avoid map[int]bool) (int, error) {
	const attempts = 200
	for range attempts {
		port := portLow + rand.IntN(portHigh-portLow)
		if avoid[port] {
			continue
		}
		l, err := net.Listen("tcp4", net.JoinHostPort(LocalHost, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		return port, nil
	}
	return 0, errors.New("find a free port: no free port between 20000 and 32000 after 200 tries")
}
