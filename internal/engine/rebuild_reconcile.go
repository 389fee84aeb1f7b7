package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/drivers"
)

// rebuildModel is the records a rebuild is making.
type rebuildModel struct {
	projects  map[string]state.Project // by ID
	branches  map[string]state.Branch  // by ID
	from      map[string]string        // branch ID → "records" or "storage"
	running   map[string]bool          // branch ID → its server runs
	listens   map[string]int           // branch ID → the port its server listens on
	snapshots map[string]state.Snapshot
	snapProj  map[string]string // snapshot ID → project ID
	retired   map[string]string // volume ID → project ID
}

// rebuildPool is one pool the rebuild reads.
type rebuildPool struct {
	key     string // DRIVER:POOL
	d       storage.Driver
	err     error
	entries map[string]storage.Entry
	vols    map[string]*rebuildVolume
	// recorded and present count the volumes the base's records place here
	// and those the pool holds: none of several present means the wrong
	// filesystem (unmounted), and no record of it is dropped.
	recorded, present int
}

func (p *rebuildPool) usable() bool { return p.err == nil && (p.recorded == 0 || p.present > 0) }

// rebuildVolume is one volume and what it says of itself.
type rebuildVolume struct {
	id, path string
	origin   string // the snapshot it was cloned from
	ident    *volumeIdentity
	running  bool
	port     int // the running server's port
}

func (e *Engine) loadModel(ctx context.Context, st *state.Store) (*rebuildModel, error) {
	m := &rebuildModel{projects: map[string]state.Project{}, branches: map[string]state.Branch{}, from: map[string]string{},
		running: map[string]bool{}, listens: map[string]int{}, snapshots: map[string]state.Snapshot{}, snapProj: map[string]string{}, retired: map[string]string{}}
	ps, err := st.Q().Projects(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		m.projects[p.ID] = p
		bs, err := st.Q().Branches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			m.branches[b.ID], m.from[b.ID] = b, "records"
		}
		ss, err := st.Q().Snapshots(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			m.snapshots[s.ID], m.snapProj[s.ID] = s, p.ID
		}
		rs, err := st.Q().RetiredVolumes(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range rs {
			m.retired[v] = p.ID
		}
	}
	return m, nil
}

// rebuildPools finds the pools to read: those the records name, those of
// the running servers of this home, the default pool and extra, each
// named as DRIVER:POOL, with the identities they hold read.
func (e *Engine) rebuildPools(ctx context.Context, m *rebuildModel, extra []string, rep *RebuildReport) map[string]*rebuildPool {
	keys := map[string]bool{}
	for _, p := range m.projects {
		keys[p.Driver+":"+p.Pool] = true
	}
	running := map[string]bool{}
	servers, err := e.listServers(ctx)
	if err != nil {
		rep.NotRecovered = append(rep.NotRecovered, "the running servers could not be listed ("+err.Error()+"): their ports and pools are not read")
	}
	for _, sv := range servers {
		running[sv.canonical] = true
		if id, err := readIdentity(filepath.Dir(sv.canonical)); err == nil && id.Home == e.Home {
			keys[id.Project.Driver+":"+id.Project.Pool] = true
		}
	}
	for _, p := range append([]string{e.defaultPool()}, extra...) {
		if !filepath.IsAbs(p) {
			keys["zfs:"+p] = true
			continue
		}
		for _, id := range e.homeIdentitiesIn(p) {
			keys[id.Project.Driver+":"+id.Project.Pool] = true
		}
	}
	pools := map[string]*rebuildPool{}
	for key := range keys {
		driver, name, _ := strings.Cut(key, ":")
		pl := &rebuildPool{key: key, entries: map[string]storage.Entry{}, vols: map[string]*rebuildVolume{}}
		pools[key] = pl
		if filepath.IsAbs(name) {
			if _, err := os.Stat(drivers.Root(name)); err != nil {
				pl.err = fmt.Errorf("%s holds no %s directory (%v): is the right filesystem mounted there?", name, filepath.Base(drivers.Root(name)), err)
				continue
			}
		}
		d, err := e.driver(ctx, state.Project{Name: "(rebuild)", Driver: driver, Pool: name})
		if err != nil {
			pl.err = err
			continue
		}
		pl.d = d
		entries, err := d.List(ctx)
		if err != nil {
			pl.err = fmt.Errorf("list %s: %w", name, err)
			continue
		}
		for _, en := range entries {
			pl.entries[en.ID] = en
			if en.Kind != storage.KindVolume {
				continue
			}
			v := &rebuildVolume{id: en.ID, origin: en.Origin}
			if path, err := d.Path(ctx, en.ID); err == nil {
				v.path = path
				if id, err := readIdentity(path); err == nil {
					v.ident = &id
				}
				if running[canonical(dataDir(path))] {
					v.running, v.port = true, postmasterPort(dataDir(path))
				}
			}
			pl.vols[en.ID] = v
		}
	}
	return pools
}

