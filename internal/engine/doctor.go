package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
	"github.com/velohq/velo/internal/storage/drivers"
	"github.com/velohq/velo/internal/ui"
)

// Level says how bad a finding is: ok, a warning (doctor still exits 0),
// or failed.
type Level string

const (
	LevelOK      Level = "ok"
	LevelWarning Level = "warning"
	LevelFailed  Level = "failed"
)

// Sections of the doctor's report, in the order they are shown.
const (
	SectionHost       = "host"
	SectionPools      = "pools"
	SectionState      = "state"
	SectionProjects   = "projects"
	SectionBranches   = "branches"
	SectionOrphans    = "orphans"
	SectionOperations = "operations"
)

// Finding is the outcome of one check. Anything not ok says, in Fix, the
// command that mends it.
type Finding struct {
	Section string `json:"section"`
	Subject string `json:"subject"`
	Status  Level  `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// OperationInfo is a journal entry whose command never finished.
type OperationInfo struct {
	ID        int64      `json:"id"`
	Command   string     `json:"command"`
	PID       int        `json:"pid"`
	StartedAt time.Time  `json:"started_at"`
	Steps     []StepInfo `json:"steps"`
	// InProgress: its process still runs; it is not interrupted.
	InProgress bool `json:"in_progress"`
}

// StepInfo is one journalled step.
type StepInfo struct {
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
}

// DoctorReport is the whole of `velo doctor`.
type DoctorReport struct {
	Findings   []Finding       `json:"findings"`
	Operations []OperationInfo `json:"unfinished_operations"`
	Failed     int             `json:"failed"`
	Warnings   int             `json:"warnings"`
}

// RepairAction is one thing `velo doctor --repair` does, or would do.
type RepairAction struct {
	Action  string `json:"action"`  // stop-server, destroy-volume, drop-record...
	Subject string `json:"subject"` // what it acts on
	Text    string `json:"text"`    // the action in words, imperative
	Reason  string `json:"reason"`
	Done    bool   `json:"done"`
	Error   string `json:"error,omitempty"`
}

// RepairReport is what `velo doctor --repair` did or would do.
type RepairReport struct {
	DryRun  bool           `json:"dry_run"`
	Actions []RepairAction `json:"actions"`
	// Left are the problems repair does not mend, each with its fix.
	Left []Finding `json:"left"`
}

// Doctor checks the host, the pools, the state database, and every project
// and branch against the storage and the processes, and finds what no
// record names and what an interrupted command left. It changes nothing.
func (e *Engine) Doctor(ctx context.Context) (DoctorReport, error) {
	rep := DoctorReport{Findings: []Finding{}, Operations: []OperationInfo{}}
	// The lock, when free, keeps other commands from changing the picture
	// while it is taken; when another velo holds it, its work in progress
	// is told apart from what a crash left.
	lock, lockErr := state.Acquire(ctx, e.Home, e.Command, 0, nil)
	if lockErr == nil {
		defer lock.Release()
	} else if !errors.Is(lockErr, state.ErrLocked) {
		return rep, lockErr
	}
	s, err := e.survey(ctx, lockErr == nil, 0)
	if err != nil {
		return rep, err
	}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	for _, f := range e.hostFindings(s) {
		add(f)
	}
	for _, f := range s.poolFindings() {
		add(f)
	}
	add(s.stateFinding())
	for _, f := range e.projectFindings(s) {
		add(f)
	}
	for _, f := range e.branchFindings(s) {
		add(f)
	}
	actions, left := e.plan(ctx, s)
	for _, a := range actions {
		if a.finding.Subject != "" {
			add(a.finding)
		}
	}
	for _, f := range left {
		add(f)
	}
	if !s.locked {
		// Another velo is mid-command: what it is building looks orphaned
		// until it records it. (An operation whose process is gone was
		// interrupted all the same.)
		for i := range rep.Findings {
			if f := &rep.Findings[i]; f.Section == SectionOrphans && f.Status == LevelFailed {
				f.Status = LevelWarning
			}
		}
		add(Finding{Section: SectionOperations, Subject: "lock", Status: LevelWarning,
			Message: fmt.Sprintf("another velo is running (%v): what it is making may look orphaned", lockErr),
			Fix:     "run velo doctor again when it has finished"})
	}
	for _, o := range s.ops {
		info := OperationInfo{ID: o.ID, Command: o.Command, PID: o.PID, StartedAt: o.StartedAt, Steps: []StepInfo{}, InProgress: s.inProgress[o.ID]}
		for _, st := range o.Steps {
			info.Steps = append(info.Steps, StepInfo{Action: st.Action, Subject: st.Subject, At: st.At})
		}
		rep.Operations = append(rep.Operations, info)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		return sectionRank(rep.Findings[i].Section) < sectionRank(rep.Findings[j].Section)
	})
	for _, f := range rep.Findings {
		switch f.Status {
		case LevelFailed:
			rep.Failed++
		case LevelWarning:
			rep.Warnings++
		}
	}
	return rep, nil
}

func sectionRank(s string) int {
	for i, n := range []string{SectionHost, SectionPools, SectionState, SectionProjects, SectionBranches, SectionOrphans, SectionOperations} {
		if n == s {
			return i
		}
	}
	return 99
}

// Repair finishes or undoes interrupted commands and removes orphans,
// holding the lock; with dryRun it only lists what it would do. The rule
// is simple because commands write their records last: storage and
// servers that no record names are orphans of an interrupted command and
// are removed (the undo); records whose storage is gone are dropped (gc
// destroys storage before its record); what gc would have destroyed next
// is destroyed (the finish); and a branch an interrupted command stopped is
// started again. It acts leaves first and stops at the first failure.
func (e *Engine) Repair(ctx context.Context, dryRun bool) (RepairReport, error) {
	rep := RepairReport{DryRun: dryRun, Actions: []RepairAction{}, Left: []Finding{}}
	onWait := func(h state.Holder) {
		e.Progress.Note("waiting for another velo (pid %d, %q) to finish...", h.PID, h.Command)
	}
	if dryRun {
		// The lock, without a journal entry: a dry run writes nothing.
		lock, err := state.Acquire(ctx, e.Home, e.Command, e.LockWait, onWait)
		if err != nil {
			return rep, err
		}
		defer lock.Release()
		s, err := e.survey(ctx, true, 0)
		if err != nil {
			return rep, err
		}
		if err := s.refuseDamagedState(); err != nil {
			return rep, err
		}
		actions, left := e.plan(ctx, s)
		for _, a := range actions {
			if a.do != nil {
				rep.Actions = append(rep.Actions, a.RepairAction)
			}
		}
		rep.Left = append(rep.Left, left...)
		return rep, nil
	}
	err := e.mutate(ctx, func(op *op) error {
		s, err := e.survey(ctx, true, op.id)
		if err != nil {
			return err
		}
		if err := s.refuseDamagedState(); err != nil {
			return err
		}
		actions, left := e.plan(ctx, s)
		rep.Left = append(rep.Left, left...)
		var failed error
		for _, a := range actions {
			if a.do == nil {
				continue
			}
			ra := a.RepairAction
			if failed == nil {
				err := op.record(ctx, "repair:"+ra.Action, ra.Subject)
				if err == nil {
					err = e.Progress.Step(ra.Text, func() error { return a.do(ctx) })
				}
				if err != nil {
					ra.Error = err.Error()
					failed = fmt.Errorf("%s: %w; nothing after it was done; run velo doctor to see what is left", ra.Text, err)
				} else {
					ra.Done = true
				}
			}
			rep.Actions = append(rep.Actions, ra)
		}
		return failed
	})
	return rep, err
}

func (s *survey) refuseDamagedState() error {
	if s.integrityErr != nil {
		return fmt.Errorf("the state database %s is damaged (%v); repair will not act on damaged records: salvage it first (see velo doctor)", s.statePath, s.integrityErr)
	}
	return nil
}

// ---- The survey: everything doctor and repair look at, read once. ----

// pool is one storage pool in use by projects.
type pool struct {
	driver, name string
	projects     []string
	d            storage.Driver
	tree         *dirtree.Tree // the directory drivers' bookkeeping; nil for zfs
	root         string        // canonical Tree root, for the directory drivers
	err          error         // the pool could not be opened or listed
	entries      map[string]storage.Entry
	stats        storage.PoolStats
	statsErr     error
	leftovers    []string
	// recorded counts the volumes the records place here and present those
	// the storage holds: none of several present means this is not the
	// filesystem it was (unmounted), and nothing in it is touched.
	recorded, present int
	volPaths          map[string]string // canonical volume path → ID, filled when needed
	// journalOnly: no project lives here; an interrupted command's journal
	// names it, so its orphans are looked for.
	journalOnly bool
}

func (p *pool) label() string { return fmt.Sprintf("%s (%s)", p.name, p.driver) }

// usable reports whether repair may act on what the pool holds.
func (p *pool) usable() bool { return p.err == nil && (p.recorded == 0 || p.present > 0) }

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
	return b.pool.err == nil && errors.Is(b.volErr, storage.ErrNotFound)
}

// server is a postmaster found in the process table.
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
	listening    map[int]bool
	archiveBase  string
	archiveOwn   bool // the archive base is this home's alone
	archives     []string
	logs         []string // branch log files: logs/ID.log
	sockets      []string // socket directories, when under this home
	ops          []state.Operation
	inProgress   map[int64]bool
	installs     []pg.Install
	installsErr  error
	runAs        *pg.OSUser
	runAsErr     error
}

func (e *Engine) survey(ctx context.Context, locked bool, ownOp int64) (*survey, error) {
	s := &survey{ownOp: ownOp, locked: locked, statePath: e.Store.Path(), snapshots: map[string]state.Snapshot{},
		snapProject: map[string]string{}, retired: map[string]string{}, poolOf: map[string]*pool{}, inProgress: map[int64]bool{}}
	s.integrityErr = e.Store.Integrity(ctx)
	s.installs, s.installsErr = pg.FindInstalls(ctx)
	if s.installsErr == nil {
		e.installs = s.installs
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

	s.servers = postmasters()
	s.listening = listeningPorts()
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
	for _, o := range ops {
		if o.ID == ownOp {
			continue
		}
		s.ops = append(s.ops, o)
		// Holding the lock, no other velo can be mid-command: every open
		// entry was interrupted. Otherwise a live process that started
		// before the entry is the command still at work.
		if !locked && sameProcess(o.PID, o.StartedAt) {
			s.inProgress[o.ID] = true
		}
	}
	// A command killed before any record placed a project in a pool (the
	// first project create there) leaves its storage where no project
	// points: the pools its journal names are searched too.
	for _, o := range s.ops {
		for _, st := range o.Steps {
			driver, name, ok := journalPool(st)
			if !ok || pools[driver+":"+name] != nil {
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
	return s, nil
}

// journalPool reads the pool a journalled step made storage in: the
// subject of create-volume, snapshot and clone is DRIVER:POOL:ID.
func journalPool(st state.Step) (driver, pool string, ok bool) {
	switch st.Action {
	case "create-volume", "snapshot", "clone":
	default:
		return "", "", false
	}
	driver, rest, ok1 := strings.Cut(st.Subject, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok1 || i <= 0 || driver == "" {
		return "", "", false
	}
	return driver, rest[:i], true
}

// openPool opens a project's pool and reads what it holds, without
// creating anything: a pool path that is missing, or lacks Velo's
// directory, is reported, not made.
func (e *Engine) openPool(ctx context.Context, p state.Project) *pool {
	pl := &pool{driver: p.Driver, name: p.Pool, entries: map[string]storage.Entry{}}
	if filepath.IsAbs(p.Pool) {
		if _, err := os.Stat(drivers.Root(p.Pool)); err != nil {
			pl.err = fmt.Errorf("%s holds no %s directory (%v): is the right filesystem mounted there?", p.Pool, filepath.Base(drivers.Root(p.Pool)), err)
			return pl
		}
	}
	d, err := e.driver(ctx, p)
	if err != nil {
		pl.err = err
		return pl
	}
	pl.d = d
	pl.stats, pl.statsErr = d.Pool(ctx)
	entries, err := d.List(ctx)
	if err != nil {
		pl.err = fmt.Errorf("list %s: %w", p.Pool, err)
		return pl
	}
	for _, en := range entries {
		pl.entries[en.ID] = en
	}
	if t, ok := d.(*dirtree.Tree); ok {
		pl.tree = t
		pl.root = canonical(t.Root)
		pl.leftovers, err = t.Leftovers()
		if err != nil {
			pl.err = fmt.Errorf("leftovers in %s: %w", t.Root, err)
		}
	}
	return pl
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
			spec := e.specAt(in, s.runAs, b.b, path)
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

// ---- Findings ----

var hostTools = []struct{ name, pkg, forWhat string }{
	{"zfs", "zfsutils-linux or zfs-fuse", "zfs"},
	{"zpool", "zfsutils-linux or zfs-fuse", "zfs"},
	{"btrfs", "btrfs-progs", "btrfs"},
	{"mkfs.btrfs", "btrfs-progs", ""},
	{"mkfs.xfs", "xfsprogs", ""},
}

func (e *Engine) hostFindings(s *survey) []Finding {
	var out []Finding
	inUse := map[string]bool{}
	for _, p := range s.projects {
		inUse[p.Driver] = true
	}
	osName := "unknown"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		if n := osRelease(string(b)); n != "" {
			osName = n
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	out = append(out, Finding{Section: SectionHost, Subject: "os", Status: LevelOK, Message: osName + kernel})

	fsys := map[string]bool{}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil {
		fsys = kernelFilesystems(string(b))
	}
	f := Finding{Section: SectionHost, Subject: "filesystems", Status: LevelOK}
	var have, lack []string
	for _, name := range []string{"btrfs", "xfs", "fuse"} {
		if fsys[name] {
			have = append(have, name)
		} else {
			lack = append(lack, name)
		}
	}
	f.Message = listOr(have, "none of btrfs, xfs, fuse") + " in the kernel"
	if len(lack) > 0 {
		f.Message += "; not available: " + strings.Join(lack, ", ")
	}
	if inUse["btrfs"] && !fsys["btrfs"] {
		f.Status, f.Fix = LevelFailed, "projects use btrfs storage: load the module (modprobe btrfs)"
	}
	out = append(out, f)

	f = Finding{Section: SectionHost, Subject: "tools", Status: LevelOK}
	have, lack = nil, nil
	var fixes []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t.name); err == nil {
			have = append(have, t.name)
			continue
		}
		lack = append(lack, t.name)
		if t.forWhat != "" && inUse[t.forWhat] {
			f.Status = LevelFailed
			fixes = append(fixes, fmt.Sprintf("%s storage needs %s: install %s", t.forWhat, t.name, t.pkg))
		}
	}
	f.Message = listOr(have, "none of them") + " found"
	if len(lack) > 0 {
		f.Message += "; not found: " + strings.Join(lack, ", ") + " (needed only for the storage that uses them)"
	}
	f.Fix = strings.Join(fixes, "; ")
	out = append(out, f)

	f = Finding{Section: SectionHost, Subject: "postgres", Status: LevelOK}
	switch {
	case s.installsErr != nil:
		f.Status, f.Message, f.Fix = LevelFailed, s.installsErr.Error(), "fix "+pg.BinEnv+" to list Postgres bin directories"
	case len(s.installs) == 0:
		f.Status, f.Message, f.Fix = LevelFailed, "no PostgreSQL found", "install it (apt-get install postgresql) or set "+pg.BinEnv
	default:
		var vs []string
		for _, in := range s.installs {
			vs = append(vs, fmt.Sprintf("%d (%s, %s)", in.Major, in.Version, in.BinDir))
		}
		f.Message = "PostgreSQL " + strings.Join(vs, "; ")
	}
	out = append(out, f)

	f = Finding{Section: SectionHost, Subject: "run-as user", Status: LevelOK}
	switch {
	case s.runAsErr != nil:
		f.Status, f.Message, f.Fix = LevelFailed, s.runAsErr.Error(), "create the user (apt-get install postgresql-common) or set "+pg.UserEnv
	case s.runAs == nil:
		f.Message = fmt.Sprintf("servers run as the current user (uid %d)", os.Geteuid())
	default:
		f.Message = fmt.Sprintf("servers run as %s (uid %d)", s.runAs.Name, s.runAs.UID)
	}
	out = append(out, f)

	f = Finding{Section: SectionHost, Subject: "home", Status: LevelOK, Message: e.Home}
	if !e.homeReachable() {
		f.Message += fmt.Sprintf(" (the Postgres user cannot pass through it: sockets in %s, WAL archives in %s)", e.runDir(), s.archiveBase)
	}
	out = append(out, f)
	return out
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}

func (s *survey) poolFindings() []Finding {
	var out []Finding
	for _, p := range s.pools {
		if p.journalOnly {
			continue // its orphans are reported; the pool itself is no project's
		}
		f := Finding{Section: SectionPools, Subject: p.label(), Status: LevelOK}
		switch {
		case p.err != nil:
			f.Status, f.Message = LevelFailed, p.err.Error()
			f.Fix = "make the pool available again"
			if p.driver == "zfs" {
				f.Fix = "see zpool status " + p.name + " and zpool import " + p.name
			} else {
				f.Fix = "mount the filesystem that holds " + p.name
			}
		case !p.usable():
			f.Status = LevelFailed
			f.Message = fmt.Sprintf("holds none of the %d volumes its records name: is the right filesystem mounted at %s?", p.recorded, p.name)
			f.Fix = "mount the filesystem that holds the volumes; velo doctor --repair leaves this pool alone until then"
		case p.statsErr != nil:
			f.Status, f.Message, f.Fix = LevelWarning, "pool figures: "+p.statsErr.Error(), "check the pool's health by hand"
		default:
			pct := 0.0
			if p.stats.Size > 0 {
				pct = 100 * float64(p.stats.Free) / float64(p.stats.Size)
			}
			f.Message = fmt.Sprintf("%s; %s free of %s (%.0f%%); projects %s", p.stats.Health, ui.Bytes(p.stats.Free), ui.Bytes(p.stats.Size), pct, strings.Join(p.projects, ", "))
			if p.stats.Health != "ONLINE" {
				f.Status = LevelFailed
				f.Fix = "see zpool status " + p.name
			} else if p.stats.Size > 0 && pct < 10 {
				f.Status = LevelWarning
				f.Fix = "free space: velo snapshot cleanup --all --days N, velo wal cleanup P/B --days N, delete unused branches, or grow the pool"
			}
		}
		out = append(out, f)
	}
	return out
}

func (s *survey) stateFinding() Finding {
	f := Finding{Section: SectionState, Subject: "state.db", Status: LevelOK, Message: "integrity ok (" + s.statePath + ")"}
	if s.integrityErr != nil {
		f.Status, f.Message = LevelFailed, fmt.Sprintf("%s: %v", s.statePath, s.integrityErr)
		f.Fix = fmt.Sprintf("stop using velo, keep a copy of the file, and salvage it: sqlite3 %s .recover | sqlite3 %s.recovered, then move the recovered file into place", s.statePath, s.statePath)
	}
	return f
}

func (e *Engine) projectFindings(s *survey) []Finding {
	var out []Finding
	for _, p := range s.projects {
		f := Finding{Section: SectionProjects, Subject: p.Name, Status: LevelOK,
			Message: fmt.Sprintf("PostgreSQL %d on %s (%s)", p.PGMajor, p.Pool, p.Driver)}
		hasMain, branches := false, 0
		for _, b := range s.branches {
			if b.p.ID == p.ID {
				branches++
				hasMain = hasMain || b.b.Name == MainBranch
			}
		}
		if branches == 0 && s.poolOf[p.ID].usable() {
			continue // reported with the orphans: repair finishes the delete
		}
		if !hasMain {
			// Only a project delete killed half way leaves this.
			out = append(out, Finding{Section: SectionProjects, Subject: p.Name, Status: LevelFailed,
				Message: "has no main branch: a project delete did not finish",
				Fix:     "velo project delete " + p.Name + " --force"})
			continue
		}
		if s.installsErr == nil {
			if _, err := pg.Pick(s.installs, p.PGMajor); err != nil {
				f.Status, f.Message = LevelFailed, err.Error()
				f.Fix = fmt.Sprintf("install PostgreSQL %d (apt-get install postgresql-%d) or set %s", p.PGMajor, p.PGMajor, pg.BinEnv)
			}
		}
		out = append(out, f)
	}
	return out
}

func (e *Engine) branchFindings(s *survey) []Finding {
	var out []Finding
	for _, b := range s.branches {
		ref := b.ref()
		f := Finding{Section: SectionBranches, Subject: ref, Status: LevelOK}
		switch {
		case b.pool.err != nil:
			f.Status, f.Message, f.Fix = LevelFailed, "its pool is unavailable: "+b.pool.err.Error(), "see the pool's finding above"
		case b.volumeGone() && b.pool.usable():
			// Reported with the orphans: repair drops the record.
			continue
		case b.volumeGone():
			f.Status, f.Message = LevelFailed, fmt.Sprintf("its volume %s is missing from %s", b.b.VolumeID, b.pool.label())
			f.Fix = "see the pool's finding above"
		case b.volErr != nil:
			f.Status, f.Message = LevelFailed, fmt.Sprintf("volume %s: %v", b.b.VolumeID, b.volErr)
			f.Fix = "make the volume available (mount it)"
		case b.dataGone:
			f.Status, f.Message = LevelFailed, "its data directory "+b.dataDir+" is gone"
			f.Fix = rebuildFix(b.p, b.b, s.branchesOf(b.p.ID))
		case b.statusErr != nil:
			f.Status, f.Message, f.Fix = LevelFailed, "server state: "+b.statusErr.Error(), "velo branch restart "+ref
		case b.status.State == runtime.Running:
			f.Message = fmt.Sprintf("running (pid %d, port %d)", b.status.PID, b.status.Port)
			if !b.status.Ready {
				f.Status, f.Message = LevelWarning, f.Message+" but not answering"
				f.Fix = "see " + e.logFile(b.b) + ", or velo branch restart " + ref
			} else if b.status.Port != b.b.Port {
				f.Status, f.Message = LevelWarning, fmt.Sprintf("%s, not on its port %d", f.Message, b.b.Port)
				f.Fix = "velo branch restart " + ref
			}
		default:
			f.Message = fmt.Sprintf("stopped (port %d); start it with velo branch start %s", b.b.Port, ref)
			if b.portTaken {
				f.Status = LevelWarning
				f.Message = fmt.Sprintf("stopped, and another process listens on its port %d: it cannot start", b.b.Port)
				f.Fix = fmt.Sprintf("stop what listens on port %d (ss -ltnp 'sport = :%d'), or velo doctor --repair if it is an orphan server", b.b.Port, b.b.Port)
			}
		}
		out = append(out, f)
		if b.volErr == nil && b.archive != nil {
			af := Finding{Section: SectionBranches, Subject: ref, Status: LevelWarning,
				Message: fmt.Sprintf("its WAL archive %s is missing (%v): point-in-time branches of it cannot be made", e.archiveDir(b.b.VolumeID), b.archive)}
			if b.status.State == runtime.Running {
				af.Fix = "velo branch restart " + ref + " (it makes the archive again)"
			} else {
				af.Fix = "velo branch start " + ref + " (it makes the archive again)"
			}
			out = append(out, af)
		}
	}
	return out
}

// ---- The plan: what repair does, and what doctor reports of it ----

type action struct {
	RepairAction
	finding Finding // how doctor reports the problem it mends
	do      func(ctx context.Context) error
}

// plan decides the repair, in the order it must run: orphan servers
// stopped, records of vanished storage dropped, storage destroyed leaves
// first, archives and leftovers removed, branches an interrupted command
// stopped started again, and the journal entries closed. left lists the
// problems it will not mend.
func (e *Engine) plan(ctx context.Context, s *survey) (actions []action, left []Finding) {
	add := func(level Level, kind, subject, text, reason, fix string, do func(ctx context.Context) error) {
		actions = append(actions, action{
			RepairAction: RepairAction{Action: kind, Subject: subject, Text: text, Reason: reason},
			finding:      Finding{Section: SectionOrphans, Subject: subject, Status: level, Message: reason, Fix: "velo doctor --repair " + fix},
			do:           do,
		})
	}

	// Orphan servers: postmasters on a data directory inside a Velo volume
	// that no branch owns.
	owned := map[string]bool{}
	for _, b := range s.branches {
		if b.canonical != "" {
			owned[b.canonical] = true
		}
	}
	for _, sv := range s.servers {
		if owned[sv.canonical] {
			continue
		}
		pl, vol := e.volumeOf(ctx, s, sv.canonical)
		if pl == nil {
			continue // not Velo's
		}
		if archive, ok := s.foreignDataDir(sv.canonical); ok {
			left = append(left, Finding{Section: SectionOrphans, Subject: "server pid " + joinInts(sv.pids), Status: LevelWarning,
				Message: fmt.Sprintf("postgres (pid %s) on %s, in %s, belongs to another Velo home: it archives to %s", joinInts(sv.pids), sv.dataDir, pl.label(), archive),
				Fix:     "run velo doctor with that home's VELO_HOME; pools are best not shared between homes"})
			continue
		}
		where := "in " + pl.label()
		if vol != "" {
			where = "in volume " + vol + " of " + pl.label()
		}
		dir := sv.dataDir
		add(LevelFailed, "stop-server", dir,
			fmt.Sprintf("stop orphan server (pid %s) on %s", joinInts(sv.pids), dir),
			fmt.Sprintf("postgres (pid %s) runs on %s, %s, which no branch owns", joinInts(sv.pids), dir, where), "stops it (fast shutdown)",
			func(ctx context.Context) error {
				return e.Runtime.Stop(ctx, runtime.Spec{DataDir: dir}, 10*time.Second)
			})
		actions[len(actions)-1].finding.Subject = "server pid " + joinInts(sv.pids)
	}

	// Records whose storage is gone. A branch goes only when the pool is
	// evidently the right one, it is not main, and its children go first.
	dropped := map[string]bool{}
	children := map[string]int{}
	for _, b := range s.branches {
		if b.b.ParentID != "" {
			children[b.b.ParentID]++
		}
	}
	for _, b := range leavesFirstStates(s.branches) {
		if !b.volumeGone() {
			continue
		}
		ref := b.ref()
		reason := fmt.Sprintf("the record of branch %s names volume %s, which is gone from %s", ref, b.b.VolumeID, b.pool.label())
		switch {
		case !b.pool.usable():
			continue // the pool's own finding says why
		case b.b.Name == MainBranch:
			left = append(left, Finding{Section: SectionOrphans, Subject: "branch " + ref, Status: LevelFailed,
				Message: reason + "; the project's data is lost",
				Fix:     fmt.Sprintf("restore the volume, or delete the project: velo project delete %s --force", b.p.Name)})
			continue
		case children[b.b.ID] > 0:
			left = append(left, Finding{Section: SectionOrphans, Subject: "branch " + ref, Status: LevelFailed,
				Message: reason + "; its children keep their own data",
				Fix:     fmt.Sprintf("restore the volume, or delete the branch with its children: velo branch delete %s --force", ref)})
			continue
		}
		dropped[b.b.ID] = true
		if b.b.ParentID != "" {
			children[b.b.ParentID]--
		}
		id := b.b.ID
		add(LevelFailed, "drop-record", "branch "+ref, "drop the record of branch "+ref, reason+"; its data is lost", "drops the record",
			func(ctx context.Context) error {
				return e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.DeleteBranch(ctx, id) })
			})
	}
	droppedSnap := map[string]bool{}
	for _, id := range sortedKeys(s.snapshots) {
		pl := s.poolOf[s.snapProject[id]]
		if _, ok := pl.entries[id]; ok || !pl.usable() {
			continue
		}
		droppedSnap[id] = true
		add(LevelFailed, "drop-record", "snapshot "+id, "drop the record of snapshot "+id,
			fmt.Sprintf("the record of snapshot %s names storage that is gone from %s", id, pl.label()), "drops the record",
			func(ctx context.Context) error { return e.Store.Q().DeleteSnapshot(ctx, id) })
	}
	droppedRetired := map[string]bool{}
	for _, v := range sortedKeys(s.retired) {
		pl := s.poolOf[s.retired[v]]
		if _, ok := pl.entries[v]; ok || !pl.usable() {
			continue
		}
		droppedRetired[v] = true
		add(LevelFailed, "drop-record", "retired volume "+v, "drop the record of retired volume "+v,
			fmt.Sprintf("the record of retired volume %s names storage that is gone from %s", v, pl.label()), "drops the record",
			func(ctx context.Context) error { return e.Store.Q().DeleteRetiredVolume(ctx, v) })
	}

	// Storage: what no record names, and what gc would destroy now.
	facts := storageFacts{Branches: map[string]bool{}, LiveBranch: map[string]bool{}, Retired: map[string]bool{}, Snapshots: map[string]state.Snapshot{}}
	for _, b := range s.branches {
		if !dropped[b.b.ID] {
			facts.Branches[b.b.VolumeID] = true
			facts.LiveBranch[b.b.ID] = true
		}
	}
	for v := range s.retired {
		if !droppedRetired[v] {
			facts.Retired[v] = true
		}
	}
	for id, sn := range s.snapshots {
		if !droppedSnap[id] {
			facts.Snapshots[id] = sn
		}
	}
	named := map[string]bool{} // volumes that stay: their archives stay
	for v := range facts.Branches {
		named[v] = true
	}
	for v := range facts.Retired {
		named[v] = true
	}
	for _, pl := range s.pools {
		if !pl.usable() {
			for id, en := range pl.entries {
				if en.Kind == storage.KindVolume {
					named[id] = true
				}
			}
			continue
		}
		f := facts
		f.Entries = nil
		seeds := map[string]string{} // volume → the archive that names its home
		for _, id := range sortedKeys(pl.entries) {
			en := pl.entries[id]
			f.Entries = append(f.Entries, en)
			if en.Kind == storage.KindVolume && !f.Branches[id] && !f.Retired[id] {
				if p, err := pl.d.Path(ctx, id); err == nil {
					if archive, ok := s.foreignDataDir(dataDir(p)); ok {
						seeds[id] = archive
					}
				}
			}
		}
		f.Foreign = foreignClosure(f, seeds)
		steps, kept := planDestroy(f)
		for _, st := range steps {
			e.addDestroy(add, pl, st, facts)
			if st.Kind == storage.KindVolume {
				delete(named, st.ID)
			}
		}
		for _, en := range kept {
			if en.Kind == storage.KindVolume {
				named[en.ID] = true
			}
			fd := Finding{Section: SectionOrphans, Subject: string(en.Kind) + " " + en.ID, Status: LevelWarning,
				Message: fmt.Sprintf("%s %s in %s: no record names it, but a recorded volume was cloned from it", en.Kind, en.ID, pl.label()),
				Fix:     "nothing to do: it goes when what depends on it goes"}
			if f.Foreign[en.ID] {
				fd.Message = fmt.Sprintf("%s %s in %s belongs to another Velo home", en.Kind, en.ID, pl.label())
				if a := seeds[en.ID]; a != "" {
					fd.Message += ": it archives to " + a
				}
				fd.Fix = "run velo doctor with that home's VELO_HOME; pools are best not shared between homes"
			}
			left = append(left, fd)
		}
	}

	// A project with no branch left is what a project delete killed after
	// it deleted main leaves: its storage goes above, then its records.
	for _, p := range s.projects {
		left := false
		for _, b := range s.branches {
			left = left || (b.p.ID == p.ID && !dropped[b.b.ID])
		}
		if left || !s.poolOf[p.ID].usable() {
			continue
		}
		id := p.ID
		add(LevelFailed, "drop-record", "project "+p.Name, "drop the record of project "+p.Name,
			fmt.Sprintf("project %s has no branch left: a project delete did not finish", p.Name), "finishes the delete",
			func(ctx context.Context) error {
				return e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.DeleteProject(ctx, id) })
			})
	}

	// WAL archives of volumes that are gone or going.
	for _, name := range s.archives {
		if named[name] {
			continue
		}
		dir := filepath.Join(s.archiveBase, name)
		level, reason := LevelFailed, fmt.Sprintf("WAL archive %s: no record names volume %s", dir, name)
		if s.retired[name] != "" || s.branchByVolume(name) != nil {
			level, reason = LevelWarning, fmt.Sprintf("WAL archive %s goes with volume %s", dir, name)
		}
		if !s.archiveOwn {
			left = append(left, Finding{Section: SectionOrphans, Subject: "archive " + name, Status: LevelWarning,
				Message: reason + "; it is in " + s.archiveBase + ", which other Velo homes may share",
				Fix:     "if no other VELO_HOME uses volume " + name + ": rm -r " + dir})
			continue
		}
		add(level, "remove-archive", "archive "+name, "remove WAL archive "+dir, reason, "removes it",
			func(ctx context.Context) error { return os.RemoveAll(dir) })
	}

	// What a crash left in the directory drivers' bookkeeping.
	for _, pl := range s.pools {
		if pl.tree == nil || !pl.usable() {
			continue
		}
		for _, path := range pl.leftovers {
			t := pl.tree
			add(LevelFailed, "remove-leftover", path, "remove leftover "+path,
				fmt.Sprintf("%s is left from an unfinished build or removal in %s", path, pl.label()), "removes it",
				func(ctx context.Context) error {
					if filepath.Base(filepath.Dir(path)) == "meta" {
						return ignoreNotExist(os.Remove(path))
					}
					return t.Ops.Remove(ctx, path)
				})
		}
	}

	// Socket directories and logs of branches that no longer exist.
	live := map[string]bool{}
	for _, b := range s.branches {
		if !dropped[b.b.ID] {
			live[b.b.ID] = true
		}
	}
	for _, path := range append(append([]string(nil), s.sockets...), s.logs...) {
		id := strings.TrimSuffix(filepath.Base(path), ".log")
		if live[id] {
			continue
		}
		add(LevelWarning, "remove-file", path, "remove "+path, fmt.Sprintf("%s belongs to no branch", path), "removes it",
			func(ctx context.Context) error { return os.RemoveAll(path) })
	}

	// Interrupted commands: start again what they stopped, then close them.
	started := map[string]bool{}
	for _, o := range s.ops {
		if s.inProgress[o.ID] {
			actions = append(actions, action{finding: Finding{Section: SectionOperations, Subject: fmt.Sprintf("operation #%d", o.ID), Status: LevelOK,
				Message: fmt.Sprintf("in progress: %q (pid %d, since %s)", o.Command, o.PID, o.StartedAt.Local().Format(time.DateTime))}})
			continue
		}
		var restarts []string
		for _, st := range o.Steps {
			b := s.stoppedBy(st)
			if b == nil || dropped[b.b.ID] || started[b.b.ID] || b.statusErr != nil || b.dataGone || b.status.State == runtime.Running || !b.b.WantRunning {
				continue
			}
			started[b.b.ID] = true
			ref := b.ref()
			restarts = append(restarts, ref)
			p, br := b.p, b.b
			actions = append(actions, action{
				RepairAction: RepairAction{Action: "start-server", Subject: ref, Text: "start " + ref + " again",
					Reason: fmt.Sprintf("the interrupted %q stopped it", o.Command)},
				do: func(ctx context.Context) error {
					spec, err := e.spec(ctx, p, br)
					if err != nil {
						return err
					}
					if err := e.ensureDirs(); err != nil {
						return err
					}
					if err := e.configure(p, br, spec, nil); err != nil {
						return err
					}
					_, err = e.Runtime.Start(ctx, spec)
					return err
				},
			})
		}
		msg := fmt.Sprintf("interrupted: %q (pid %d, started %s) did not finish; its steps: %s", o.Command, o.PID,
			o.StartedAt.Local().Format(time.DateTime), stepsText(o.Steps))
		if len(restarts) > 0 {
			msg += "; it stopped " + strings.Join(restarts, ", ")
		}
		id := o.ID
		actions = append(actions, action{
			RepairAction: RepairAction{Action: "finish-operation", Subject: fmt.Sprintf("operation #%d", id),
				Text: fmt.Sprintf("close operation #%d (%q)", id, o.Command), Reason: "its leftovers are repaired above"},
			finding: Finding{Section: SectionOperations, Subject: fmt.Sprintf("operation #%d", id), Status: LevelFailed, Message: msg,
				Fix: "velo doctor --repair finishes or undoes it (velo doctor --repair --dry-run shows how)"},
			do: func(ctx context.Context) error { return e.Store.FinishOperation(ctx, id) },
		})
	}
	return actions, left
}

func (e *Engine) addDestroy(add func(Level, string, string, string, string, string, func(context.Context) error), pl *pool, st destroyStep, f storageFacts) {
	d, id := pl.d, st.ID
	_, recordedSnap := f.Snapshots[id]
	recordedVol := f.Retired[id]
	level, reason := LevelFailed, fmt.Sprintf("%s %s in %s: no record names it", st.Kind, id, pl.label())
	if recordedSnap || recordedVol {
		level = LevelWarning
		reason = fmt.Sprintf("%s %s in %s is no longer needed (nothing was cloned from it), but was not destroyed", st.Kind, id, pl.label())
	}
	if st.Kind == storage.KindVolume {
		add(level, "destroy-volume", "volume "+id, fmt.Sprintf("destroy volume %s in %s", id, pl.label()), reason, "destroys it",
			func(ctx context.Context) error {
				if err := ignoreNotFound(d.DestroyVolume(ctx, id)); err != nil {
					return err
				}
				if recordedVol {
					return e.Store.Q().DeleteRetiredVolume(ctx, id)
				}
				return nil
			})
		return
	}
	add(level, "destroy-snapshot", "snapshot "+id, fmt.Sprintf("destroy snapshot %s in %s", id, pl.label()), reason, "destroys it",
		func(ctx context.Context) error {
			if err := ignoreNotFound(d.DestroySnapshot(ctx, id)); err != nil {
				return err
			}
			if recordedSnap {
				return e.Store.Q().DeleteSnapshot(ctx, id)
			}
			return nil
		})
}

// stoppedBy returns the branch a journalled step stopped, if any: a
// stop-server names a data directory; start, stop and restart name P/B.
func (s *survey) stoppedBy(st state.Step) *branchState {
	for _, b := range s.branches {
		switch st.Action {
		case "stop-server":
			if b.dataDir != "" && (filepath.Clean(st.Subject) == filepath.Clean(b.dataDir) || canonical(st.Subject) == b.canonical) {
				return b
			}
		case "server":
			if st.Subject == b.ref() {
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

// volumeOf tells whether a data directory lies in a Velo pool, and in which
// volume: under a directory driver's root, or in a zfs volume's mount.
func (e *Engine) volumeOf(ctx context.Context, s *survey, dir string) (*pool, string) {
	for _, pl := range s.pools {
		if pl.err != nil {
			continue
		}
		if pl.tree != nil {
			if !isUnder(dir, pl.root) {
				continue
			}
			rel, _ := filepath.Rel(pl.root, dir)
			parts := strings.Split(rel, string(filepath.Separator))
			if len(parts) >= 2 && parts[0] == "vol" {
				return pl, parts[1]
			}
			return pl, ""
		}
		if pl.volPaths == nil {
			pl.volPaths = map[string]string{}
			for id, en := range pl.entries {
				if en.Kind != storage.KindVolume {
					continue
				}
				if p, err := pl.d.Path(ctx, id); err == nil {
					pl.volPaths[canonical(p)] = id
				}
			}
		}
		for p, id := range pl.volPaths {
			if isUnder(dir, p) {
				return pl, id
			}
		}
	}
	return nil, ""
}

// ---- Pure logic ----

// storageFacts are what decides the fate of one pool's entries.
type storageFacts struct {
	Entries    []storage.Entry
	Branches   map[string]bool           // volumes that branches use
	LiveBranch map[string]bool           // branch IDs that stay
	Retired    map[string]bool           // retired volumes still recorded
	Snapshots  map[string]state.Snapshot // recorded snapshots
	// Foreign entries belong to another Velo home sharing the pool: never touched.
	Foreign map[string]bool
}

type destroyStep struct {
	ID   string
	Kind storage.Kind
}

// planDestroy decides which entries to destroy, leaves first: an entry
// goes once nothing left depends on it, if no record names it (an
// orphan), or if gc would destroy it (a retired volume; a snapshot no
// user keeps for a live branch). kept are the unnamed entries that
// something named still depends on.
func planDestroy(f storageFacts) (steps []destroyStep, kept []storage.Entry) {
	gone := map[string]bool{}
	for {
		progress := false
		for _, en := range f.Entries {
			if gone[en.ID] || f.Foreign[en.ID] || hasDependents(f.Entries, gone, en.ID) {
				continue
			}
			destroy := false
			if en.Kind == storage.KindVolume {
				destroy = !f.Branches[en.ID]
			} else if s, ok := f.Snapshots[en.ID]; ok {
				destroy = !(s.User && f.LiveBranch[s.BranchID])
			} else {
				destroy = true
			}
			if destroy {
				gone[en.ID] = true
				steps = append(steps, destroyStep{ID: en.ID, Kind: en.Kind})
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	for _, en := range f.Entries {
		_, snap := f.Snapshots[en.ID]
		if !gone[en.ID] && !f.Branches[en.ID] && !f.Retired[en.ID] && !snap {
			kept = append(kept, en)
		}
	}
	return steps, kept
}

// foreignClosure spreads foreignness from the volumes another home made
// (seeds) to the unnamed entries linked to them: their snapshots and those
// snapshots' clones, and the snapshot and volume a foreign clone came from.
func foreignClosure(f storageFacts, seeds map[string]string) map[string]bool {
	out := map[string]bool{}
	for id := range seeds {
		out[id] = true
	}
	unnamed := func(id string) bool {
		_, snap := f.Snapshots[id]
		return !f.Branches[id] && !f.Retired[id] && !snap
	}
	for {
		progress := false
		for _, en := range f.Entries {
			if en.Origin == "" || !unnamed(en.ID) || !unnamed(en.Origin) {
				continue
			}
			if out[en.Origin] && !out[en.ID] {
				out[en.ID], progress = true, true
			}
			if out[en.ID] && !out[en.Origin] {
				out[en.Origin], progress = true, true
			}
		}
		if !progress {
			return out
		}
	}
}

func hasDependents(entries []storage.Entry, gone map[string]bool, id string) bool {
	for _, en := range entries {
		if en.Origin == id && !gone[en.ID] {
			return true
		}
	}
	return false
}

func leavesFirstStates(bs []*branchState) []*branchState {
	var plain []state.Branch
	byID := map[string]*branchState{}
	for _, b := range bs {
		plain = append(plain, b.b)
		byID[b.b.ID] = b
	}
	var out []*branchState
	for _, b := range leavesFirst(plain) {
		out = append(out, byID[b.ID])
	}
	return out
}

// postmasters lists the postgres servers in the process table, from
// their command lines (postgres -D DIR), one per data directory.
func postmasters() []server {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	byDir := map[string]*server{}
	var order []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		dir, ok := postmasterDataDir(b)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		c := canonical(dir)
		sv := byDir[c]
		if sv == nil {
			sv = &server{dataDir: dir, canonical: c}
			byDir[c] = sv
			order = append(order, c)
		}
		sv.pids = append(sv.pids, pid)
	}
	var out []server
	for _, c := range order {
		sort.Ints(byDir[c].pids)
		out = append(out, *byDir[c])
	}
	return out
}

// postmasterDataDir reads a /proc/PID/cmdline: the data directory of a
// postgres started as `postgres -D DIR` (an absolute DIR). Postgres's
// children rewrite their command line, so only postmasters match.
func postmasterDataDir(cmdline []byte) (string, bool) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 2 || filepath.Base(args[0]) != "postgres" {
		return "", false
	}
	for i := 1; i < len(args); i++ {
		dir := ""
		switch {
		case args[i] == "-D" && i+1 < len(args):
			dir = args[i+1]
		case strings.HasPrefix(args[i], "-D") && len(args[i]) > 2:
			dir = args[i][2:]
		}
		if dir != "" {
			return dir, filepath.IsAbs(dir)
		}
	}
	return "", false
}

// listeningPorts returns the TCP ports something listens on.
func listeningPorts() map[int]bool {
	out := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if b, err := os.ReadFile(f); err == nil {
			for p := range parseListening(string(b)) {
				out[p] = true
			}
		}
	}
	return out
}

// parseListening reads /proc/net/tcp: the local ports of sockets in
// state 0A (LISTEN).
func parseListening(table string) map[int]bool {
	out := map[int]bool{}
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		_, port, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(port, 16, 16); err == nil {
			out[int(n)] = true
		}
	}
	return out
}

// osRelease returns PRETTY_NAME from /etc/os-release.
func osRelease(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// kernelFilesystems reads /proc/filesystems.
func kernelFilesystems(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			out[fields[len(fields)-1]] = true
		}
	}
	return out
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

// sameProcess reports whether pid is alive and started no later than at:
// the process that opened a journal entry at that time, not a reuse of
// its PID.
func sameProcess(pid int, at time.Time) bool {
	start, err := processStart(pid)
	return err == nil && !start.After(at.Add(time.Second))
}

// processStart is when a process started, from /proc (clock ticks after
// boot; Linux's USER_HZ is 100).
func processStart(pid int) (time.Time, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return time.Time{}, errors.New("bad /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// Fields after the name start at field 3 (state); starttime is field 22.
	if len(fields) < 20 || fields[0] == "Z" {
		return time.Time{}, errors.New("no such live process")
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * (time.Second / 100)), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}

// foreignDataDir tells a data directory that another Velo home made: its
// velo.conf archives outside this home's archive directory. Homes that
// share /var/lib/velo/wal cannot be told apart this way.
func (s *survey) foreignDataDir(dir string) (archive string, foreign bool) {
	b, err := os.ReadFile(filepath.Join(dir, pg.ConfigFile))
	if err != nil {
		return "", false
	}
	archive = confValue(string(b), "basic_archive.archive_directory")
	if archive == "" || filepath.Clean(filepath.Dir(archive)) == filepath.Clean(s.archiveBase) {
		return "", false
	}
	return archive, true
}

// confValue reads one setting from a postgresql.conf-style text; the last
// one wins, as in Postgres.
func confValue(text, name string) string {
	v := ""
	for _, line := range strings.Split(text, "\n") {
		k, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'' {
			val = strings.ReplaceAll(val[1:len(val)-1], "''", "'")
		}
		v = val
	}
	return v
}

func stepsText(steps []state.Step) string {
	if len(steps) == 0 {
		return "none"
	}
	var out []string
	for _, st := range steps {
		out = append(out, st.Action+" "+st.Subject)
	}
	return strings.Join(out, ", ")
}

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

func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
