package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Resolver finds the address of a branch's server ("127.0.0.1:PORT"),
// reading the state anew for each connection, so that a branch the CLI
// started, reset or renamed is routed as it is now. An error is shown to
// the client as it is.
type Resolver interface {
	Resolve(ctx context.Context, project, branch string) (addr string, err error)
}

// Router routes PostgreSQL connections to the branches' servers.
type Router struct {
	Resolver Resolver
	// StartupTimeout bounds the startup phase: a client that sends no
	// complete startup message by then is dropped.
	StartupTimeout time.Duration
	// MaxConns bounds the connections relayed at once; one more is told
	// "too many connections" and closed.
	MaxConns int
	Log      *slog.Logger
}

// Defaults of a Router's limits.
const (
	DefaultStartupTimeout = 10 * time.Second
	DefaultMaxConns       = 2000
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	slots := make(chan struct{}, maxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
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
		select {
		case slots <- struct{}{}:
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				refuse(c, "53300", "velo serve: too many connections")
			}()
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
	msg, err := readStartup(c)
	if err != nil {
		// A malformed or slow startup: the client may not be a Postgres
		// client at all; tell it, then drop it.
		log.Debug("startup refused", "remote", c.RemoteAddr(), "err", err)
		refuse(c, "08P01", "velo serve: invalid startup packet: "+err.Error())
		return
	}
	switch m := msg.(type) {
	case *pgproto3.CancelRequest:
		// Cancels are relayed in a later step; Postgres itself answers a
		// cancel by closing the connection.
		c.Close()
		return
	case *pgproto3.StartupMessage:
		r.route(ctx, c, m, log)
	}
}

// route connects the client to its branch's server and relays.
func (r *Router) route(ctx context.Context, c net.Conn, m *pgproto3.StartupMessage, log *slog.Logger) {
	t, err := ParseTarget(m.Parameters)
	if err != nil {
		var se errStartup
		errors.As(err, &se)
		refuse(c, se.code, se.msg)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, dialTimeout)
	addr, err := r.Resolver.Resolve(rctx, t.Project, t.Branch)
	cancel()
	if err != nil {
		refuse(c, "3D000", err.Error())
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		refuse(c, "57P03", fmt.Sprintf("branch %s: its server does not answer (%v); start it with: velo branch start %s", t.Ref(), err, t.Ref()))
		return
	}
	m.Parameters["database"] = t.Database
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
	relay(ctx, c, server)
}

// relay copies bytes both ways until either side closes or ctx ends, then
// closes both.
func relay(ctx context.Context, client, server net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	select {
	case <-done:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	<-done
}
