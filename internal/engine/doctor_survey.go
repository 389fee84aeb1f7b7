// The survey: everything doctor and repair look at, read once, changing
// nothing: the records, each pool and what it holds, each branch's volume,
// server and archive, the servers the runtime runs, archives, logs and
// socket directories, and the journal's unfinished operations.

package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/procfs"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

type branchState struct {
	p         state.Project
	b         state.Branch
	pool      *pool
	volErr    error  // the volume's path could not be found
	dataDir   string // as Velo names it (volume path/pgdata)
	canonical string // with symlinks resolved
	status    runtime.Status
	statusErr error
	dataGone  bool  // the volume is there, its pgdata is not
	archive   error // the archive directory's stat
	portTaken bool  // stopped, and something else listens on its port
	installed error // the project's Postgres major is missing
}

func (b *branchState) ref() string { return b.p.Name + "/" + b.b.Name }

// volumeGone: the pool answers and does not hold the branch's volume.
func (b *branchState) volumeGone() bool {
	return b.pool.err == nil && errors.Is(b.volErr, errdefs.ErrNotFound)
}

// server is a data directory the runtime found servers running on.
type server struct {
	pids      []int
	dataDir   string // as on its command line
	canonical string
}

type survey struct {
	ownOp        int64 // a repair's own journal entry, left out
	locked       bool  // this process holds the lock: no velo is mid-command
	statePath    string
	integrityErr error
	projects     []state.Project
	branches     []*branchState
	snapshots    map[string]state.Snapshot
	snapProject  map[string]string // snapshot ID → project ID
	retired      map[string]string // volume ID → project ID
	pools        []*pool
	poolOf       map[string]*pool // project ID → its pool
	servers      []server
	serversErr   error // the runtime cannot list its servers
	listening    map[int]bool
	archiveBase  string
	archiveOwn   bool // the archive base is this home's alone
	archives     []string
	logs         []string // branch log files: logs/ID.log
	sockets      []string // socket directories, when under this home
	ops          []journalOp
	inProgress   map[int64]bool
	installs     []pg.Install
	installsErr  error
	runAs        *pg.OSUser
	runAsErr     error
	// journalNamed: storage an unfinished command journalled making;
	// keepVolumes and keepBranches: what this home has without a record,
	// whose archives, socket directories and logs stay (doctor_unrecorded.go).
	journalNamed              map[string]bool
	keepVolumes, keepBranches map[string]bool
}

func (e *Engine) survey(ctx context.Context, locked bool, ownOp int64) (*survey, error) {
	s := &survey{ownOp: ownOp, locked: locked, statePath: e.Store.Path(), snapshots: map[string]state.Snapshot{},
		snapProject: map[string]string{}, retired: map[string]string{}, poolOf: map[string]*pool{}, inProgress: map[int64]bool{}}
	s.integrityErr = e.Store.Integrity(ctx)
	s.installs, s.installsErr = pg.FindInstalls(ctx)
	if s.installsErr == nil {
		// What the repair's restarts pick their binaries from (e.install).
		e.mu.Lock()
		e.installs = s.installs
		e.mu.Unlock()
	}
	s.runAs, s.runAsErr = e.osUser()

	projects, err := e.Store.Q().Projects(ctx)
	if err != nil {
		return nil, err
	}
	s.projects = projects
	pools := map[string]*pool{}
	for _, p := range projects {
		key := p.Driver + ":" + p.Pool
		pl := pools[key]
		if pl == nil {
			pl = e.openPool(ctx, p)
			pools[key] = pl
			s.pools = append(s.pools, pl)
		}
		pl.projects = append(pl.projects, p.Name)
		s.poolOf[p.ID] = pl
		bs, err := e.Store.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range treeOrder(bs) {
			s.branches = append(s.branches, &branchState{p: p, b: b, pool: pl})
		}
		snaps, err := e.Store.Q().Snapshots(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, sn := range snaps {
			s.snapshots[sn.ID] = sn
			s.snapProject[sn.ID] = p.ID
		}
		retired, err := e.Store.Q().RetiredVolumes(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range retired {
			s.retired[v] = p.ID
			if _, ok := pl.entries[v]; ok {
				pl.present++
			}
			pl.recorded++
		}
	}
	for _, b := range s.branches {
		if _, ok := b.pool.entries[b.b.VolumeID]; ok {
			b.pool.present++
		}
		b.pool.recorded++
	}

	s.servers, s.serversErr = e.listServers(ctx)
	s.listening = procfs.ListeningPorts()
	e.checkBranches(ctx, s)

	s.archiveBase = filepath.Dir(e.archiveDir("v"))
	s.archiveOwn = isUnder(s.archiveBase, e.Home)
	s.archives = veloNames(s.archiveBase, volumeDirName)
	logs := filepath.Join(e.Home, "logs")
	s.logs = joinAll(logs, veloNames(logs, logFileName))
	if isUnder(e.runDir(), e.Home) {
		s.sockets = joinAll(e.runDir(), veloNames(e.runDir(), branchDirName))
	}

	ops, err := e.Store.UnfinishedOperations(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range readJournal(ops) {
		if o.ID == ownOp {
			continue
		}
		s.ops = append(s.ops, o)
		// Holding the lock, no other velo can be mid-command: every open
		// entry was interrupted. Otherwise a live process that started
		// before the entry is the command still at work.
		if !locked && procfs.LiveSince(o.PID, o.StartedAt) {
			s.inProgress[o.ID] = true
		}
	}
	// A command killed before any record placed a project in a pool (the
	// first project create there) leaves its storage where no project
	// points: the pools its journal names are searched too.
	for _, o := range s.ops {
		for _, st := range o.steps {
			if !st.madeStorage() {
				continue
			}
			driver, name := st.subj.Driver, st.subj.Pool
			if pools[driver+":"+name] != nil {
				continue
			}
			pl := e.openPool(ctx, state.Project{Name: "(interrupted command)", Driver: driver, Pool: name})
			pools[driver+":"+name] = pl
			if pl.err != nil {
				continue // nothing of Velo's is there, or it cannot be looked at
			}
			pl.journalOnly = true
			s.pools = append(s.pools, pl)
		}
	}
	e.surveyUnrecorded(ctx, s)
	return s, nil
}

// checkBranches finds each branch's volume, server and archive, in parallel.
func (e *Engine) checkBranches(ctx context.Context, s *survey) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, b := range s.branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			in, err := pg.Pick(s.installs, b.p.PGMajor)
			if s.installsErr != nil {
				err = s.installsErr
			}
			if b.p.Image != "" {
				// Its Postgres is in its image, not on the host.
				in, err = pg.Install{Major: b.p.PGMajor}, nil
			}
			b.installed = err
			if b.pool.err != nil {
				b.volErr = b.pool.err
				return
			}
			path, err := b.pool.d.Path(ctx, b.b.VolumeID)
			if err != nil {
				b.volErr = err
				return
			}
			spec := e.specAt(b.p, in, s.runAs, b.b, path)
			b.dataDir, b.canonical = spec.DataDir, canonical(spec.DataDir)
			if b.dataGone = dataGone(spec.DataDir); b.dataGone {
				b.status = runtime.Status{State: runtime.Stopped}
				return
			}
			b.status, b.statusErr = e.Runtime.Status(ctx, spec)
			if b.statusErr == nil && b.status.State != runtime.Running {
				b.portTaken = s.listening[b.b.Port]
			}
			_, b.archive = os.Stat(e.archiveDir(b.b.VolumeID))
		}()
	}
	wg.Wait()
}

