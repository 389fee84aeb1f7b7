package pg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/velohq/velo/internal/ui"
)

// Files of a project's certificate authority, in a directory of velo's own
// (never the data directory: the CA key must not reach the servers, nor be
// copied into every clone).
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Files of a server's certificate, in its data directory, named as Postgres
// names them by default. Relative paths in velo.conf are read from the data
// directory, so every clone finds its parent's files without a rewrite.
const (
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 5 * 365 * 24 * time.Hour
	// renewBefore: a server certificate this close to its end is reissued
	// at the next start.
	renewBefore = 30 * 24 * time.Hour
	// backdate covers clocks a little behind this host's.
	backdate = time.Hour
)

// CA is a project's certificate authority: it signs the certificates of the
// project's servers, and clients verify them with its certificate alone.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a certificate authority (ECDSA P-256) named for project.
func NewCA(project string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Velo"}, CommonName: "Velo CA for project " + project},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// WriteCA writes ca into dir (made 0700): the key 0600, the certificate
// 0644, each atomically, the key first. Both belong to the current user.
func WriteCA(dir string, ca *CA) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600, nil); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), ca.CertPEM, 0o644, nil); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

// LoadCA reads the CA in dir. A missing CA is reported with
// os.ErrNotExist; one that is there but unusable says what is wrong.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CACertFile), err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s and %s do not make a certificate authority together", filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// ServerHosts are the names a server's certificate is valid for: localhost,
// 127.0.0.1 and ::1, then the listen addresses (a wildcard adds this host's
// name and addresses, since clients reach it by those).
func ServerHosts(listen []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, l := range listen {
		if l != "*" && l != "0.0.0.0" && l != "::" {
			add(l)
			continue
		}
		if name, err := os.Hostname(); err == nil {
			add(name)
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				add(n.IP.String())
			}
		}
	}
	return hosts
}

// EnsureServerCert makes sure dataDir holds a server certificate signed by
// ca, valid for every one of hosts for at least another month, and its key;
// otherwise it issues new ones (ECDSA P-256), owned by owner, both 0600, as
// Postgres requires of its key. It reports whether it issued.
func EnsureServerCert(dataDir string, ca *CA, hosts []string, owner *OSUser) (issued bool, err error) {
	if serverCertValid(dataDir, ca, hosts) {
		return false, nil
	}
	certPEM, keyPEM, err := IssueServerCert(ca, hosts)
	if err != nil {
		return false, err
	}
	// The key first: a crash between the two leaves a certificate that does
	// not match its key, which the next start sees and reissues.
	if err := writeFileAtomic(filepath.Join(dataDir, ServerKeyFile), keyPEM, 0o600, owner); err != nil {
		return false, fmt.Errorf("write %s: %w", ServerKeyFile, err)
	}
	if err := writeFileAtomic(filepath.Join(dataDir, ServerCertFile), certPEM, 0o600, owner); err != nil {
		return false, fmt.Errorf("write %s: %w", ServerCertFile, err)
	}
	return true, nil
}

// IssueServerCert issues a server certificate signed by ca for hosts (DNS
// names, a leftmost "*." label included, and IP addresses) and a new key
// (ECDSA P-256), both PEM; hosts[0] is its common name.
func IssueServerCert(ca *CA, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{Organization: []string{"Velo"}, CommonName: hosts[0]},
		NotBefore:      now.Add(-backdate),
		NotAfter:       now.Add(serverValidity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SubjectKeyId:   keyID(&key.PublicKey),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// serverCertValid reports whether dataDir's certificate and key can stay.
func serverCertValid(dataDir string, ca *CA, hosts []string) bool {
	certPEM, err := os.ReadFile(filepath.Join(dataDir, ServerCertFile))
	if err != nil {
		return false
	}
	keyPEM, err := os.ReadFile(filepath.Join(dataDir, ServerKeyFile))
	if err != nil {
		return false
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return false
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return false
	}
	if time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// keyID is a subject key identifier: a hash of the public key.
func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

// ListenRule says what --listen accepts.
const ListenRule = "a comma-separated list of IP addresses, localhost, or * alone (every address)"

// ParseListen checks a --listen value and returns its addresses, each once,
// in the order given: IP addresses (written canonically), "localhost", or
// "*" alone. "" gives nothing: the server listens on 127.0.0.1 only.
func ParseListen(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		var v string
		switch {
		case item == "":
			return nil, fmt.Errorf("%s has an empty item; it must be %s", ui.Quote(s), ListenRule)
		case item == "*" || item == "localhost":
			v = item
		default:
			ip, err := netip.ParseAddr(item)
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("%s is not an IP address; --listen must be %s", ui.Quote(item), ListenRule)
			}
			v = ip.Unmap().String()
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if slices.Contains(out, "*") && len(out) > 1 {
		return nil, fmt.Errorf("%s: * already means every address and must stand alone; --listen must be %s", ui.Quote(s), ListenRule)
	}
	return out, nil
}

// ListenAddresses is listen_addresses for a server whose project listens on
// listen (as ParseListen returns it): always 127.0.0.1, which velo itself
// connects to, then the others. Postgres binds each address in turn and an
// address a wildcard already covers would fail to bind, so those are left
// out; localhost is written as the addresses it stands for.
func ListenAddresses(listen []string) string {
	if slices.Contains(listen, "*") {
		return "*"
	}
	v4Any, v6Any := slices.Contains(listen, "0.0.0.0"), slices.Contains(listen, "::")
	var out []string
	add := func(a string) {
		if a == "" || slices.Contains(out, a) {
			return
		}
		if ip, err := netip.ParseAddr(a); err == nil && !ip.IsUnspecified() && (ip.Is4() && v4Any || ip.Is6() && v6Any) {
			return
		}
		out = append(out, a)
	}
	add(LocalHost)
	for _, l := range listen {
		if l == "localhost" {
			add(LocalHost)
			add("::1")
			continue
		}
		add(l)
	}
	return strings.Join(out, ",")
}

// HostHasAddress reports whether a server on this host can listen on ip:
// one of its interfaces has it, or it is a wildcard, or it is loopback
// (Linux answers all of 127.0.0.0/8 on lo).
func HostHasAddress(ip netip.Addr) bool {
	if ip.IsUnspecified() || ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	want := ip.WithZone("").Unmap()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if have, ok := netip.AddrFromSlice(n.IP); ok && have.Unmap() == want {
				return true
			}
		}
	}
	return false
}