// postmasterPort reads the port from a running server's postmaster.pid
// (its fourth line).
func postmasterPort(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(lines[3]))
	return n
}

// reconcile checks the model against the storage and the processes and
// corrects it, saying what it changed and what it could not recover.
func (e *Engine) reconcile(ctx context.Context, st *state.Store, extra []string, rep *RebuildReport) (*rebuildModel, error) {
	m, err := e.loadModel(ctx, st)
	if err != nil {
		return nil, err
	}
	pools := e.rebuildPools(ctx, m, extra, rep)
	poolOf := func(projectID string) *rebuildPool {
		p := m.projects[projectID]
		key := p.Driver + ":" + p.Pool
		if pools[key] == nil {
			// A project whose identity names a pool other than the one its
			// volume was found in (a path spelt another way): nothing of
			// it is dropped for want of being found there.
			pools[key] = &rebuildPool{key: key, err: fmt.Errorf("not searched"), entries: map[string]storage.Entry{}, vols: map[string]*rebuildVolume{}}
		}
		return pools[key]
	}
	for _, b := range m.branches {
		pl := poolOf(b.ProjectID)
		pl.recorded++
		if _, ok := pl.entries[b.VolumeID]; ok {
			pl.present++
		}
	}
	for _, key := range sortedKeys(pools) {
		rep.Pools = append(rep.Pools, key)
		if err := pools[key].err; err != nil {
			rep.NotRecovered = append(rep.NotRecovered, fmt.Sprintf("pool %s could not be read: %v", key, err))
		}
	}
	change := func(f string, a ...any) { rep.Changes = append(rep.Changes, fmt.Sprintf(f, a...)) }
	lost := func(f string, a ...any) { rep.NotRecovered = append(rep.NotRecovered, fmt.Sprintf(f, a...)) }
	ref := func(b state.Branch) string { return m.projects[b.ProjectID].Name + "/" + b.Name }

	// Every volume of this home, by the branch its identity names.
	byBranch := map[string][]*rebuildVolume{}
	volPool := map[*rebuildVolume]*rebuildPool{}
	for _, key := range sortedKeys(pools) {
		pl := pools[key]
		if !pl.usable() {
			continue
		}
		for _, id := range sortedKeys(pl.vols) {
			v := pl.vols[id]
			volPool[v] = pl
			if v.ident != nil && v.ident.Home == e.Home {
				byBranch[v.ident.Branch.ID] = append(byBranch[v.ident.Branch.ID], v)
			}
		}
	}
	// newestLive is the volume a branch uses now: of those whose identity
	// names it and is not retired, the one written last.
	newestLive := func(vs []*rebuildVolume) *rebuildVolume {
		var best *rebuildVolume
		for _, v := range vs {
			if !v.ident.Retired && (best == nil || v.ident.WrittenAt.After(best.ident.WrittenAt)) {
				best = v
			}
		}
		return best
	}
	used := map[string]bool{} // volumes a branch uses

	// The base's branches, checked against their volumes.
	for _, id := range sortedKeys(m.branches) {
		b := m.branches[id]
		pl := poolOf(b.ProjectID)
		if !pl.usable() {
			change("%s is kept as recorded: its pool %s cannot be checked", ref(b), pl.key)
			used[b.VolumeID] = true
			continue
		}
		cur := pl.vols[b.VolumeID]
		live := newestLive(byBranch[b.ID])
		switch {
		case cur != nil && (cur.ident == nil || !cur.ident.Retired || live == nil):
		case live != nil:
			change("%s is on volume %s, which a reset made after the records were written (they named %s)", ref(b), live.id, b.VolumeID)
			if cur != nil {
				m.retired[b.VolumeID] = b.ProjectID
			}
			b.VolumeID, b.OriginSnapshotID = live.id, live.origin
			cur = live
		default:
			lost("branch %s: its volume %s is gone from %s, with its data; its record is dropped", ref(b), b.VolumeID, pl.key)
			delete(m.branches, id)
			continue
		}
		used[cur.id] = true
		m.running[b.ID], m.listens[b.ID] = cur.running, cur.port
		m.branches[id] = b
	}

	// Branches that only the storage knows.
	recovered := map[string]bool{} // projects made again from the storage
	for _, bid := range sortedKeys(byBranch) {
		if _, ok := m.branches[bid]; ok {
			continue
		}
		v := newestLive(byBranch[bid])
		if v == nil {
			continue // only retired volumes: recorded as such below
		}
		id := v.ident
		p, ok := m.projects[id.Project.ID]
		if ok && p.Mask == "" && id.Project.Mask != "" && recovered[p.ID] {
			// Main's volume holds the project's default mask.
			p.Mask = id.Project.Mask
			m.projects[p.ID] = p
		}
		if !ok {
			p = state.Project{ID: id.Project.ID, Name: id.Project.Name, Driver: id.Project.Driver, Pool: id.Project.Pool,
				PGMajor: id.Project.PGMajor, ArchiveTimeout: id.Project.ArchiveTimeout, Listen: id.Project.Listen, CreatedAt: id.Project.CreatedAt,
				Source: id.Project.Source, Runtime: id.Project.Runtime, Image: id.Project.Image, Archive: id.Project.Archive, ArchiveEndpoint: id.Project.ArchiveEndpoint,
				IdleSeconds: id.Project.IdleSeconds, Mask: id.Project.Mask}
			if p.Runtime == "" {
				p.Runtime = state.RuntimeNative
			}
			if other := m.projectNamed(p.Name); other != "" {
				lost("volume %s in %s: branch %s/%s of a project %s (id %s), but the records have another project of that name (id %s); not recorded",
					v.id, volPool[v].key, p.Name, id.Branch.Name, p.Name, p.ID, other)
				continue
			}
			m.projects[p.ID] = p
			recovered[p.ID] = true
			change("project %s is recovered from the storage", p.Name)
		}
		if other := m.branchNamed(p.ID, id.Branch.Name); other != "" {
			lost("volume %s in %s: branch %s/%s (id %s), but the records have another branch of that name (id %s); not recorded",
				v.id, volPool[v].key, p.Name, id.Branch.Name, bid, other)
			continue
		}
		b := state.Branch{ID: bid, ProjectID: p.ID, Name: id.Branch.Name, ParentID: id.Branch.ParentID, VolumeID: v.id,
			OriginSnapshotID: v.origin, Port: id.Branch.Port, WantRunning: v.running, CreatedAt: id.Branch.CreatedAt,
			PITRTarget: id.Branch.PITRTarget, ExpiresAt: id.Branch.ExpiresAt, PITRLSN: id.Branch.PITRLSN, Masked: id.Branch.Masked,
			Protected: id.Branch.Protected, IdleSeconds: id.Branch.IdleSeconds}
		if pw, err := e.readSecret(bid); err == nil {
			b.Password = pw
		}
		m.branches[bid], m.from[bid], m.running[bid], m.listens[bid] = b, "storage", v.running, v.port
		used[v.id] = true
		change("branch %s is recovered from the storage (volume %s)", ref(b), v.id)
	}

	// Volumes of this home that no branch uses: retired, kept while
	// snapshots depend on them.
	for _, bid := range sortedKeys(byBranch) {
		for _, v := range byBranch[bid] {
			if used[v.id] {
				continue
			}
			if _, ok := m.projects[v.ident.Project.ID]; !ok {
				lost("volume %s in %s: retired volume of project %s, which no record names; destroy it by hand if nothing needs it", v.id, volPool[v].key, v.ident.Project.Name)
				continue
			}
			if _, ok := m.retired[v.id]; !ok {
				m.retired[v.id] = v.ident.Project.ID
				change("volume %s (once %s/%s's) is recorded as retired", v.id, v.ident.Project.Name, v.ident.Branch.Name)
			}
		}
	}
	for _, v := range sortedKeys(m.retired) {
		pl := poolOf(m.retired[v])
		if _, ok := pl.entries[v]; !ok && pl.usable() {
			delete(m.retired, v)
			change("retired volume %s is gone from %s: its record is dropped", v, pl.key)
		}
	}
	// Volumes that look like this home's data but say nothing of themselves.
	for _, key := range sortedKeys(pools) {
		pl := pools[key]
		if !pl.usable() {
			continue
		}
		for _, id := range sortedKeys(pl.vols) {
			v := pl.vols[id]
			if v.ident != nil || used[id] || m.retired[id] != "" || v.path == "" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dataDir(v.path), pg.ConfigFile))
			archive := ""
			if err == nil {
				archive = pg.ConfigValue(string(b), "basic_archive.archive_directory")
			}
			if archive != "" && isUnder(archive, filepath.Dir(e.archiveDir("v"))) {
				lost("volume %s in %s holds a data directory of this home (it archives to %s) but no %s (made by an older velo): its project and branch cannot be named; its data is still there", id, key, archive, identityFile)
			}
		}
	}

	e.reconcileParents(m, lost)
	e.reconcilePorts(m, change, lost, ref)
	e.reconcilePasswords(ctx, m, change, lost, ref)
	e.reconcileSnapshots(m, pools, poolOf, change, lost)

	for _, p := range m.sortedProjects() {
		rep.Projects = append(rep.Projects, p.Name)
		var bs []state.Branch
		for _, b := range m.branches {
			if b.ProjectID == p.ID {
				bs = append(bs, b)
			}
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].CreatedAt.Before(bs[j].CreatedAt) })
		hasMain := false
		for _, b := range treeOrder(bs) {
			rb := RebuiltBranch{Branch: ref(b), Port: b.Port, Volume: b.VolumeID, Running: m.running[b.ID], From: m.from[b.ID]}
			if pb, ok := m.branches[b.ParentID]; ok {
				rb.Parent = ref(pb)
			}
			hasMain = hasMain || b.Name == MainBranch
			rep.Branches = append(rep.Branches, rb)
		}
		if !hasMain {
			lost("project %s has no main branch: its volume was not found", p.Name)
		}
	}
	rep.Snapshots = len(m.snapshots)
	return m, nil
}