// listServers asks the runtime for every server it runs, and groups them by
// data directory. A runtime that cannot list them leaves orphan servers
// unseen, which the error says.
func (e *Engine) listServers(ctx context.Context) ([]server, error) {
	l, ok := e.Runtime.(runtime.Lister)
	if !ok {
		return nil, fmt.Errorf("the %s runtime cannot list its servers", e.Runtime.Name())
	}
	found, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	byDir := map[string]*server{}
	var order []string
	for _, f := range found {
		c := canonical(f.DataDir)
		sv := byDir[c]
		if sv == nil {
			sv = &server{dataDir: f.DataDir, canonical: c}
			byDir[c] = sv
			order = append(order, c)
		}
		sv.pids = append(sv.pids, f.PID)
	}
	var out []server
	for _, c := range order {
		sort.Ints(byDir[c].pids)
		out = append(out, *byDir[c])
	}
	return out, nil
}

// stoppedBy returns the branch a journalled step stopped, if any: a
// stop-server names a data directory; start, stop and restart name P/B.
func (s *survey) stoppedBy(st step) *branchState {
	if !st.valid {
		return nil
	}
	for _, b := range s.branches {
		switch st.kind {
		case stepStopServer:
			if b.dataDir != "" && (filepath.Clean(st.subj.Path) == filepath.Clean(b.dataDir) || canonical(st.subj.Path) == b.canonical) {
				return b
			}
		case stepServer:
			if st.subj.Branch == b.ref() {
				return b
			}
		}
	}
	return nil
}

func (s *survey) branchByVolume(v string) *branchState {
	for _, b := range s.branches {
		if b.b.VolumeID == v {
			return b
		}
	}
	return nil
}

var (
	volumeDirName = regexp.MustCompile(`^v[a-z0-9_-]{0,63}$`)
	logFileName   = regexp.MustCompile(`^b[a-z0-9_-]{0,63}\.log$`)
	branchDirName = regexp.MustCompile(`^b[a-z0-9_-]{0,63}$`)
)

// veloNames lists the names in dir that are Velo's: those matching name.
func veloNames(dir string, name *regexp.Regexp) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, en := range entries {
		if name.MatchString(en.Name()) {
			out = append(out, en.Name())
		}
	}
	return out
}

func joinAll(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

// canonical is p with symlinks resolved, as the kernel reports a
// process's current directory; p cleaned when it cannot be resolved.
func canonical(p string) string {
	if c, err := filepath.EvalSymlinks(p); err == nil {
		return c
	}
	return filepath.Clean(p)
}

func isUnder(path, root string) bool {
	path, root = filepath.Clean(path), filepath.Clean(root)
	return path == root || strings.HasPrefix(path, root+string(filepath.Separator))
}

func ignoreNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
