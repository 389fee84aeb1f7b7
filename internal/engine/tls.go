package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// caDir holds a project's certificate authority: $VELO_HOME/projects/NAME,
// 0700, which the Postgres user never needs (servers get only their own
// certificate and key, in their data directory).
func (e *Engine) caDir(project string) string {
	return filepath.Join(e.Home, "projects", project)
}

// caCert is the path of p's CA certificate, or "" while it does not exist
// (a project from an older velo gets one at its next start).
func (e *Engine) caCert(p state.Project) string {
	path := filepath.Join(e.caDir(p.Name), pg.CACertFile)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// parseListen checks --listen: the rule of pg.ParseListen, and each IP
// address must be one this host has, or a server could not listen on it.
func parseListen(s string) ([]string, error) {
	addrs, err := pg.ParseListen(s)
	if err != nil {
		return nil, errdefs.Invalid("--listen %v", err)
	}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && !pg.HostHasAddress(ip) {
			return nil, errdefs.Invalid("--listen %s: no network interface of this host has that address (ip -brief address lists them); --listen must be %s", a, pg.ListenRule)
		}
	}
	return addrs, nil
}

// listenOf is the addresses p's servers listen on besides 127.0.0.1.
func listenOf(p state.Project) []string {
	if p.Listen == "" {
		return nil
	}
	return strings.Split(p.Listen, ",")
}

// newCA gives project a new certificate authority, replacing whatever a
// project of that name left behind.
func (e *Engine) newCA(project string) error {
	projects := filepath.Join(e.Home, "projects")
	if err := os.MkdirAll(projects, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(projects, 0o700); err != nil {
		return err
	}
	ca, err := pg.NewCA(project)
	if err != nil {
		return err
	}
	return pg.WriteCA(e.caDir(project), ca)
}

// ensureTLS makes sure spec's data directory holds a server certificate
// from p's CA, valid for the names and addresses clients use: a clone
// inherits its parent's, so this usually finds nothing to do. A project
// made before velo had TLS gets its CA here, at its next start.
func (e *Engine) ensureTLS(p state.Project, spec runtime.Spec) error {
	dir := e.caDir(p.Name)
	ca, err := pg.LoadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := e.newCA(p.Name); err != nil {
			return fmt.Errorf("project %s's certificate authority: %w", p.Name, err)
		}
		ca, err = pg.LoadCA(dir)
	}
	if err != nil {
		return fmt.Errorf("project %s's certificate authority: %w; move %s aside and start the branch again to make a new one (every branch then gets a new certificate at its next start)", p.Name, err, dir)
	}
	if _, err := pg.EnsureServerCert(spec.DataDir, ca, pg.ServerHosts(listenOf(p)), spec.RunAs); err != nil {
		return fmt.Errorf("server certificate in %s: %w", spec.DataDir, err)
	}
	return nil
}
