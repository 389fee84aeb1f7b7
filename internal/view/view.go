// Package view holds the documents Velo prints with --json: one tagged type
// per output, built from the engine's types, so that the engine can change
// its types without changing what scripts read.
//
// The contract every key keeps (view_test.go checks the first three by
// reflection; test/e2e TestJSON runs every command):
//   - keys are snake_case, at every depth;
//   - a size is an integer count of bytes whose key ends in _bytes;
//   - a time is RFC 3339 (encoding/json's form of time.Time), in UTC where
//     Velo chose the moment;
//   - branch and parent are always PROJECT/BRANCH; project is a project's
//     name; name is an object's own full name (a branch's is PROJECT/BRANCH);
//   - an absent optional value is left out, not printed empty.
//
// Every type here is a ui.Document, and ui.Printer prints nothing else.
package view

import (
	"time"

	"github.com/velohq/velo/internal/engine"
)

// Branch is one branch: branch list, branch get, and the changing branch
// commands with --json.
type Branch struct {
	Name      string     `json:"name"` // PROJECT/BRANCH
	Project   string     `json:"project"`
	Parent    string     `json:"parent,omitempty"` // PROJECT/BRANCH
	State     string     `json:"state"`            // running, stopped, suspended, missing
	PID       int        `json:"pid,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	Port      int        `json:"port"`
	URL       string     `json:"url"` // password masked
	// RouterURL reaches the branch through velo serve's one port, routed
	// by the database name; RouterTLSURL by the TLS server name.
	RouterURL    string `json:"router_url"`
	RouterTLSURL string `json:"router_tls_url"`
	CACert       string `json:"ca_cert,omitempty"`
	Volume       string `json:"volume"`
	// The sizes are left out when they were not computed (--size).
	ExclusiveBytes  *int64    `json:"exclusive_bytes,omitempty"`
	ReferencedBytes *int64    `json:"referenced_bytes,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	Problem         string    `json:"problem,omitempty"`
	// Where the branch's files are, for debugging.
	DataDir   string `json:"data_dir,omitempty"`
	SocketDir string `json:"socket_dir,omitempty"`
	LogFile   string `json:"log_file,omitempty"`
	// PITR is set for a branch made with --pitr.
	PITR *PITR `json:"pitr,omitempty"`
	// Protected: delete, reset and expiry refuse the branch.
	Protected bool `json:"protected"`
	// Masked: the branch's data was masked before it took any connection
	// from outside (velo branch create --mask, or its parent was).
	Masked bool `json:"masked"`
	// ExpiresAt is when velo prune deletes the branch, and ExpiresInSeconds
	// the time left then (0 once expired); both absent for never.
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"`
	// SuspendedAt is when velo serve suspended the branch for want of
	// clients; absent unless its state is suspended.
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
	// IdleTimeoutSeconds is how long velo serve lets the branch run with
	// no client before it suspends it (0: never); IdleFrom says where that
	// comes from: branch (its own --idle), project (the project's
	// default) or main (main takes no project default).
	IdleTimeoutSeconds int64  `json:"idle_timeout_seconds"`
	IdleFrom           string `json:"idle_from"`
}

// PITR is how a point-in-time branch was made.
type PITR struct {
	// Target is the moment it recovered to, or LSN the WAL position
	// (0/3000060); one of them is set.
	Target         *time.Time `json:"target,omitempty"`
	LSN            string     `json:"lsn,omitempty"`
	SourceSnapshot string     `json:"source_snapshot"`
}

// Branches is branch list.
type Branches []Branch

// NewBranch is the view of b.
func NewBranch(b engine.BranchInfo) Branch {
	v := Branch{Name: b.Name, Project: b.Project, Parent: b.Parent, State: b.State, PID: b.PID, Port: b.Port,
		URL: b.URL, CACert: b.CACert, Volume: b.Volume, ExclusiveBytes: b.Exclusive, ReferencedBytes: b.Reference,
		CreatedAt: b.CreatedAt, Problem: b.Problem, DataDir: b.DataDir, SocketDir: b.SocketDir, LogFile: b.LogFile,
		RouterURL: b.RouterURL, RouterTLSURL: b.RouterTLSURL, IdleTimeoutSeconds: int64(b.Idle / time.Second), IdleFrom: b.IdleFrom}
	if b.SuspendedAt != nil {
		t := b.SuspendedAt.UTC()
		v.SuspendedAt = &t
	}
	if !b.StartedAt.IsZero() {
		t := b.StartedAt
		v.StartedAt = &t
	}
	if b.PITRTarget != nil {
		t := b.PITRTarget.UTC()
		v.PITR = &PITR{Target: &t, SourceSnapshot: b.SourceSnapshot}
	} else if b.PITRLSN != "" {
		v.PITR = &PITR{LSN: b.PITRLSN, SourceSnapshot: b.SourceSnapshot}
	}
	v.Protected, v.Masked = b.Protected, b.Masked
	if b.ExpiresAt != nil {
		t := b.ExpiresAt.UTC()
		left := max(int64(time.Until(t).Seconds()), 0)
		v.ExpiresAt, v.ExpiresInSeconds = &t, &left
	}
	return v
}

