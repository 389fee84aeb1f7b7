package serve

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TLS and routing by server name.
//
// A client reaches a branch by the TLS server name (SNI)
// BRANCH.PROJECT.localhost: libpq sends the host it was given as SNI
// (sslsni=1, its default) unless the host is an IP address, so
//
//	host=dev.demo.localhost hostaddr=127.0.0.1 port=6543 sslmode=verify-full
//
// routes to demo/dev with the database name the client gave, and verifies
// the router's certificate for *.demo.localhost, signed by project demo's
// own CA (the sslrootcert of its branches). hostaddr spares the resolver:
// *.localhost names resolve to loopback only where the host's resolver
// says so. A client that sends no server name (an IP host, old libpq, JDBC)
// or another one gets velo serve's own certificate and is routed by the
// database name.

// SNISuffix ends every server name that routes: BRANCH.PROJECT + SNISuffix.
const SNISuffix = ".localhost"

// ParseSNI reads PROJECT and BRANCH from a TLS server name
// BRANCH.PROJECT.localhost (case-insensitive); ok is false for any other
// name, which then routes by the database name.
func ParseSNI(name string) (project, branch string, ok bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	rest, found := strings.CutSuffix(name, SNISuffix)
	if !found {
		return "", "", false
	}
	branch, project, found = strings.Cut(rest, ".")
	if !found || branch == "" || project == "" || strings.Contains(project, ".") {
		return "", "", false
	}
	return project, branch, true
}

// SNIName is the server name that routes to PROJECT/BRANCH.
func SNIName(project, branch string) string { return branch + "." + project + SNISuffix }

// alpnPostgres is the ALPN protocol of PostgreSQL (PostgreSQL 17 clients
// require it of a direct TLS handshake).
const alpnPostgres = "postgresql"

// tlsRecordHandshake is the first byte of a TLS ClientHello: a client
// that starts with it wants TLS at once (sslnegotiation=direct).
const tlsRecordHandshake = 0x16

// negotiate runs the startup phase on c: TLS when the client asks for it
// (an SSLRequest, or a direct handshake) and the router has a TLS
// configuration, then the startup or cancel message. It returns the
// connection to relay on, which is TLS when the client asked for it.
func (r *Router) negotiate(c net.Conn) (net.Conn, pgproto3.FrontendMessage, error) {
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return c, nil, err
	}
	c = &prefixConn{Conn: c, prefix: first[:]}
	if first[0] == tlsRecordHandshake {
		if r.TLS == nil {
			return c, nil, fmt.Errorf("a TLS handshake, but velo serve has no TLS configuration")
		}
		tc := tls.Server(c, r.TLS)
		if err := tc.Handshake(); err != nil {
			return c, nil, fmt.Errorf("TLS handshake: %w", err)
		}
		if tc.ConnectionState().NegotiatedProtocol != alpnPostgres {
			return tc, nil, fmt.Errorf("a direct TLS connection must negotiate ALPN %q", alpnPostgres)
		}
		msg, err := readStartup(tc, nil)
		return tc, msg, err
	}
	var upgrade func() (io.ReadWriter, error)
	if r.TLS != nil {
		upgrade = func() (io.ReadWriter, error) {
			tc := tls.Server(c, r.TLS)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			c = tc
			return tc, nil
		}
	}
	msg, err := readStartup(c, upgrade)
	// The first byte is read by now: relay on the connection itself, so
	// that copies between two TCP connections can use splice(2).
	if p, ok := c.(*prefixConn); ok && len(p.prefix) == 0 {
		c = p.Conn
	}
	return c, msg, err
}

// RouterTLS is the router's TLS configuration: certificate picks the
// certificate for a client's server name (as tls.Config.GetCertificate).
func RouterTLS(certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{GetCertificate: certificate, MinVersion: tls.VersionTLS12, NextProtos: []string{alpnPostgres}}
}

// sniTarget is the branch c's TLS server name routes to, if any.
func sniTarget(c net.Conn) (project, branch string, ok bool) {
	tc, isTLS := c.(*tls.Conn)
	if !isTLS {
		return "", "", false
	}
	return ParseSNI(tc.ConnectionState().ServerName)
}

// isLoopback reports whether c's client is on this host's loopback.
func isLoopback(c net.Conn) bool {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	return !ok || a.IP.IsLoopback()
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// target is the branch a session is for: the one its TLS server name
// names, with the database the client gave (a database name
// PROJECT/BRANCH[/DATABASE] of that same branch is read as such), else
// the one its database name names (ParseTarget).
func target(c net.Conn, params map[string]string) (Target, error) {
	project, branch, ok := sniTarget(c)
	if !ok {
		return ParseTarget(params)
	}
	t := Target{Project: project, Branch: branch, Database: params["database"]}
	if strings.Contains(t.Database, "/") {
		byName, err := ParseTarget(params)
		if err != nil {
			return Target{}, err
		}
		if byName.Ref() != t.Ref() {
			return Target{}, errStartup{"08004", fmt.Sprintf("the TLS server name %s routes to %s, but the database name %q names %s: give one of them", SNIName(project, branch), t.Ref(), t.Database, byName.Ref())}
		}
		t.Database = byName.Database
	}
	return t, nil
}