func (m *rebuildModel) projectNamed(name string) string {
	for id, p := range m.projects {
		if p.Name == name {
			return id
		}
	}
	return ""
}

func (m *rebuildModel) branchNamed(projectID, name string) string {
	for id, b := range m.branches {
		if b.ProjectID == projectID && b.Name == name {
			return id
		}
	}
	return ""
}

func (m *rebuildModel) sortedProjects() []state.Project {
	var ps []state.Project
	for _, p := range m.projects {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// reconcileParents clears a parent that is gone: the branch keeps its data
// and has no parent to reset to.
func (e *Engine) reconcileParents(m *rebuildModel, lost func(string, ...any)) {
	for _, id := range sortedKeys(m.branches) {
		b := m.branches[id]
		if b.ParentID == "" {
			continue
		}
		if _, ok := m.branches[b.ParentID]; !ok {
			lost("branch %s/%s: its parent (id %s) is gone: it is recorded without one, so it cannot be reset", m.projects[b.ProjectID].Name, b.Name, b.ParentID)
			b.ParentID = ""
			m.branches[id] = b
		}
	}
}

// reconcilePorts takes each running server's port, and gives a new one to
// a stopped branch whose port another branch holds.
func (e *Engine) reconcilePorts(m *rebuildModel, change, lost func(string, ...any), ref func(state.Branch) string) {
	ids := sortedKeys(m.branches)
	// Running branches first: they keep the port they listen on.
	sort.SliceStable(ids, func(i, j int) bool { return m.running[ids[i]] && !m.running[ids[j]] })
	holder := map[int]string{}
	for _, id := range ids {
		b := m.branches[id]
		if port := m.listens[id]; m.running[id] && port != 0 && port != b.Port {
			change("%s listens on port %d: recorded so (the records said %d)", ref(b), port, b.Port)
			b.Port = port
		}
		if other, taken := holder[b.Port]; taken || b.Port == 0 {
			used := map[int]bool{}
			for p := range holder {
				used[p] = true
			}
			port, err := pg.FreePort(used)
			if err != nil {
				lost("%s: no free port for it: %v", ref(b), err)
				continue
			}
			change("%s gets port %d: its port %d is %s's (it takes the new one at its next start)", ref(b), port, b.Port, ref(m.branches[other]))
			b.Port = port
		}
		holder[b.Port] = id
		m.branches[id] = b
	}
}

// reconcilePasswords fills the passwords the base lacked: from the home's
// secrets, else the parent's (a branch starts with its parent's), and
// checks each recovered one against its running server.
func (e *Engine) reconcilePasswords(ctx context.Context, m *rebuildModel, change, lost func(string, ...any), ref func(state.Branch) string) {
	for _, b := range treeOrder(m.branchList()) {
		if b.Password == "" {
			if pb, ok := m.branches[b.ParentID]; ok && pb.Password != "" {
				b.Password = pb.Password
				change("%s: its password is its parent %s's (%s held none; a branch starts with its parent's)", ref(b), ref(pb), e.secretFile(b.ID))
			} else {
				lost("%s: its password was in no backup nor in %s: it is lost (the server keeps only its hash)", ref(b), e.secretFile(b.ID))
				m.branches[b.ID] = b
				continue
			}
		}
		m.branches[b.ID] = b
		if m.from[b.ID] != "storage" || !m.running[b.ID] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := pg.Connect(cctx, b.Port, b.Password)
		if err != nil {
			lost("%s: its server refuses the recovered password: %v", ref(b), err)
		} else {
			c.Close(cctx)
		}
		cancel()
	}
}

func (m *rebuildModel) branchList() []state.Branch {
	var bs []state.Branch
	for _, id := range sortedKeys(m.branches) {
		bs = append(bs, m.branches[id])
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].CreatedAt.Before(bs[j].CreatedAt) })
	return bs
}

