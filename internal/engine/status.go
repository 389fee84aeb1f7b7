package engine

import (
	"context"
	"sync"
	"time"

	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

type projectBranch struct {
	p state.Project
	b state.Branch
}

// BranchInfo is what `branch list`, `branch get` and `status` show of a
// branch; its state is read from the running process, not from records.
// The CLI prints it through internal/view, which gives it its JSON keys.
type BranchInfo struct {
	Name      string // PROJECT/BRANCH
	Project   string
	Branch    string // the branch's name in its project
	Parent    string // PROJECT/BRANCH, "" for main
	State     string // running, stopped, suspended, missing
	PID       int
	StartedAt time.Time
	Port      int
	URL       string
	// RouterURL reaches the branch through velo serve's one port, routed
	// by the database name; RouterTLSURL by the TLS server name.
	RouterURL, RouterTLSURL string
	Volume                  string
	// Exclusive and Reference are the branch's space; nil when not
	// computed (see Sizes).
	Exclusive *int64
	Reference *int64
	CreatedAt time.Time
	Problem   string
	// CACert verifies the server's certificate (sslrootcert).
	CACert string
	// Where the branch's files are: its data directory ("" when its volume
	// cannot be found), socket directory and server log.
	DataDir, SocketDir, LogFile string
	// PITRTarget is the moment a point-in-time branch recovered to, from
	// SourceSnapshot; nil for other branches.
	PITRTarget     *time.Time
	SourceSnapshot string
	// PITRLSN is the LSN a point-in-time branch recovered to, when it was
	// given one; "" otherwise.
	PITRLSN string
	// Protected: delete, reset and expiry refuse the branch.
	Protected bool
	// Masked: the branch's data was masked (masked.go).
	Masked bool
	// ExpiresAt is when velo prune deletes the branch; nil for never.
	ExpiresAt *time.Time
	// SuspendedAt is when velo serve suspended the branch (State
	// suspended); nil otherwise.
	SuspendedAt *time.Time
	// Idle is how long velo serve lets the branch run without clients (0:
	// never), and IdleFrom where that comes from (IdleFromBranch...).
	Idle     time.Duration
	IdleFrom string
}

// PoolInfo is one pool's figures.
type PoolInfo struct {
	Storage string
	storage.PoolStats
	Error string
}

// StatusReport is the whole of `velo status`.
type StatusReport struct {
	Pools    []PoolInfo
	Projects []ProjectStatus
}

// ProjectStatus is one project and its branches.
type ProjectStatus struct {
	ProjectInfo
	BranchList []BranchInfo
}

// Branches describes the branches of one project ("" for all), checking
// each against its process and storage, in parallel.
//
// Sizes says whether to report each branch's space where the driver can
// only compute it by walking the branch's files (btrfs, reflink, copy): that
// takes time in proportion to the data, as `docker ps --size` does. ZFS
// keeps its own accounting and always reports it.
func (e *Engine) Branches(ctx context.Context, project string, sizes bool) ([]BranchInfo, error) {
	var ps []state.Project
	if project != "" {
		if err := ValidateName("project", project); err != nil {
			return nil, err
		}
		p, err := e.project(ctx, project)
		if err != nil {
			return nil, err
		}
		ps = []state.Project{p}
	} else {
		all, err := e.Store.Q().Projects(ctx)
		if err != nil {
			return nil, err
		}
		ps = all
	}
	return e.branchesOf(ctx, ps, sizes)
}

// branchesOf describes the branches of projects ps, in tree order.
func (e *Engine) branchesOf(ctx context.Context, ps []state.Project, sizes bool) ([]BranchInfo, error) {
	var pbs []projectBranch
	for _, p := range ps {
		bs, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range treeOrder(bs) {
			pbs = append(pbs, projectBranch{p, b})
		}
	}
	return e.describe(ctx, pbs, sizes), nil
}

// Branch describes one branch, its sizes included.
func (e *Engine) Branch(ctx context.Context, ref string) (BranchInfo, error) {
	return e.branchInfo(ctx, ref, true)
}

// BranchWithoutSizes describes one branch but its sizes where they cost
// a walk of its files (btrfs, reflink, copy; ZFS keeps its own): what a
// changing command prints under --json, so that a branch create is not
// slowed by reading the whole data directory it has just cloned.
func (e *Engine) BranchWithoutSizes(ctx context.Context, ref string) (BranchInfo, error) {
	return e.branchInfo(ctx, ref, false)
}

func (e *Engine) branchInfo(ctx context.Context, ref string, sizes bool) (BranchInfo, error) {
	p, b, err := e.ref(ctx, ref)
	if err != nil {
		return BranchInfo{}, err
	}
	return e.describe(ctx, []projectBranch{{p, b}}, sizes)[0], nil
}

// treeOrder lists branches parent before children, siblings by age.
func treeOrder(bs []state.Branch) []state.Branch {
	var out []state.Branch
	var walk func(parent string)
	walk = func(parent string) {
		for _, b := range bs {
			if b.ParentID == parent {
				out = append(out, b)
				walk(b.ID)
			}
		}
	}
	walk("")
	return out
}

func (e *Engine) describe(ctx context.Context, pbs []projectBranch, sizes bool) []BranchInfo {
	names := map[string]string{}
	for _, x := range pbs {
		names[x.b.ID] = x.p.Name + "/" + x.b.Name
	}
	out := make([]BranchInfo, len(pbs))
	// The Postgres installs are found meanwhile (each is a few programs
	// run); install caches what it finds for the fan-out.
	if len(pbs) > 0 {
		go func() { _, _ = e.install(ctx, pbs[0].p.PGMajor) }()
	}
	// Drivers are built once, before the fan-out; those that can describe
	// every volume in one call (ZFS) do, with usage, which their pool keeps.
	bulk := map[storage.Driver]map[string]storage.VolumeInfo{}
	for _, x := range pbs {
		d, err := e.driver(ctx, x.p)
		if err != nil {
			continue
		}
		if bd, ok := d.(storage.Bulk); ok {
			if _, done := bulk[d]; !done {
				if vs, err := bd.Volumes(ctx, true); err == nil {
					bulk[d] = vs
				}
			}
		}
	}
	// Read once, not per branch: the router's address and each project's
	// CA certificate.
	addr, cas := e.routerAddr(), map[string]string{}
	for _, x := range pbs {
		if _, ok := cas[x.p.ID]; !ok {
			cas[x.p.ID] = e.caCert(x.p)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, x := range pbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			info := BranchInfo{Name: x.p.Name + "/" + x.b.Name, Project: x.p.Name, Branch: x.b.Name, Port: x.b.Port,
				Volume: x.b.VolumeID, CreatedAt: x.b.CreatedAt, State: "stopped", URL: conn(x.p, x.b, false).URL,
				CACert: cas[x.p.ID], SocketDir: e.socketDir(x.b), LogFile: e.logFile(x.b), RouterURL: routerURL(addr, x.p, x.b, false),
				RouterTLSURL: routerTLSURL(addr, cas[x.p.ID], x.p, x.b, false)}
			info.Protected, info.Masked = x.b.Protected, x.b.Masked
			info.Idle, info.IdleFrom = idleTimeout(x.p, x.b)
			if !x.b.SuspendedAt.IsZero() && x.b.WantRunning {
				t := x.b.SuspendedAt
				info.State, info.SuspendedAt = "suspended", &t
			}
			if !x.b.ExpiresAt.IsZero() {
				t := x.b.ExpiresAt
				info.ExpiresAt = &t
			}
			if !x.b.PITRTarget.IsZero() {
				t := x.b.PITRTarget
				info.PITRTarget, info.SourceSnapshot = &t, x.b.OriginSnapshotID
			}
			if x.b.PITRLSN != "" {
				info.PITRLSN, info.SourceSnapshot = x.b.PITRLSN, x.b.OriginSnapshotID
			}
			if x.b.ParentID != "" {
				info.Parent = names[x.b.ParentID]
				if info.Parent == "" {
					if pb, err := e.Store.Q().BranchByID(ctx, x.b.ParentID); err == nil {
						info.Parent = x.p.Name + "/" + pb.Name
					}
				}
			}
			d, _ := e.driver(ctx, x.p)
			vi, inBulk := bulk[d][x.b.VolumeID]
			var spec runtime.Spec
			var err error
			if inBulk && vi.Path != "" {
				spec, err = e.observeSpecPath(ctx, x.p, x.b, vi.Path)
			} else {
				spec, err = e.observeSpec(ctx, x.p, x.b)
			}
			if err != nil {
				info.State, info.Problem = "missing", err.Error()
				out[i] = info
				return
			}
			info.DataDir = spec.DataDir
			if spec.Install.BinDir == "" && x.p.Image == "" {
				// Seen and stoppable, but not startable: say why.
				if _, err := e.install(ctx, x.p.PGMajor); err != nil {
					info.Problem = err.Error()
				}
			}
			if dataGone(spec.DataDir) {
				info.State, info.Problem = "missing", e.errDataGone(ctx, x.p, x.b, spec.DataDir).Error()
			} else if st, err := e.Runtime.Peek(ctx, spec); err != nil {
				info.Problem = err.Error()
			} else if st.State == runtime.Running {
				info.State, info.PID, info.StartedAt, info.SuspendedAt = "running", st.PID, st.StartedAt, nil
			}
			if inBulk && vi.Usage != nil {
				info.Exclusive, info.Reference = &vi.Usage.Exclusive, &vi.Usage.Referenced
			} else if _, isBulk := bulk[d]; !isBulk && sizes {
				if u, err := d.Usage(ctx, x.b.VolumeID); err == nil {
					info.Exclusive, info.Reference = &u.Exclusive, &u.Referenced
				}
			}
			out[i] = info
		}()
	}
	wg.Wait()
	return out
}

// Status reports every pool in use and every project with its branches;
// sizes as for Branches.
func (e *Engine) Status(ctx context.Context, sizes bool) (StatusReport, error) {
	rep := StatusReport{Pools: []PoolInfo{}, Projects: []ProjectStatus{}}
	ps, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return rep, err
	}
	// Each pool's figures are read while the branches are described: on
	// ZFS each waits for a forced transaction-group sync, and the two now
	// overlap. The drivers are built here, before either starts, so that
	// the pool goroutines never touch the engine's cache of them.
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, p := range ps {
		key := p.Driver + ":" + p.Pool
		if seen[key] {
			continue
		}
		seen[key] = true
		i := len(rep.Pools)
		rep.Pools = append(rep.Pools, PoolInfo{Storage: p.Driver, PoolStats: storage.PoolStats{Name: p.Pool}})
		d, err := e.driver(ctx, p)
		if err != nil {
			rep.Pools[i].Error = err.Error()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, err := d.Pool(ctx); err != nil {
				rep.Pools[i].Error = err.Error()
			} else {
				st.Name = p.Pool
				rep.Pools[i].PoolStats = st
			}
		}()
	}
	branches, err := e.branchesOf(ctx, ps, sizes)
	wg.Wait()
	if err != nil {
		return rep, err
	}
	for _, p := range ps {
		s := ProjectStatus{BranchList: []BranchInfo{}}
		for _, b := range branches {
			if b.Project == p.Name {
				s.BranchList = append(s.BranchList, b)
			}
		}
		s.ProjectInfo = e.projectInfo(p, len(s.BranchList))
		e.followView(ctx, p, s.ProjectInfo.Source)
		s.ProjectInfo.Archive = e.describeArchive(ctx, p)
		rep.Projects = append(rep.Projects, s)
	}
	return rep, nil
}
