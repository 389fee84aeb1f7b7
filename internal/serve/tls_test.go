package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestParseSNI(t *testing.T) {
	for name, want := range map[string][2]string{
		"dev.demo.localhost":   {"demo", "dev"},
		"DEV.Demo.localhost.":  {"demo", "dev"},
		"my_b.p-1.localhost":   {"p-1", "my_b"},
		"localhost":            {},
		"demo.localhost":       {},
		"a.b.c.localhost":      {},
		".demo.localhost":      {},
		"dev..localhost":       {},
		"dev.demo.example.com": {},
		"":                     {},
	} {
		p, b, ok := ParseSNI(name)
		if ok != (want[0] != "") || p != want[0] || b != want[1] {
			t.Errorf("ParseSNI(%q) = %q, %q, %v; want %q, %q", name, p, b, ok, want[0], want[1])
		}
	}
	if p, b, ok := ParseSNI(SNIName("demo", "dev")); !ok || p != "demo" || b != "dev" {
		t.Errorf("SNIName does not parse back: %q %q %v", p, b, ok)
	}
}

// selfSigned is a certificate for names, for the handshakes below.
func selfSigned(t *testing.T, names ...string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake runs negotiate on one end of a pipe while client runs on the
// other, and returns what negotiate returned.
func handshake(t *testing.T, r *Router, client func(net.Conn)) (net.Conn, pgproto3.FrontendMessage, error) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go client(b)
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	return r.negotiate(a)
}

func TestNegotiateTLS(t *testing.T) {
	var asked []string
	cert := selfSigned(t, "*.demo.localhost")
	r := &Router{TLS: RouterTLS(func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		asked = append(asked, h.ServerName)
		return &cert, nil
	})}
	startup := startupBytes(t, map[string]string{"user": "alice", "database": "app"})
	tlsClient := func(c net.Conn, alpn []string) *tls.Conn {
		return tls.Client(c, &tls.Config{ServerName: "dev.demo.localhost", InsecureSkipVerify: true, NextProtos: alpn})
	}
	t.Run("SSLRequest", func(t *testing.T) {
		c, msg, err := handshake(t, r, func(c net.Conn) {
			_, _ = c.Write(packet(codeSSL))
			var answer [1]byte
			if _, err := c.Read(answer[:]); err != nil || answer[0] != 'S' {
				t.Errorf("answer %q, %v; want S", answer, err)
				return
			}
			tc := tlsClient(c, nil)
			_, _ = tc.Write(startup)
		})
		if err != nil {
			t.Fatal(err)
		}
		m, ok := msg.(*pgproto3.StartupMessage)
		if !ok || m.Parameters["database"] != "app" {
			t.Fatalf("got %#v", msg)
		}
		tgt, err := target(c, m.Parameters)
		if err != nil || tgt != (Target{Project: "demo", Branch: "dev", Database: "app"}) {
			t.Errorf("target %+v, %v; want demo/dev database app", tgt, err)
		}
	})
	t.Run("direct", func(t *testing.T) {
		c, msg, err := handshake(t, r, func(c net.Conn) {
			tc := tlsClient(c, []string{alpnPostgres})
			_, _ = tc.Write(startupBytes(t, map[string]string{"user": "alice", "database": "demo/dev/db2"}))
		})
		if err != nil {
			t.Fatal(err)
		}
		tgt, err := target(c, msg.(*pgproto3.StartupMessage).Parameters)
		if err != nil || tgt.Ref() != "demo/dev" || tgt.Database != "db2" {
			t.Errorf("target %+v, %v; want demo/dev database db2", tgt, err)
		}
	})
	t.Run("direct without ALPN", func(t *testing.T) {
		_, _, err := handshake(t, r, func(c net.Conn) {
			tc := tlsClient(c, nil)
			_ = tc.Handshake()
		})
		if err == nil {
			t.Fatal("a direct TLS handshake without ALPN postgresql was accepted")
		}
	})
	t.Run("server name and database name disagree", func(t *testing.T) {
		c, msg, err := handshake(t, r, func(c net.Conn) {
			tc := tlsClient(c, []string{alpnPostgres})
			_, _ = tc.Write(startupBytes(t, map[string]string{"user": "alice", "database": "demo/other"}))
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := target(c, msg.(*pgproto3.StartupMessage).Parameters); err == nil {
			t.Error("a server name for demo/dev and a database name for demo/other were routed")
		}
	})
	if len(asked) == 0 || asked[0] != "dev.demo.localhost" {
		t.Errorf("certificates asked for %q", asked)
	}
}

func TestNegotiateWithoutTLSDeclines(t *testing.T) {
	_, msg, err := handshake(t, &Router{}, func(c net.Conn) {
		_, _ = c.Write(packet(codeSSL))
		var answer [1]byte
		if _, err := c.Read(answer[:]); err != nil || answer[0] != 'N' {
			t.Errorf("answer %q, %v; want N", answer, err)
		}
		_, _ = c.Write(startupBytes(t, map[string]string{"user": "u", "database": "demo/dev"}))
	})
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := target(nil, msg.(*pgproto3.StartupMessage).Parameters)
	if err != nil || tgt.Ref() != "demo/dev" || tgt.Database != "postgres" {
		t.Errorf("target %+v, %v", tgt, err)
	}
}
