package pg

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseListen(t *testing.T) {
	for in, want := range map[string][]string{
		"":                               nil,
		"   ":                            nil,
		"127.0.0.2":                      {"127.0.0.2"},
		" 10.0.0.5 , localhost,10.0.0.5": {"10.0.0.5", "localhost"},
		"*":                              {"*"},
		"::1,0:0:0:0:0:0:0:1":            {"::1"},
		"::ffff:10.1.2.3":                {"10.1.2.3"},
		"0.0.0.0,::":                     {"0.0.0.0", "::"},
	} {
		got, err := ParseListen(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseListen(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"10.0.0.256", "eth0", "example.com", "10.0.0.1,", ",10.0.0.1", "*,10.0.0.1", "fe80::1%eth0", "10.0.0.1/24", "10.0.0.1:5432"} {
		if got, err := ParseListen(in); err == nil {
			t.Errorf("ParseListen(%q) = %q, want an error", in, got)
		} else if !strings.Contains(err.Error(), ListenRule) {
			t.Errorf("ParseListen(%q): %v does not state the rule", in, err)
		}
	}
}

func TestListenAddresses(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, "127.0.0.1"},
		{[]string{"127.0.0.2"}, "127.0.0.1,127.0.0.2"},
		{[]string{"127.0.0.1", "10.0.0.5"}, "127.0.0.1,10.0.0.5"},
		{[]string{"localhost"}, "127.0.0.1,::1"},
		{[]string{"*"}, "*"},
		// A wildcard covers the specific addresses of its family, which
		// would otherwise fail to bind after it.
		{[]string{"0.0.0.0", "10.0.0.5", "::1"}, "0.0.0.0,::1"},
		{[]string{"::", "localhost"}, "127.0.0.1,::"},
	} {
		if got := ListenAddresses(c.in); got != c.want {
			t.Errorf("ListenAddresses(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHostHasAddress(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::"} {
		if !HostHasAddress(netip.MustParseAddr(a)) {
			t.Errorf("HostHasAddress(%s) = false", a)
		}
	}
	// TEST-NET-3 (RFC 5737) is never assigned to a host.
	if HostHasAddress(netip.MustParseAddr("203.0.113.77")) {
		t.Error("HostHasAddress(203.0.113.77) = true")
	}
}

func TestRenderConfigTLS(t *testing.T) {
	text, err := RenderConfig(Config{Port: 6000, ListenAddresses: "127.0.0.1,127.0.0.2", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen_addresses = '127.0.0.1,127.0.0.2'\n", "ssl = on\n", "ssl_cert_file = 'server.crt'\n", "ssl_key_file = 'server.key'\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("velo.conf lacks %q:\n%s", want, text)
		}
	}
	text, _ = RenderConfig(Config{Port: 6000})
	if strings.Contains(text, "ssl") {
		t.Errorf("velo.conf without TLS mentions ssl:\n%s", text)
	}
	for _, k := range []string{"ssl", "SSL_key_file", "ssl_cert_file"} {
		if _, err := RenderConfig(Config{Port: 6000, TLS: true, Extra: map[string]string{k: "off"}}); err == nil {
			t.Errorf("Extra %s accepted", k)
		}
	}
}

func TestCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "projects", "demo")
	if _, err := LoadCA(dir); !os.IsNotExist(err) {
		t.Fatalf("LoadCA of nothing: %v, want not exist", err)
	}
	ca, err := NewCA("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCA(dir, ca); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, CAKeyFile): 0o600, filepath.Join(dir, CACertFile): 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !got.Key.Equal(ca.Key) || !got.Cert.IsCA {
		t.Error("LoadCA did not give back the CA written")
	}
	// A key that is not the certificate's is refused, saying so.
	other, _ := NewCA("other")
	otherDir := filepath.Join(t.TempDir(), "other")
	WriteCA(otherDir, other)
	key, _ := os.ReadFile(filepath.Join(otherDir, CAKeyFile))
	os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600)
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "do not make a certificate authority") {
		t.Errorf("LoadCA with another CA's key: %v", err)
	}
}

func TestServerCert(t *testing.T) {
	ca, err := NewCA("demo")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	hosts := ServerHosts([]string{"127.0.0.2", "localhost"})
	if want := []string{"localhost", "127.0.0.1", "::1", "127.0.0.2"}; !slices.Equal(hosts, want) {
		t.Errorf("ServerHosts = %q, want %q", hosts, want)
	}
	issued, err := EnsureServerCert(data, ca, hosts, nil)
	if err != nil || !issued {
		t.Fatalf("EnsureServerCert: issued %v, %v", issued, err)
	}
	for _, f := range []string{ServerKeyFile, ServerCertFile} {
		if fi, err := os.Stat(filepath.Join(data, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi.Mode().Perm(), err)
		}
	}
	pemCert, _ := os.ReadFile(filepath.Join(data, ServerCertFile))
	cert, err := parseCertPEM(pemCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, h := range hosts {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: h}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", h, err)
		}
	}
	if cert.VerifyHostname("127.0.0.3") == nil || cert.VerifyHostname("example.com") == nil {
		t.Error("certificate valid for names it was not issued for")
	}
	if cert.IsCA {
		t.Error("server certificate is a CA")
	}

	// Kept while it fits; reissued when the CA, the names or the key change.
	if issued, err := EnsureServerCert(data, ca, hosts, nil); err != nil || issued {
		t.Errorf("second EnsureServerCert: issued %v, %v", issued, err)
	}
	if issued, _ := EnsureServerCert(data, ca, append(hosts, "10.9.8.7"), nil); !issued {
		t.Error("a new listen address did not reissue")
	}
	other, _ := NewCA("demo")
	if issued, _ := EnsureServerCert(data, other, hosts, nil); !issued {
		t.Error("a new CA did not reissue")
	}
	os.Remove(filepath.Join(data, ServerKeyFile))
	if issued, _ := EnsureServerCert(data, other, hosts, nil); !issued {
		t.Error("a missing key did not reissue")
	}
	if left, _ := filepath.Glob(filepath.Join(data, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestScramVerifier checks the verifier against RFC 7677's worked example:
// the StoredKey must accept the client's proof and the ServerKey must give
// the server's signature.
func TestScramVerifier(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(v, "$")
	if !ok || head != "SCRAM-SHA-256" {
		t.Fatalf("verifier %q", v)
	}
	params, keyPair, _ := strings.Cut(keys, "$")
	if params != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Errorf("iterations and salt %q", params)
	}
	sk, svk, _ := strings.Cut(keyPair, ":")
	storedKey, _ := base64.StdEncoding.DecodeString(sk)
	serverKey, _ := base64.StdEncoding.DecodeString(svk)
	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO," + "r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," + "c=biws,r=" + nonce
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	clientSig := hmacSHA256(storedKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	if sum := sha256.Sum256(clientKey); !hmac.Equal(sum[:], storedKey) {
		t.Error("StoredKey does not accept RFC 7677's client proof")
	}
	if got := base64.StdEncoding.EncodeToString(hmacSHA256(serverKey, authMessage)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s, want RFC 7677's", got)
	}
	a, _ := ScramVerifier("pencil")
	b, _ := ScramVerifier("pencil")
	if a == b {
		t.Error("two verifiers of one password share a salt")
	}
	if _, err := ScramVerifier("has space"); err == nil {
		t.Error("a password with a space accepted")
	}
}
