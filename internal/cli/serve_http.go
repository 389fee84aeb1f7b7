package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/velohq/velo/internal/api"
	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/ui"
)

// defaultHTTP is where velo serve's API and page listen unless --http
// says otherwise: loopback only.
const defaultHTTP = "127.0.0.1:7780"

// run is the API's Runner: one velo command line run in this process,
// with the runtime and pools of g, printing to stdout and stderr, its
// steps under --json too. Each run builds its own command tree, opens
// its own engine and takes the same lock as a velo command does.
func (g *Globals) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cg := *g
	cg.Stdout, cg.Stderr, cg.Args, cg.Steps = stdout, stderr, args, true
	root := NewRoot(&cg)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// httpService is velo serve's HTTP listener: the API and the page.
type httpService struct {
	ln   net.Listener
	tls  *tls.Config
	srv  *http.Server
	base string // the page's address, https://HOST:PORT
	auth *api.Auth
	// tokenFile holds the token made at the first start.
	tokenFile string
}

// newHTTPService listens on addr. An address other than loopback is
// served over TLS: with cert and key when given, else with a certificate
// from velo serve's own certificate authority (VELO_HOME/api/ca, its
// ca.crt for clients to trust).
func newHTTPService(g *Globals, home, addr, cert, key string) (*httpService, error) {
	// Everything is checked before anything is made (the token, the CA).
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 {
		return nil, errdefs.Invalid("--http %s is not HOST:PORT with a port from 1 to 65535; for example 127.0.0.1:7780", ui.Quote(addr))
	}
	ip, ipErr := netip.ParseAddr(host)
	loopback := host == "localhost" || (ipErr == nil && ip.IsLoopback())
	if host != "localhost" && ipErr != nil {
		return nil, errdefs.Invalid("--http %s: the host must be an IP address or localhost", ui.Quote(addr))
	}
	if (cert == "") != (key == "") {
		return nil, errdefs.Invalid("--tls-cert and --tls-key go together: give both or neither")
	}
	for _, f := range []string{cert, key} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				return nil, errdefs.Invalid("--tls-cert/--tls-key %s: cannot read it", ui.Quote(f))
			}
		}
	}
	var cfg *tls.Config
	if !loopback || cert != "" {
		if cert == "" {
			if cert, key, err = serveCert(home, host); err != nil {
				return nil, err
			}
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, errdefs.Invalid("--tls-cert %s / --tls-key %s: cannot read it as a PEM certificate and its key: %v", ui.Quote(cert), ui.Quote(key), err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	auth := api.NewAuth(home, cfg != nil)
	tokenFile, err := auth.FirstToken()
	if err != nil {
		return nil, fmt.Errorf("the API's token in %s: %w", filepath.Join(home, "api"), err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errdefs.FailedPrecondition("cannot listen on %s for the API: %v; pick another with --http HOST:PORT", addr, err)
	}
	scheme := "http"
	if cfg != nil {
		scheme = "https"
		ln = tls.NewListener(ln, cfg)
	}
	base := scheme + "://" + ln.Addr().String()
	if err := auth.SetAddress(base); err != nil {
		ln.Close()
		return nil, err
	}
	h := api.New(g.run, auth)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	return &httpService{ln: ln, tls: cfg, srv: srv, base: base, auth: auth, tokenFile: tokenFile}, nil
}

// serveCert is a certificate for host from velo serve's own CA, made
// the first time.
func serveCert(home, host string) (cert, key string, err error) {
	ca, err := engine.ServeCA(home)
	if err != nil {
		return "", "", err
	}
	dir := engine.ServeCADir(home)
	hosts := pg.ServerHosts([]string{host})
	if _, err := pg.EnsureServerCert(dir, ca, hosts, nil); err != nil {
		return "", "", err
	}
	return filepath.Join(dir, pg.ServerCertFile), filepath.Join(dir, pg.ServerKeyFile), nil
}

// announce prints where the API and the page are, and a page link.
func (s *httpService) announce(w io.Writer) error {
	link, err := s.auth.PageLink()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "API   %s/api/v1/ (Authorization: Bearer, the token in %s)\n", s.base, s.tokenFile)
	fmt.Fprintf(w, "Page  %s (a one-time link; velo ui prints another)\n", link)
	return nil
}

// serve serves until ctx ends, then lets the calls under way finish.
func (s *httpService) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.srv.Shutdown(shut)
}
