package engine

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/serve"
	"github.com/velohq/velo/internal/state"
)

// DefaultRouterAddr is where velo serve's router listens unless --listen
// says otherwise: one loopback port for every branch.
const DefaultRouterAddr = "127.0.0.1:6543"

// Address is where velo serve's router reaches a branch's server: read
// from the state at each call, so that a branch created, started or reset
// by the CLI meanwhile is found as it is now.
func (e *Engine) Address(ctx context.Context, project, branch string) (string, error) {
	_, b, err := e.ref(ctx, project+"/"+branch)
	if err != nil {
		return "", err
	}
	return serverAddr(b), nil
}

// routerFile records the address velo serve's router last listened on,
// which the one-port URLs show.
func (e *Engine) routerFile() string { return filepath.Join(e.Home, "router.addr") }

// RecordRouter records the address velo serve's router listens on.
func (e *Engine) RecordRouter(addr string) error {
	return os.WriteFile(e.routerFile(), []byte(addr+"\n"), 0o644)
}

// routerAddr is the address the one-port URLs name: the one velo serve
// last listened on, else the default.
func (e *Engine) routerAddr() string {
	b, err := os.ReadFile(e.routerFile())
	if a := strings.TrimSpace(string(b)); err == nil && a != "" {
		if _, _, err := net.SplitHostPort(a); err == nil {
			return a
		}
	}
	return DefaultRouterAddr
}

// routerURL is b's URL through velo serve at addr (routerAddr): the
// database name carries PROJECT/BRANCH, its slash escaped so that every
// driver reads it whole.
func routerURL(addr string, p state.Project, b state.Branch, withPassword bool) string {
	path := "/" + p.Name + "/" + b.Name
	if withPassword {
		u := url.URL{Scheme: "postgresql", User: url.UserPassword(pg.Superuser, b.Password), Host: addr,
			Path: path, RawPath: "/" + p.Name + "%2F" + b.Name}
		return u.String()
	}
	return "postgresql://" + pg.Superuser + ":***@" + addr + "/" + p.Name + "%2F" + b.Name
}

// routerTLSURL is b's URL through velo serve at addr routed by the TLS
// server name BRANCH.PROJECT.localhost, verified with the project's CA
// certificate ca (caCert; none: ""); hostaddr names the router's address,
// so no resolver needs to know the name.
func routerTLSURL(addr, ca string, p state.Project, b state.Branch, withPassword bool) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); host == "localhost" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	password := "***"
	if withPassword {
		password = url.UserPassword(pg.Superuser, b.Password).String()
		password = password[strings.Index(password, ":")+1:]
	}
	q := url.Values{"hostaddr": {host}, "sslmode": {"verify-full"}}
	if ca != "" {
		q.Set("sslrootcert", ca)
	}
	return "postgresql://" + pg.Superuser + ":" + password + "@" + net.JoinHostPort(serve.SNIName(p.Name, b.Name), port) + "/postgres?" + strings.ReplaceAll(q.Encode(), "%2F", "/")
}
