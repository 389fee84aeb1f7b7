package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Resolver finds, wakes and suspends the branches' servers for the
// router. Its errors are shown to the client as they are.
type Resolver interface {
	// Resolve finds the address of a branch's server ("127.0.0.1:PORT"),
	// reading the state anew for each connection, so that a branch the
	// CLI started, reset or renamed is routed as it is now.
	Resolve(ctx context.Context, project, branch string) (addr string, err error)
	// Wake starts a branch's server unless it runs (refusing a branch the
	// user stopped) and returns its address once it accepts connections.
	Wake(ctx context.Context, project, branch string) (addr string, err error)
	// IdleBranches lists the branches with an idle timeout.
	IdleBranches(ctx context.Context) ([]Idle, error)
	// Suspend stops a branch's server for want of clients and reports
	// whether it did; ErrBusy (wrapped) when its server has clients of its
	// own port.
	Suspend(ctx context.Context, project, branch string) (bool, error)
}

// Router routes PostgreSQL connections to the branches' servers.
type Router struct {
	Resolver Resolver
	// TLS, when set, is offered to clients (SSLRequest and direct TLS);
	// RouterTLS makes it. Without it SSLRequest is declined. Clients not on
	// loopback are refused unless they use TLS.
	TLS *tls.Config
	// StartupTimeout bounds the startup phase: a client that sends no
	// complete startup message by then is dropped.
	StartupTimeout time.Duration
	// MaxConns bounds the connections relayed at once; one more is told
	// "too many connections" and closed.
	MaxConns int
	// IdleInterval is how often idle branches are looked for; 0 for
	// DefaultIdleInterval, negative for never (no suspend).
	IdleInterval time.Duration
	Log          *slog.Logger

	tracker *tracker
	keys    cancelKeys
}

// Defaults of a Router's limits.
const (
	DefaultStartupTimeout = 10 * time.Second
	DefaultMaxConns       = 2000
	DefaultIdleInterval   = time.Second
	dialTimeout           = 10 * time.Second
)

// Serve accepts connections on ln until ctx ends, then closes ln and waits
// for the connections it relays to end (closing them).
func (r *Router) Serve(ctx context.Context, ln net.Listener) error {
	startup, maxConns := r.StartupTimeout, r.MaxConns
	if startup <= 0 {
		startup = DefaultStartupTimeout
	}
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	r.tracker = newTracker()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	slots := make(chan struct{}, maxConns)
	// refusing bounds the connections being told "too many" at once; past
	// it, one more is closed unanswered.
	refusing := make(chan struct{}, max(maxConns/4, 64))
	var wg sync.WaitGroup
	defer wg.Wait()
	if interval := r.IdleInterval; interval >= 0 {
		if interval == 0 {
			interval = DefaultIdleInterval
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.suspendIdle(ctx, interval)
		}()
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: wait rather than spin.
			log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !take(slots) {
			if take(refusing) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-refusing }()
					r.refuseBusy(c)
				}()
			} else {
				c.Close()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r.handle(ctx, c, startup, log)
		}()
	}
}

// take takes a place in sem if one is free.
func take(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// busyTimeout bounds the startup phase of a client told "too many".
const busyTimeout = 2 * time.Second

// refuseBusy tells a client past MaxConns that there are too many
// connections, after its TLS negotiation, as Postgres does, so that a
// client that asked for TLS reads the error as an error (a slow or broken
// startup is told too); a cancel request is just closed.
func (r *Router) refuseBusy(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(busyTimeout))
	c, msg, _ := r.negotiate(c)
	if _, cancel := msg.(*pgproto3.CancelRequest); cancel {
		c.Close()
		return
	}
	refuse(c, "53300", "velo serve: too many connections")
}

// refuse answers a client with a FATAL ErrorResponse and closes it.
func refuse(c net.Conn, code, msg string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf, err := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	if err == nil {
		_, _ = c.Write(buf)
	}
}

func (r *Router) handle(ctx context.Context, c net.Conn, startup time.Duration, log *slog.Logger) {
	_ = c.SetDeadline(time.Now().Add(startup))
	c, msg, err := r.negotiate(c)
	if err != nil {
		// A malformed or slow startup: the client may not be a Postgres
		// client at all; tell it, then drop it.
		log.Debug("startup refused", "remote", c.RemoteAddr(), "err", err)
		refuse(c, "08P01", "velo serve: invalid startup packet: "+err.Error())
		return
	}
	switch m := msg.(type) {
	case *pgproto3.CancelRequest:
		// Postgres answers a cancel with nothing but closing, once done.
		r.cancel(ctx, m)
		c.Close()
		return
	case *pgproto3.StartupMessage:
		r.route(ctx, c, m, log)
	}
}

// route connects the client to its branch's server and relays.
func (r *Router) route(ctx context.Context, c net.Conn, m *pgproto3.StartupMessage, log *slog.Logger) {
	if _, isTLS := c.(*tls.Conn); !isTLS && !isLoopback(c) {
		refuse(c, "28000", "velo serve accepts connections from other hosts over TLS only: connect with sslmode=require or stronger")
		return
	}
	t, err := target(c, m.Parameters)
	if err != nil {
		var se errStartup
		errors.As(err, &se)
		refuse(c, se.code, se.msg)
		return
	}
	b, done := r.tracker.open(t.Ref())
	defer done()
	server, err := r.dialBranch(ctx, t, b)
	if err != nil {
		var se errStartup
		if errors.As(err, &se) {
			refuse(c, se.code, se.msg)
		} else {
			refuse(c, "57P03", fmt.Sprintf("branch %s: its server does not answer (%v); see velo branch get %s", t.Ref(), err, t.Ref()))
		}
		return
	}
	addr := server.RemoteAddr().String()
	if t.Database == "" {
		delete(m.Parameters, "database")
	} else {
		m.Parameters["database"] = t.Database
	}
	buf, err := m.Encode(nil)
	if err == nil {
		_, err = server.Write(buf)
	}
	if err != nil {
		server.Close()
		refuse(c, "08006", fmt.Sprintf("branch %s: %v", t.Ref(), err))
		return
	}
	_ = c.SetDeadline(time.Time{})
	log.Debug("routed", "remote", c.RemoteAddr(), "branch", t.Ref(), "server", addr)
	relay(ctx, c, server, func(key string) { r.keys.add(key, addr) }, r.keys.remove)
}

// relay copies bytes both ways until either side closes or ctx ends, then
// closes both. The server's startup messages are read whole on the way,
// so that its cancel key is registered (onKey) while the session lasts
// (dropped with offKey).
func relay(ctx context.Context, client, server net.Conn, onKey, offKey func(string)) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(server, client)
		done <- struct{}{}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		br := bufio.NewReader(server)
		var key string
		err := relayStartup(client, br, func(k string) {
			key = k
			onKey(k)
		})
		if key != "" {
			defer offKey(key)
		}
		if err == nil && br.Buffered() > 0 {
			_, err = io.CopyN(client, br, int64(br.Buffered()))
		}
		if err == nil {
			// Straight from the server's connection, not through br, so
			// that two TCP connections copy with splice(2).
			_, _ = io.Copy(client, server)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	<-done
}
