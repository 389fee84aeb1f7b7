package serve

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Cancel requests. A client cancels a query (psql's Ctrl-C) by opening a
// new connection to where it connected, the router, and sending the
// process ID and secret key its server gave it in BackendKeyData. The
// router reads that message as it relays each session's startup, keeps
// the key while the session lasts, and sends a cancel whose key it holds
// to that session's server; any other it drops, as Postgres does.

// cancelKeys maps a session's key to its server's address.
type cancelKeys struct {
	mu   sync.Mutex
	keys map[string]string
}

func cancelKey(pid uint32, secret []byte) string {
	return string(binary.BigEndian.AppendUint32(nil, pid)) + string(secret)
}

func (k *cancelKeys) add(key, addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]string{}
	}
	k.keys[key] = addr
}

func (k *cancelKeys) remove(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, key)
}

func (k *cancelKeys) lookup(key string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	addr, ok := k.keys[key]
	return addr, ok
}

// cancel relays m to the server of the session whose key it carries.
func (r *Router) cancel(ctx context.Context, m *pgproto3.CancelRequest) {
	addr, ok := r.keys.lookup(cancelKey(m.ProcessID, m.SecretKey))
	if !ok {
		r.log().Debug("cancel for no session of this router", "pid", m.ProcessID)
		return
	}
	buf, err := m.Encode(nil)
	if err != nil {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.log().Warn("cancel", "server", addr, "err", err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	_, _ = c.Write(buf)
	// The server closes the connection once it has read the request.
	_, _ = io.Copy(io.Discard, c)
}

// maxStartupMessage bounds one message of the server's startup phase
// (authentication, parameters, key, notices) that the router reads whole.
const maxStartupMessage = 1 << 20

// relayStartup copies the server's messages to the client up to its first
// ReadyForQuery (or an error, which ends the session), handing its
// BackendKeyData to onKey before the client sees it. From then on the
// caller copies bytes. The messages that arrived together leave together,
// in one write: the dozen or so of the end of authentication (parameters,
// key, ReadyForQuery) would otherwise cost a write each.
func relayStartup(client io.Writer, server *bufio.Reader, onKey func(key string)) error {
	w := bufio.NewWriterSize(client, 4096)
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, head); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[1:]))
		if n < 4 || n > maxStartupMessage {
			return fmt.Errorf("server message %q of %d bytes during startup", head[0], n)
		}
		msg := make([]byte, 1+n)
		copy(msg, head)
		if _, err := io.ReadFull(server, msg[5:]); err != nil {
			return err
		}
		if head[0] == 'K' && n >= 8 {
			onKey(cancelKey(binary.BigEndian.Uint32(msg[5:9]), msg[9:]))
		}
		if _, err := w.Write(msg); err != nil {
			return err
		}
		// Flushed before the next read could wait for the server, which
		// may be waiting for the client's answer to what was buffered.
		if end := head[0] == 'Z' || head[0] == 'E'; end || !nextArrived(server) {
			if err := w.Flush(); err != nil || end {
				return err
			}
		}
	}
}

// nextArrived reports whether the next message is whole in r's buffer, so
// that reading it will not wait.
func nextArrived(r *bufio.Reader) bool {
	if r.Buffered() < 5 {
		return false
	}
	h, err := r.Peek(5)
	return err == nil && r.Buffered() >= 1+int(binary.BigEndian.Uint32(h[1:]))
}
