package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/velohq/velo/internal/state"
)

// SourceInfo is where an imported project's data came from, as project
// get, status and their --json show it. It holds no secret.
type SourceInfo struct {
	Mode      string // logical or physical
	Host      string
	Port      int
	User      string
	Database  string
	Databases []string
	Service   string
	// Version is the source's server_version at the last import.
	Version     string
	ImportedAt  time.Time
	RefreshedAt *time.Time
}

func sourceInfo(s *state.Source) *SourceInfo {
	if s == nil {
		return nil
	}
	v := &SourceInfo{Mode: s.Mode, Host: s.Host, Port: s.Port, User: s.User, Database: s.Database, Databases: s.Databases,
		Service: s.Service, Version: s.Version, ImportedAt: s.ImportedAt}
	if !s.RefreshedAt.IsZero() {
		t := s.RefreshedAt
		v.RefreshedAt = &t
	}
	return v
}

// Summary is one line about the source: "logical from HOST:PORT (a, b),
// imported ..., refreshed ...".
func (s *SourceInfo) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s:%d", s.Mode, s.Host, s.Port)
	if s.Service != "" {
		fmt.Fprintf(&b, " (service=%s)", s.Service)
	}
	if len(s.Databases) > 0 {
		fmt.Fprintf(&b, ", databases %s", strings.Join(s.Databases, ", "))
	}
	fmt.Fprintf(&b, ", PostgreSQL %s; imported %s", strings.Fields(s.Version + " ?")[0], s.ImportedAt.Local().Format(time.DateTime))
	if s.RefreshedAt != nil {
		fmt.Fprintf(&b, ", refreshed %s", s.RefreshedAt.Local().Format(time.DateTime))
	}
	return b.String()
}
