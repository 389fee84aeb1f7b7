package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/serve"
	"github.com/velohq/velo/internal/ui"
)

// DefaultServeListen is where velo serve's router listens by default: one
// loopback port for every branch.
const DefaultServeListen = engine.DefaultRouterAddr

// serveOptions are the flags of velo serve.
type serveOptions struct {
	Listen, HTTP, TLSCert, TLSKey string
	// MaxConnections bounds the sessions the router relays at once.
	MaxConnections int
	// UploadInterval is how often the uploader copies each project's new
	// WAL to its object storage.
	UploadInterval time.Duration
}

func (o *serveOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", DefaultServeListen, "address of the router, HOST:PORT (an IP address of this host, 0.0.0.0, :: or localhost); clients not on loopback must use TLS")
	fs.IntVar(&o.MaxConnections, "max-connections", serve.DefaultMaxConns, "sessions the router relays at once (1 to 100000); one more is refused with SQLSTATE 53300")
	fs.StringVar(&o.HTTP, "http", defaultHTTP, "address of the HTTP API and the web page (HOST:PORT); other than loopback it is served over TLS")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "certificate (PEM) for the API (default: one from velo serve's own CA in VELO_HOME/api/ca when --http is not loopback)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the key of --tls-cert (PEM)")
	fs.DurationVar(&o.UploadInterval, "upload-interval", 30*time.Second, "how often new WAL is uploaded to the projects' object storage (velo project set --archive); whole seconds, 1s to 24h")
}

func newServeCommand(g *Globals) *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Route every branch through one port (runs in the foreground)",
		Long: `velo serve runs in the foreground and routes PostgreSQL connections on one
port to the branches' own servers. The TLS server name says the branch,
BRANCH.PROJECT.localhost, verified with the project's own CA:

  psql "host=dev.demo.localhost hostaddr=127.0.0.1 port=6543 dbname=postgres
        sslmode=verify-full sslrootcert=$VELO_HOME/projects/demo/ca.crt"

and for clients that send no server name (an IP address as host, no TLS),
the database name says it, dbname=PROJECT/BRANCH (database postgres) or
PROJECT/BRANCH/DATABASE:

  psql "postgresql://postgres@127.0.0.1:6543/demo/dev"

Clients not on loopback must use TLS (sslmode=require or stronger); without
a project's server name they get a certificate from velo serve's own CA,
$VELO_HOME/api/ca/ca.crt.

The client authenticates to the branch's own server with the branch's
password (velo branch password); velo serve holds none. Branches are found
in the state at each connection, so a branch the CLI creates or starts is
routed at once.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error { return runServe(c.Context(), g, o) },
	}
	o.AddFlags(c.Flags())
	return c
}

// checkListen checks --listen: HOST:PORT where HOST is localhost, an IP
// address of this host, or a wildcard address.
func checkListen(addr string) (host string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 {
		return "", usageError{fmt.Errorf("--listen must be HOST:PORT with a port of 1 to 65535, e.g. %s; got %s", DefaultServeListen, ui.Quote(addr))}
	}
	if host == "localhost" {
		return host, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return "", usageError{fmt.Errorf("--listen %s: the host must be localhost, an IP address of this host, or a wildcard address (0.0.0.0, ::)", ui.Quote(addr))}
	}
	if !ip.IsUnspecified() && !pg.HostHasAddress(ip) {
		return "", usageError{fmt.Errorf("--listen %s: no network interface of this host has that address (ip -brief address lists them)", ui.Quote(addr))}
	}
	if ip.IsUnspecified() {
		return "*", nil
	}
	return ip.String(), nil
}

// engineResolver finds, wakes and suspends branches for the router
// through the engine.
type engineResolver struct{ e *engine.Engine }

func (r engineResolver) Resolve(ctx context.Context, project, branch string) (string, error) {
	return r.e.Address(ctx, project, branch)
}

func (r engineResolver) Wake(ctx context.Context, project, branch string) (string, error) {
	return r.e.Wake(ctx, project, branch)
}

func (r engineResolver) IdleBranches(ctx context.Context) ([]serve.Idle, error) {
	ws, err := r.e.IdleBranches(ctx)
	out := make([]serve.Idle, len(ws))
	for i, w := range ws {
		out[i] = serve.Idle{Project: w.Project, Branch: w.Branch, Timeout: w.Idle, StartedAt: w.StartedAt}
	}
	return out, err
}

func (r engineResolver) Suspend(ctx context.Context, project, branch string) (bool, error) {
	stopped, err := r.e.Suspend(ctx, project, branch)
	if errors.Is(err, engine.ErrBusy) {
		err = fmt.Errorf("%w (%v)", serve.ErrBusy, err)
	}
	return stopped, err
}

func runServe(ctx context.Context, g *Globals, o serveOptions) error {
	listenHost, err := checkListen(o.Listen)
	if err != nil {
		return err
	}
	if o.MaxConnections < 1 || o.MaxConnections > 100000 {
		return usageError{fmt.Errorf("--max-connections %d must be from 1 to 100000", o.MaxConnections)}
	}
	if o.UploadInterval < time.Second || o.UploadInterval > 24*time.Hour || o.UploadInterval%time.Second != 0 {
		return errdefs.Invalid("--upload-interval %s must be whole seconds between 1s and 24h", o.UploadInterval)
	}
	home, err := Home()
	if err != nil {
		return err
	}
	h, err := newHTTPService(g, home, o.HTTP, o.TLSCert, o.TLSKey)
	if err != nil {
		return err
	}
	_, e, err := g.open(ctx, false, false)
	if err != nil {
		h.ln.Close()
		return err
	}
	defer e.Close()
	certs, err := e.RouterCerts(listenHost)
	if err != nil {
		h.ln.Close()
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		h.ln.Close()
		return fmt.Errorf("velo serve: %w", err)
	}
	if err := h.announce(g.Stdout); err != nil {
		ln.Close()
		h.ln.Close()
		return err
	}
	if err := e.RecordRouter(ln.Addr().String()); err != nil {
		slog.Warn("the one-port URLs will not show this address", "err", err)
	}
	router := &serve.Router{Resolver: engineResolver{e}, TLS: serve.RouterTLS(certs.Get), MaxConns: o.MaxConnections, Log: slog.Default()}
	fmt.Fprintf(g.Stderr, "velo serve: routing on %s (TLS server name BRANCH.PROJECT.localhost, or dbname=PROJECT/BRANCH[/DATABASE])\n", ln.Addr())
	return serve.Run(ctx, serve.Listener{Name: "router", Ln: ln, Serve: router.Serve},
		serve.Listener{Name: "http", Ln: h.ln, Serve: func(ctx context.Context, _ net.Listener) error { return h.serve(ctx) }},
		serve.Listener{Name: "uploader", Serve: func(ctx context.Context, _ net.Listener) error {
			return e.UploadLoop(ctx, o.UploadInterval, slog.Default())
		}})
}