// Prune is velo prune: the expired branches deleted (or, with --dry-run,
// to be deleted) and those kept, with why.
type Prune struct {
	DryRun  bool          `json:"dry_run"`
	Deleted []PrunedEntry `json:"deleted"`
	Kept    []PrunedEntry `json:"kept"`
}

// PrunedEntry is one expired branch.
type PrunedEntry struct {
	Branch    string    `json:"branch"` // PROJECT/BRANCH
	ExpiresAt time.Time `json:"expires_at"`
	Reason    string    `json:"reason,omitempty"`
}

// NewPrune is the view of r.
func NewPrune(r engine.PruneResult) Prune {
	entry := func(b engine.PrunedBranch) PrunedEntry {
		return PrunedEntry{Branch: b.Branch, ExpiresAt: b.ExpiresAt.UTC(), Reason: b.Reason}
	}
	return Prune{DryRun: r.DryRun, Deleted: each(r.Deleted, entry), Kept: each(r.Kept, entry)}
}

// NewBranches is the view of bs.
func NewBranches(bs []engine.BranchInfo) Branches {
	return each(bs, NewBranch)
}

// each is the views of xs, never nil: an empty list prints [], not null.
func each[T, V any](xs []T, view func(T) V) []V {
	out := make([]V, 0, len(xs))
	for _, x := range xs {
		out = append(out, view(x))
	}
	return out
}

// Project is one project: project list.
type Project struct {
	Name      string    `json:"name"`
	Storage   string    `json:"storage"`
	Pool      string    `json:"pool"`
	PGVersion int       `json:"pg_version"`
	Branches  int       `json:"branches"` // how many
	CreatedAt time.Time `json:"created_at"`
	Listen    string    `json:"listen_addresses"`
	CACert    string    `json:"ca_cert,omitempty"`
	// Runtime runs the servers: "native" or "docker" (in containers of
	// Image).
	Runtime string `json:"runtime"`
	Image   string `json:"image,omitempty"`
	// Mask is the text of the project's default mask script (velo project
	// set --mask); absent for none.
	Mask string `json:"mask,omitempty"`
	// Source is where an imported project came from.
	Source *Source `json:"source,omitempty"`
	// Archive is the project's WAL archive in object storage (project get
	// and status).
	Archive *ObjectArchive `json:"archive,omitempty"`
	// IdleTimeoutSeconds is the default idle timeout of its branches but
	// main under velo serve (0: never).
	IdleTimeoutSeconds int64 `json:"idle_timeout_seconds"`
}

// Source is where an imported project's data came from; it holds no
// secret.
type Source struct {
	Mode      string   `json:"mode"` // logical or physical
	Host      string   `json:"host"`
	Port      int      `json:"port"`
	User      string   `json:"user"`
	Database  string   `json:"database"`
	Databases []string `json:"databases,omitempty"`
	// AllDatabases: a refresh takes every database the source then has.
	AllDatabases bool       `json:"all_databases,omitempty"`
	Service      string     `json:"service,omitempty"`
	Version      string     `json:"version"` // the source's server_version at the last import
	ImportedAt   time.Time  `json:"imported_at"`
	RefreshedAt  *time.Time `json:"refreshed_at,omitempty"`
	// Following: main is a hot standby streaming from the source (a
	// physical import without --no-follow); Slot is its replication slot
	// there.
	Following bool   `json:"following"`
	Slot      string `json:"slot,omitempty"`
	// State of a following main: streaming, catching up, disconnected
	// (Reason says why), stopped, or unknown.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// LagBytes is the WAL the source wrote that main has not replayed;
	// LagSeconds the age of the last replayed commit while main is behind
	// (absent when main is behind but has replayed no commit since it
	// started: the age is not known then, and is not shown as 0).
	LagBytes   *int64   `json:"lag_bytes,omitempty"`
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// Archive: restored from another host's archive in object storage
	// (project create --from-archive), from pushed snapshot ArchiveSnapshot.
	Archive         string `json:"archive,omitempty"`
	ArchiveSnapshot string `json:"archive_snapshot,omitempty"`
}

func newSource(s *engine.SourceInfo) *Source {
	if s == nil {
		return nil
	}
	return &Source{Mode: s.Mode, Host: s.Host, Port: s.Port, User: s.User, Database: s.Database, Databases: s.Databases,
		AllDatabases: s.AllDatabases, Service: s.Service, Version: s.Version, ImportedAt: s.ImportedAt, RefreshedAt: s.RefreshedAt,
		Following: s.Following, Slot: s.Slot, State: s.State, Reason: s.Reason, LagBytes: s.LagBytes, LagSeconds: s.LagSeconds,
		Archive: s.Archive, ArchiveSnapshot: s.ArchiveSnapshot}
}

// Projects is project list.
type Projects []Project

// NewProject is the view of p.
func NewProject(p engine.ProjectInfo) Project {
	return Project{Name: p.Name, Storage: p.Storage, Pool: p.Pool, PGVersion: p.PGMajor, Branches: p.Branches,
		CreatedAt: p.CreatedAt, Listen: p.Listen, CACert: p.CACert, Runtime: p.Runtime, Image: p.Image, Mask: p.Mask, Source: newSource(p.Source), Archive: newObjectArchive(p.Archive),
		IdleTimeoutSeconds: int64(p.Idle / time.Second)}
}

