package serve

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rw is a client's bytes in and the router's answers out.
type rw struct {
	*bytes.Reader
	out bytes.Buffer
}

func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

func packet(code uint32, body ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func startupBytes(t testing.TB, params map[string]string) []byte {
	b, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadStartupDeclinesSSLAndGSSThenReadsStartup(t *testing.T) {
	in := append(packet(codeGSSEnc), packet(codeSSL)...)
	in = append(in, startupBytes(t, map[string]string{"user": "alice", "database": "demo/dev"})...)
	in = append(in, 'Q') // what the client sends next stays unread
	c := &rw{Reader: bytes.NewReader(in)}
	msg, err := readStartup(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := msg.(*pgproto3.StartupMessage)
	if !ok || m.Parameters["user"] != "alice" || m.Parameters["database"] != "demo/dev" {
		t.Fatalf("got %#v", msg)
	}
	if c.out.String() != "NN" {
		t.Errorf("answers %q, want NN", c.out.String())
	}
	if c.Len() != 1 {
		t.Errorf("%d bytes after the startup message were read", 1-c.Len())
	}
}

func TestReadStartupCancel(t *testing.T) {
	in := packet(codeCancel, 0, 0, 0, 42, 1, 2, 3, 4)
	msg, err := readStartup(&rw{Reader: bytes.NewReader(in)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := msg.(*pgproto3.CancelRequest)
	if !ok || m.ProcessID != 42 || !bytes.Equal(m.SecretKey, []byte{1, 2, 3, 4}) {
		t.Fatalf("got %#v", msg)
	}
}

func TestReadStartupRefuses(t *testing.T) {
	huge := binary.BigEndian.AppendUint32(nil, 1<<30)
	for name, in := range map[string][]byte{
		"oversized":       huge,
		"too short":       {0, 0, 0, 4},
		"truncated":       startupBytes(t, map[string]string{"user": "a"})[:10],
		"unknown code":    packet(1234),
		"endless SSL":     bytes.Repeat(packet(codeSSL), 5),
		"protocol 2":      packet(2 << 16),
		"ssl with a body": packet(codeSSL, 1, 2, 3, 4),
	} {
		if msg, err := readStartup(&rw{Reader: bytes.NewReader(in)}, nil); err == nil {
			t.Errorf("%s: accepted as %#v", name, msg)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for db, want := range map[string]Target{
		"demo/dev":       {"demo", "dev", "postgres"},
		"demo/dev/app":   {"demo", "dev", "app"},
		"demo/dev/a/b/c": {"demo", "dev", "a/b/c"},
	} {
		got, err := ParseTarget(map[string]string{"database": db})
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v; want %+v", db, got, err, want)
		}
	}
	for _, db := range []string{"", "postgres", "demo/", "/dev", "demo/dev/"} {
		if _, err := ParseTarget(map[string]string{"database": db}); err == nil || !strings.Contains(err.Error(), "PROJECT/BRANCH") {
			t.Errorf("%q: want a refusal naming PROJECT/BRANCH, got %v", db, err)
		}
	}
}

// FuzzReadStartup: no input makes the startup parser panic, read past
// Postgres's packet limit, or answer anything but 'N'.
func FuzzReadStartup(f *testing.F) {
	f.Add(startupBytes(f, map[string]string{"user": "postgres", "database": "demo/dev"}))
	f.Add(append(packet(codeSSL), startupBytes(f, map[string]string{"user": "u"})...))
	f.Add(packet(codeCancel, 0, 0, 0, 1, 0, 0, 0, 2))
	f.Add(packet(codeGSSEnc))
	f.Add([]byte{0, 0, 0, 8, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &rw{Reader: bytes.NewReader(in)}
		msg, err := readStartup(c, nil)
		if strings.Trim(c.out.String(), "N") != "" {
			t.Fatalf("answered %q", c.out.String())
		}
		if read := len(in) - c.Len(); read > (maxNegotiations+1)*maxStartup {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil {
			if m, ok := msg.(*pgproto3.StartupMessage); ok {
				_, _ = ParseTarget(m.Parameters)
			}
		}
	})
}
