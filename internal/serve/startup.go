// Package serve is velo serve: one long-running process that runs several
// listeners (today the router; later the HTTP API) and never owns data.
//
// The router speaks the PostgreSQL protocol up to the startup message: it
// accepts TLS (an SSLRequest, or a direct TLS handshake with ALPN
// "postgresql" as PostgreSQL 17 clients may send), declines GSSENCRequest
// with 'N', reads the StartupMessage, picks the branch from the TLS server
// name (SNI, BRANCH.PROJECT.localhost) or else from the database name,
// connects to that branch's own server and from then on relays bytes both
// ways. The client authenticates to the branch's
// server (SCRAM passes through the relay untouched): the router holds no
// passwords.
package serve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxNegotiations bounds the SSLRequest/GSSENCRequest round trips before a
// StartupMessage: a client sends at most one of each.
const maxNegotiations = 2

// errStartup is a startup phase the router refuses; its text reaches the
// client in an ErrorResponse.
type errStartup struct {
	code, msg string
}

func (e errStartup) Error() string { return e.msg }

// Startup packet codes (Postgres's pqcomm.h).
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSEnc = 80877104
	minStartup = 8
	maxStartup = 10000 // MAX_STARTUP_PACKET_LENGTH
	protocol30 = 3 << 16
	protocol32 = 3<<16 | 2
)

// readStartup runs the startup phase on rw: it answers GSSENCRequest with
// 'N', and SSLRequest with 'N' too unless upgrade is given, in which case
// it answers 'S', lets upgrade run the TLS handshake and goes on reading
// from what upgrade returns; a second SSLRequest is refused. It returns the
// first StartupMessage or CancelRequest. It reads exactly each packet's bytes, nothing the client
// sent after it, and refuses a packet under 8 or over 10,000 bytes
// (Postgres's own limit) before reading its body, so that a client cannot
// make the router hold more than that. The caller sets the deadline.
func readStartup(rw io.ReadWriter, upgrade func() (io.ReadWriter, error)) (pgproto3.FrontendMessage, error) {
	var head [4]byte
	for range maxNegotiations + 1 {
		if _, err := io.ReadFull(rw, head[:]); err != nil {
			return nil, err
		}
		n := int64(binary.BigEndian.Uint32(head[:]))
		if n < minStartup || n > maxStartup {
			return nil, fmt.Errorf("startup packet length %d is outside %d..%d", n, minStartup, maxStartup)
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(rw, body); err != nil {
			return nil, err
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case codeSSL, codeGSSEnc:
			if n != 8 {
				return nil, fmt.Errorf("SSL/GSS request of %d bytes", n)
			}
			if code == codeSSL && upgrade != nil {
				if _, err := rw.Write([]byte{'S'}); err != nil {
					return nil, err
				}
				next, err := upgrade()
				if err != nil {
					return nil, err
				}
				rw, upgrade = next, nil
				continue
			}
			if _, err := rw.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case codeCancel:
			m := &pgproto3.CancelRequest{}
			if err := m.Decode(body); err != nil {
				return nil, err
			}
			return m, nil
		case protocol30, protocol32:
			m := &pgproto3.StartupMessage{}
			if err := m.Decode(body); err != nil {
				return nil, err
			}
			return m, nil
		default:
			return nil, fmt.Errorf("unsupported protocol version or request code %d", code)
		}
	}
	return nil, errors.New("too many SSL/GSS negotiation requests before the startup message")
}

// Target is the branch a StartupMessage names, and the database its
// server is to receive.
type Target struct {
	Project, Branch string
	// Database is what the branch's server receives as the database.
	Database string
}

// Ref is PROJECT/BRANCH.
func (t Target) Ref() string { return t.Project + "/" + t.Branch }

// defaultDatabase is the database a route that names none reaches: every
// branch's server has it.
const defaultDatabase = "postgres"

// ParseTarget reads the route from a StartupMessage's parameters, the
// fallback for clients that send no SNI: the database name is
// PROJECT/BRANCH or PROJECT/BRANCH/DATABASE. The first reaches the
// database postgres; the second DATABASE. Works unchanged in libpq URLs
// (postgresql://u@host:port/demo/dev/app; %2F works too), in libpq
// key=value strings (dbname=demo/dev) and in pgx.
func ParseTarget(params map[string]string) (Target, error) {
	db := params["database"]
	parts := strings.SplitN(db, "/", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return Target{}, errStartup{"3D000", fmt.Sprintf("velo serve routes by the database name: give dbname=PROJECT/BRANCH or PROJECT/BRANCH/DATABASE (got %q)", db)}
	}
	t := Target{Project: parts[0], Branch: parts[1], Database: defaultDatabase}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Target{}, errStartup{"3D000", fmt.Sprintf("database name %q ends in '/': give PROJECT/BRANCH or PROJECT/BRANCH/DATABASE", db)}
		}
		t.Database = parts[2]
	}
	return t, nil
}