// NewProjects is the view of ps.
func NewProjects(ps []engine.ProjectInfo) Projects {
	return each(ps, NewProject)
}

// ProjectDetail is a project with its branches: project get, project
// create, and each project of status.
type ProjectDetail struct {
	Project
	BranchList Branches `json:"branch_list"`
}

// NewProjectDetail is the view of p and its branches bs.
func NewProjectDetail(p engine.ProjectInfo, bs []engine.BranchInfo) ProjectDetail {
	return ProjectDetail{Project: NewProject(p), BranchList: NewBranches(bs)}
}

// Pool is one pool's figures in status.
type Pool struct {
	Name      string `json:"name"` // ZFS pool or directory
	Storage   string `json:"storage"`
	Health    string `json:"health,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
	UsedBytes int64  `json:"used_bytes"`
	FreeBytes int64  `json:"free_bytes"`
	Error     string `json:"error,omitempty"`
}

// Status is velo status.
type Status struct {
	Pools    []Pool          `json:"pools"`
	Projects []ProjectDetail `json:"projects"`
}

// NewStatus is the view of rep.
func NewStatus(rep engine.StatusReport) Status {
	s := Status{Pools: []Pool{}, Projects: []ProjectDetail{}}
	for _, p := range rep.Pools {
		s.Pools = append(s.Pools, Pool{Name: p.Name, Storage: p.Storage, Health: p.Health, SizeBytes: p.Size,
			UsedBytes: p.Used, FreeBytes: p.Free, Error: p.Error})
	}
	for _, p := range rep.Projects {
		s.Projects = append(s.Projects, NewProjectDetail(p.ProjectInfo, p.BranchList))
	}
	return s
}

// Conn is how to reach a branch's server: branch password.
type Conn struct {
	Branch   string `json:"branch"` // PROJECT/BRANCH
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password,omitempty"`
	Database string `json:"database"`
	URL      string `json:"url"`
	CACert   string `json:"ca_cert,omitempty"`
	// RouterURL reaches the branch through velo serve's one port, routed
	// by the database name; RouterTLSURL by the TLS server name.
	RouterURL    string `json:"router_url"`
	RouterTLSURL string `json:"router_tls_url"`
}

// NewConn is the view of c.
func NewConn(c engine.Conn) Conn {
	return Conn{Branch: c.Branch, Host: c.Host, Port: c.Port, User: c.User, Password: c.Password, Database: c.Database, URL: c.URL, CACert: c.CACert, RouterURL: c.RouterURL, RouterTLSURL: c.RouterTLSURL}
}

// StartResult is one branch that branch start --all looked at.
type StartResult struct {
	Branch  string `json:"branch"` // PROJECT/BRANCH
	Port    int    `json:"port"`
	Started bool   `json:"started"` // false: it was already running
	Error   string `json:"error,omitempty"`
}

// StopResult is one branch that branch stop --all looked at.
type StopResult struct {
	Branch  string `json:"branch"` // PROJECT/BRANCH
	Port    int    `json:"port"`
	Stopped bool   `json:"stopped"` // false: it was already stopped
	Error   string `json:"error,omitempty"`
}

// StartResults is branch start --all.
type StartResults []StartResult

// StopResults is branch stop --all.
type StopResults []StopResult

// NewStartResults is the view of rs.
func NewStartResults(rs []engine.ServerResult) StartResults {
	return each(rs, func(r engine.ServerResult) StartResult {
		return StartResult{Branch: r.Branch, Port: r.Port, Started: r.Changed, Error: r.Error}
	})
}

// NewStopResults is the view of rs.
func NewStopResults(rs []engine.ServerResult) StopResults {
	return each(rs, func(r engine.ServerResult) StopResult {
		return StopResult{Branch: r.Branch, Port: r.Port, Stopped: r.Changed, Error: r.Error}
	})
}

func (Branch) JSONDocument()        {}
func (Branches) JSONDocument()      {}
func (Projects) JSONDocument()      {}
func (ProjectDetail) JSONDocument() {}
func (Status) JSONDocument()        {}
func (Conn) JSONDocument()          {}
func (StartResults) JSONDocument()  {}
func (StopResults) JSONDocument()   {}
func (Prune) JSONDocument()         {}

// Promote is branch promote: the new main and the old one, renamed.
type Promote struct {
	Main    Branch `json:"main"`
	OldMain Branch `json:"old_main"`
}

func (Promote) JSONDocument() {}

// Restore is branch restore: the restored branch, what it was restored to
// (a snapshot ID or a moment), and the branch that keeps the replaced
// state (null with --discard).
type Restore struct {
	Restored   Branch     `json:"restored"`
	SnapshotID string     `json:"snapshot_id,omitempty"`
	Target     *time.Time `json:"target,omitempty"`
	LSN        string     `json:"lsn,omitempty"`
	Kept       *Branch    `json:"kept"`
}

func (Restore) JSONDocument() {}
