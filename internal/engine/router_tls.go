package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/serve"
)

// RouterCerts gives velo serve's router its TLS certificates, issued in
// memory (their keys are never written anywhere): for a server name
// BRANCH.PROJECT.localhost, one for *.PROJECT.localhost signed by that
// project's CA, so that a client verifies it with the same sslrootcert as
// the project's own servers; for any other name or none, one signed by
// velo serve's own CA ($VELO_HOME/api/ca) for localhost, loopback and the
// router's address.
type RouterCerts struct {
	e    *Engine
	def  *tls.Certificate
	mu   sync.Mutex
	byCA map[string]projectCert
}

// projectCert is a project's router certificate and the CA that signed it:
// a project deleted and made again has a new CA, and gets a new one.
type projectCert struct {
	caPEM []byte
	cert  *tls.Certificate
}

// ServeCADir holds velo serve's own certificate authority: it signs the
// HTTP API's certificate and the router's for clients that send no
// project's server name.
func ServeCADir(home string) string { return filepath.Join(home, "api", "ca") }

// ServeCA loads velo serve's own CA, made the first time.
func ServeCA(home string) (*pg.CA, error) {
	dir := ServeCADir(home)
	ca, err := pg.LoadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = pg.NewCA("velo serve"); err == nil {
			if err = pg.WriteCA(dir, ca); err == nil {
				ca, err = pg.LoadCA(dir)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("velo serve's certificate authority in %s: %w", dir, err)
	}
	return ca, nil
}

// RouterCerts makes the router's certificates; listenHost is the host of
// its address (an IP address, localhost, or a wildcard address).
func (e *Engine) RouterCerts(listenHost string) (*RouterCerts, error) {
	ca, err := ServeCA(e.Home)
	if err != nil {
		return nil, err
	}
	def, err := issueTLS(ca, pg.ServerHosts([]string{listenHost}))
	if err != nil {
		return nil, err
	}
	return &RouterCerts{e: e, def: def, byCA: map[string]projectCert{}}, nil
}

// Get is tls.Config.GetCertificate.
func (rc *RouterCerts) Get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	project, _, ok := serve.ParseSNI(hello.ServerName)
	if !ok || ValidateName("project", project) != nil {
		return rc.def, nil
	}
	dir := rc.e.caDir(project)
	caPEM, err := os.ReadFile(filepath.Join(dir, pg.CACertFile))
	if err != nil {
		// No such project (or no CA yet): the router refuses the route
		// after the handshake, with the reason.
		return rc.def, nil
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if pc, ok := rc.byCA[project]; ok && bytes.Equal(pc.caPEM, caPEM) {
		return pc.cert, nil
	}
	ca, err := pg.LoadCA(dir)
	if err != nil {
		return nil, fmt.Errorf("project %s's certificate authority: %w", project, err)
	}
	cert, err := issueTLS(ca, []string{"*." + project + serve.SNISuffix})
	if err != nil {
		return nil, err
	}
	rc.byCA[project] = projectCert{caPEM: caPEM, cert: cert}
	return cert, nil
}

// issueTLS issues a certificate for hosts signed by ca, as a tls.Certificate.
func issueTLS(ca *pg.CA, hosts []string) (*tls.Certificate, error) {
	certPEM, keyPEM, err := pg.IssueServerCert(ca, hosts)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &pair, nil
}
