package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/ui"
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
	// Following: main is a hot standby streaming from the source
	// (physical, without --no-follow); Slot its replication slot there.
	Following bool
	Slot      string
	// State of a following main: streaming, catching up, disconnected
	// (Reason says why), or stopped (main's server is).
	State  string
	Reason string
	// LagBytes is how much WAL the source has written that main has not
	// replayed yet (as of the source's last report); LagSeconds how old
	// the last replayed commit is while main is behind (0 when caught up;
	// nil when main is behind but has replayed no commit since it started,
	// so that the age is not known).
	LagBytes   *int64
	LagSeconds *float64
	// Archive and ArchiveSnapshot: restored from another host's archive
	// in object storage (--from-archive), from that pushed snapshot.
	Archive, ArchiveSnapshot string
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
		Service: s.Service, Version: s.Version, ImportedAt: s.ImportedAt, Archive: s.Archive, ArchiveSnapshot: s.ArchiveSnapshot}
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
	if s.Archive != "" {
		fmt.Fprintf(&b, "restored from %s (snapshot %s)", s.Archive, s.ArchiveSnapshot)
	} else {
		fmt.Fprintf(&b, "%s from %s:%d", s.Mode, s.Host, s.Port)
	}
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
	if s.Following {
		fmt.Fprintf(&b, "; following: %s", s.State)
		b.WriteString(s.LagText())
		if s.Reason != "" {
			fmt.Fprintf(&b, " (%s)", s.Reason)
		}
		if s.Slot != "" {
			fmt.Fprintf(&b, ", slot %s", s.Slot)
		}
	} else if s.Mode == ModePhysical {
		b.WriteString("; not following")
	}
	return b.String()
}

// LagText is a following main's lag as status and project get print it:
// ", lag 1.2 MB / 3.4 s", the seconds "?" when main is behind but has
// replayed no commit since it started; "" when it is not known.
func (s *SourceInfo) LagText() string {
	if s.Archive != "" && s.LagSeconds != nil {
		// Fed from a bucket: how old the last commit replayed is.
		return fmt.Sprintf(", last commit replayed %.1f s ago", *s.LagSeconds)
	}
	if s.LagBytes == nil || s.State == "disconnected" {
		return ""
	}
	secs := "? s (no commit replayed since main started)"
	if s.LagSeconds != nil {
		secs = fmt.Sprintf("%.1f s", *s.LagSeconds)
	}
	return fmt.Sprintf(", lag %s / %s", ui.Bytes(*s.LagBytes), secs)
}
