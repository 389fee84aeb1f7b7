package serve

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func encode(t *testing.T, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// countingWriter counts the writes it is given.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestRelayStartup: the server's startup messages reach the client as they
// were, those that arrived together in one write, the cancel key is handed
// over, and the relay stops at ReadyForQuery, leaving what follows unread.
func TestRelayStartup(t *testing.T) {
	startup := encode(t, &pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "server_version", Value: "17.10"},
		&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
		&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	after := encode(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	server := bufio.NewReader(bytes.NewReader(append(append([]byte{}, startup...), after...)))
	var client countingWriter
	var key string
	if err := relayStartup(&client, server, func(k string) { key = k }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(client.Bytes(), startup) {
		t.Errorf("the client got %q, want %q", client.Bytes(), startup)
	}
	if client.writes != 1 {
		t.Errorf("%d writes to the client, want 1", client.writes)
	}
	if key != cancelKey(42, []byte{1, 2, 3, 4}) {
		t.Errorf("cancel key %q", key)
	}
	if rest, _ := io.ReadAll(server); !bytes.Equal(rest, after) {
		t.Errorf("left unread %q, want %q", rest, after)
	}
}

// TestRelayStartupFlushesBeforeWaiting: a message the client must answer
// (SCRAM's challenge) reaches it before the relay waits for the server's
// next one, which the server sends only after that answer.
func TestRelayStartupFlushesBeforeWaiting(t *testing.T) {
	sr, sw := io.Pipe()
	cr, cw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- relayStartup(cw, bufio.NewReader(sr), func(string) {}) }()
	challenge := encode(t, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	go sw.Write(challenge)
	got := make([]byte, len(challenge))
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(cr, got); read <- err }()
	select {
	case err := <-read:
		if err != nil || !bytes.Equal(got, challenge) {
			t.Fatalf("the client read %q (%v), want %q", got, err, challenge)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the challenge did not reach the client while the relay waited for the server")
	}
	go io.Copy(io.Discard, cr)
	go sw.Write(encode(t, &pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
