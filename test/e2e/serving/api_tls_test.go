package serving

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/testenv"
	"github.com/velohq/velo/test/e2e/harness"
)

// tlsServe is a velo serve started with args, and what it printed: the
// API's base address and the page's link.
type tlsServe struct {
	base, link string
}

// startServe runs velo serve with args until the test ends (SIGINT),
// and reads the addresses it prints.
func (e *env) startServeArgs(args ...string) tlsServe {
	e.T.Helper()
	cmd := exec.Command(harness.VeloBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(append(os.Environ(), "VELO_HOME="+e.Home), e.Extra...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
		}
	})
	var s tlsServe
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "API   "); ok {
			s.base = strings.TrimSuffix(strings.Fields(f)[0], "/api/v1/")
		}
		if f, ok := strings.CutPrefix(line, "Page  "); ok {
			s.link = strings.Fields(f)[0]
			break
		}
	}
	if s.link == "" || s.base == "" {
		cmd.Wait()
		e.T.Fatalf("velo serve %s printed no addresses; stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	go io.Copy(io.Discard, out)
	return s
}

func freePort(t *testing.T, host string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// nonLoopback gives this host an address that is not loopback: one end
// of a veth pair of the test's own (the other end unused), removed at
// the end. Traffic to it stays in this host.
func nonLoopback(t *testing.T) string {
	testenv.RequireCommand(t, "ip")
	n := time.Now().UnixNano()
	dev := fmt.Sprintf("vt%06x", n&0xffffff)
	addr := fmt.Sprintf("10.254.%d.1", 1+n%250)
	for _, args := range [][]string{
		{"link", "add", dev + "a", "type", "veth", "peer", "name", dev + "b"},
		{"addr", "add", addr + "/30", "dev", dev + "a"},
		{"link", "set", dev + "a", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			testenv.Skip(t, "veth", fmt.Sprintf("ip %s: %v %s", strings.Join(args, " "), err, out))
		}
		if args[0] == "link" && args[1] == "add" {
			t.Cleanup(func() { exec.Command("ip", "link", "del", dev+"a").Run() })
		}
	}
	return addr
}

// testCA is a certificate authority of the test's own and a server
// certificate from it for 127.0.0.1, written as PEM files in dir.
func testCA(t *testing.T, dir string) (pool *x509.CertPool, cert, key string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cert, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, cert, key
}

// get makes a GET with client and token ("" for none).
func get(client *http.Client, url, token string) (int, string, *http.Response, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res, nil
}

func trusting(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestAPITLS: velo serve's HTTP listener on an address other than
// loopback speaks TLS only, with a certificate from velo serve's own CA
// that a client trusting VELO_HOME/api/ca/ca.crt verifies (a plain HTTP
// request gets no answer of the API, a client not trusting the CA
// refuses it); the page's cookie is then Secure. A certificate given
// with --tls-cert/--tls-key is served instead (on loopback too); one that
// cannot be read is refused before anything listens.
func TestAPITLS(t *testing.T) {
	e := newEnv(t, "copy")
	e.Create("demo")

	addr := freePort(t, nonLoopback(t))
	s := e.startServeArgs("--http", addr, "--listen", freePort(t, "127.0.0.1"))
	if s.base != "https://"+addr || !strings.HasPrefix(s.link, "https://"+addr+"/ui/login?code=") {
		t.Fatalf("velo serve --http %s printed API %s, page %s; want https://%s", addr, s.base, s.link, addr)
	}
	tok, err := os.ReadFile(filepath.Join(e.Home, "api", "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	plain := &http.Client{Timeout: 30 * time.Second}
	if st, body, _, err := get(plain, "http://"+addr+"/api/v1/status", token); err == nil && (st == 200 || strings.Contains(body, `"projects"`)) {
		t.Errorf("plain HTTP to %s was answered: %d %s", addr, st, body)
	}
	if _, _, _, err := get(plain, s.base+"/api/v1/status", token); err == nil || !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("a client not trusting velo serve's CA: %v, want a certificate verification error", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(e.Home, "api", "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("api/ca/ca.crt holds no certificate")
	}
	client := trusting(pool)
	st, body, _, err := get(client, s.base+"/api/v1/status", token)
	if err != nil || st != 200 || projectsOf(t, body) != projectsOf(t, e.OK("status", "--json").Stdout) {
		t.Errorf("GET %s/api/v1/status over TLS: %v %d %s", s.base, err, st, body)
	}
	if st, _, _, err := get(client, s.base+"/api/v1/status", ""); err != nil || st != 401 {
		t.Errorf("over TLS without a token: %v %d, want 401", err, st)
	}
	_, _, res, err := get(client, s.link, "")
	if err != nil || res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 || !res.Cookies()[0].Secure || !res.Cookies()[0].HttpOnly {
		t.Errorf("the page's link over TLS: %v %+v", err, res)
	}

	// A certificate of the user's own, on loopback.
	dir := t.TempDir()
	own, cert, key := testCA(t, dir)
	loop := freePort(t, "127.0.0.1")
	s2 := e.startServeArgs("--http", loop, "--listen", freePort(t, "127.0.0.1"), "--tls-cert", cert, "--tls-key", key)
	if s2.base != "https://"+loop {
		t.Fatalf("velo serve --tls-cert printed API %s, want https://%s", s2.base, loop)
	}
	if st, _, _, err := get(trusting(own), s2.base+"/api/v1/version", token); err != nil || st != 200 {
		t.Errorf("GET with the given certificate: %v %d", err, st)
	}
	if _, _, _, err := get(trusting(pool), s2.base+"/api/v1/version", token); err == nil {
		t.Error("the given certificate is not the one served: a client trusting only velo serve's CA connected")
	}

	// A certificate that is not one: refused, exit 2, nothing listens.
	os.WriteFile(filepath.Join(dir, "bad.crt"), []byte("not a certificate\n"), 0o644)
	bad := freePort(t, "127.0.0.1")
	r := e.Run("serve", "--http", bad, "--listen", freePort(t, "127.0.0.1"), "--tls-cert", filepath.Join(dir, "bad.crt"), "--tls-key", key)
	if r.Code != 2 || !strings.Contains(r.Stderr, "cannot read it as a PEM certificate and its key") {
		t.Errorf("velo serve with a bad --tls-cert: %s", r)
	}
	if c, err := net.DialTimeout("tcp", bad, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s after the refusal", bad)
	}
}
