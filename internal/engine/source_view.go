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
	Mode     string // logical or physical
	Host     string
	Port     int
	User     string
	Database string
	// Databases are those the last logical import took; AllDatabases
	// says a refresh takes every database the source then has.
	Databases    []string
	AllDatabases bool
	Service      string
	// Version is the source's server_version at the last import.
	Version     string
	ImportedAt  time.Time
	RefreshedAt *time.Time
}

func sourceInfo(s *state.Source) *SourceInfo {
	if s == nil {
		return nil
	}
	dbs := s.Imported
	if len(dbs) == 0 { // a project of a velo that kept only the list
		dbs = s.Databases
	}
	v := &SourceInfo{Mode: s.Mode, Host: s.Host, Port: s.Port, User: s.User, Database: s.Database, Databases: dbs, AllDatabases: s.Mode == ModeLogical && len(s.Databases) == 0,
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
		if s.AllDatabases {
			b.WriteString(" (all)")
		}
	}
	fmt.Fprintf(&b, ", PostgreSQL %s; imported %s", strings.Fields(s.Version + " ?")[0], s.ImportedAt.Local().Format(time.DateTime))
	if s.RefreshedAt != nil {
		fmt.Fprintf(&b, ", refreshed %s", s.RefreshedAt.Local().Format(time.DateTime))
	}
	return b.String()
}