// reconcileSnapshots drops the records of snapshots that are gone, and
// records the snapshots of this home's volumes that no record names, from
// the notes kept beside their volume.
func (e *Engine) reconcileSnapshots(m *rebuildModel, pools map[string]*rebuildPool, poolOf func(string) *rebuildPool, change, lost func(string, ...any)) {
	for _, id := range sortedKeys(m.snapshots) {
		pl := poolOf(m.snapProj[id])
		if _, ok := pl.entries[id]; !ok && pl.usable() {
			delete(m.snapshots, id)
			delete(m.snapProj, id)
			change("snapshot %s is gone from %s: its record is dropped", id, pl.key)
		}
	}
	for _, key := range sortedKeys(pools) {
		pl := pools[key]
		if !pl.usable() {
			continue
		}
		for _, id := range sortedKeys(pl.entries) {
			en := pl.entries[id]
			if en.Kind != storage.KindSnapshot {
				continue
			}
			if _, ok := m.snapshots[id]; ok {
				continue
			}
			v := pl.vols[en.Origin]
			if v == nil || v.ident == nil || v.ident.Home != e.Home {
				continue // not this home's
			}
			pid := v.ident.Project.ID
			if _, ok := m.projects[pid]; !ok {
				continue
			}
			s := state.Snapshot{ID: id, BranchID: v.ident.Branch.ID, VolumeID: en.Origin, User: true, CreatedAt: time.Now()}
			if n, err := readSnapshotNote(v.path, id); err == nil {
				s = state.Snapshot{ID: id, BranchID: n.BranchID, VolumeID: en.Origin, Label: n.Label, User: n.User,
					BackupLabel: n.BackupLabel, WALStart: n.WALStart, EndLSN: n.EndLSN, CreatedAt: n.CreatedAt, Masked: n.Masked}
				change("snapshot %s is recovered from the storage", id)
			} else {
				lost("snapshot %s of volume %s: its note is missing: recorded as a snapshot kept by the user, taken now, with no label (velo snapshot delete %s removes it)", id, en.Origin, id)
			}
			if _, ok := m.branches[s.BranchID]; !ok {
				s.BranchID = ""
			}
			m.snapshots[id], m.snapProj[id] = s, pid
		}
	}
}

// write replaces every record with the model, in one transaction; the
// journal is kept.
func (m *rebuildModel) write(ctx context.Context, st *state.Store) error {
	return st.Tx(ctx, func(tx *state.Tx) error {
		old, err := tx.Projects(ctx)
		if err != nil {
			return err
		}
		for _, p := range old {
			if err := tx.DeleteProject(ctx, p.ID); err != nil {
				return err
			}
		}
		for _, p := range m.sortedProjects() {
			if err := tx.InsertProject(ctx, p); err != nil {
				return fmt.Errorf("project %s: %w", p.Name, err)
			}
		}
		for _, b := range treeOrder(m.branchList()) {
			if err := tx.InsertBranch(ctx, b); err != nil {
				return fmt.Errorf("branch %s/%s: %w", m.projects[b.ProjectID].Name, b.Name, err)
			}
		}
		for _, id := range sortedKeys(m.snapshots) {
			if err := tx.InsertSnapshot(ctx, m.snapProj[id], m.snapshots[id]); err != nil {
				return fmt.Errorf("snapshot %s: %w", id, err)
			}
		}
		for _, v := range sortedKeys(m.retired) {
			if err := tx.RetireVolume(ctx, m.retired[v], v); err != nil {
				return fmt.Errorf("retired volume %s: %w", v, err)
			}
		}
		return nil
	})
}
