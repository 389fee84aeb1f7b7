// The repair plan: what `velo doctor --repair` does, in the order it must
// run, and how `velo doctor` reports each problem it mends. This file holds
// the plan's order and the parts about servers, records and interrupted
// commands; doctor_plan_storage.go the parts about storage, archives and
// files.

package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// The kinds of repair action: RepairAction.Action, and the journal step
// "repair:KIND" a repair records before taking one.
const (
	RepairStopServer      = "stop-server"
	RepairDropRecord      = "drop-record"
	RepairDestroyVolume   = "destroy-volume"
	RepairDestroySnapshot = "destroy-snapshot"
	RepairRemoveArchive   = "remove-archive"
	RepairRemoveLeftover  = "remove-leftover"
	RepairRemoveFile      = "remove-file"
	RepairStartServer     = "start-server"
	RepairFinishOperation = "finish-operation"
	RepairDropSlot        = "drop-slot"
	RepairMoveCA          = "move-ca"
)

type action struct {
	RepairAction
	finding Finding // how doctor reports the problem it mends
	do      func(ctx context.Context) error
}

// planner builds the plan from a survey, part by part; later parts see
// what earlier ones decided (a dropped branch's volume is an orphan).
type planner struct {
	e       *Engine
	s       *survey
	actions []action
	left    []Finding // the problems repair will not mend, each with its fix
	// dropped, droppedSnap and droppedRetired are the records dropped
	// because their storage is gone (by branch, snapshot, volume ID).
	dropped, droppedSnap, droppedRetired map[string]bool
	// named are the volumes that stay: their archives stay too.
	named map[string]bool
}

// plan decides the repair, in the order it must run: orphan servers
// stopped, records of vanished storage dropped, storage destroyed leaves
// first, archives and leftovers removed, branches an interrupted command
// stopped started again, and the journal entries closed. left lists the
// problems it will not mend.
func (e *Engine) plan(ctx context.Context, s *survey) (actions []action, left []Finding) {
	p := &planner{e: e, s: s, dropped: map[string]bool{}, droppedSnap: map[string]bool{}, droppedRetired: map[string]bool{}, named: map[string]bool{}}
	p.orphanServers(ctx)
	p.goneRecords()
	p.storage(ctx)
	p.emptyProjects()
	p.archives()
	p.leftovers()
	p.strayFiles()
	p.importLeftovers()
	p.interrupted()
	return p.actions, p.left
}

// orphan adds an action that mends an orphan, reported in the orphans
// section: fix says what the repair does about it.
func (p *planner) orphan(level Level, kind, subject, text, reason, fix string, do func(ctx context.Context) error) {
	p.actions = append(p.actions, action{
		RepairAction: RepairAction{Action: kind, Subject: subject, Text: text, Reason: reason},
		finding:      Finding{Section: SectionOrphans, Subject: subject, Status: level, Message: reason, Fix: "velo doctor --repair " + fix},
		do:           do,
	})
}

// orphanServers: postmasters on a data directory inside a Velo volume that
// no branch owns.
func (p *planner) orphanServers(ctx context.Context) {
	s, e := p.s, p.e
	if s.serversErr != nil {
		p.left = append(p.left, Finding{Section: SectionOrphans, Subject: "servers", Status: LevelWarning,
			Message: "orphan servers are not looked for: " + s.serversErr.Error(),
			Fix:     "look for postgres processes on data directories under the pools by hand (ps -ef | grep postgres)"})
	}
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
		if u, ok := e.homeServer(s, sv); ok && !s.journalNamed[u.volumeID] {
			p.left = append(p.left, s.keepUnrecordedServer(sv, u))
			continue
		}
		pl, vol := e.volumeOf(ctx, s, sv.canonical)
		if pl == nil {
			continue // not Velo's
		}
		if archive, ok := pg.ForeignDataDir(sv.canonical, s.archiveBase); ok {
			p.left = append(p.left, Finding{Section: SectionOrphans, Subject: "server pid " + joinInts(sv.pids), Status: LevelWarning,
				Message: fmt.Sprintf("postgres (pid %s) on %s, in %s, belongs to another Velo home: it archives to %s", joinInts(sv.pids), sv.dataDir, pl.label(), archive),
				Fix:     "run velo doctor with that home's VELO_HOME; pools are best not shared between homes"})
			continue
		}
		where := "in " + pl.label()
		if vol != "" {
			where = "in volume " + vol + " of " + pl.label()
		}
		dir := sv.dataDir
		p.orphan(LevelFailed, RepairStopServer, dir,
			fmt.Sprintf("stop orphan server (pid %s) on %s", joinInts(sv.pids), dir),
			fmt.Sprintf("postgres (pid %s) runs on %s, %s, which no branch owns", joinInts(sv.pids), dir, where), "stops it (fast shutdown)",
			func(ctx context.Context) error {
				return e.Runtime.Stop(ctx, runtime.Spec{DataDir: dir}, 10*time.Second)
			})
		p.actions[len(p.actions)-1].finding.Subject = "server pid " + joinInts(sv.pids)
	}
}

// goneRecords: records whose storage is gone. A branch goes only when the
// pool is evidently the right one, it is not main, and its children go
// first.
func (p *planner) goneRecords() {
	s, e := p.s, p.e
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
			p.left = append(p.left, Finding{Section: SectionOrphans, Subject: "branch " + ref, Status: LevelFailed,
				Message: reason + "; the project's data is lost",
				Fix:     fmt.Sprintf("restore the volume, or delete the project: velo project delete %s --force", b.p.Name)})
			continue
		case children[b.b.ID] > 0:
			p.left = append(p.left, Finding{Section: SectionOrphans, Subject: "branch " + ref, Status: LevelFailed,
				Message: reason + "; its children keep their own data",
				Fix:     fmt.Sprintf("restore the volume, or delete the branch with its children: velo branch delete %s --force", ref)})
			continue
		}
		p.dropped[b.b.ID] = true
		if b.b.ParentID != "" {
			children[b.b.ParentID]--
		}
		id := b.b.ID
		p.orphan(LevelFailed, RepairDropRecord, "branch "+ref, "drop the record of branch "+ref, reason+"; its data is lost", "drops the record",
			func(ctx context.Context) error {
				return e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.DeleteBranch(ctx, id) })
			})
	}
	for _, id := range sortedKeys(s.snapshots) {
		pl := s.poolOf[s.snapProject[id]]
		if _, ok := pl.entries[id]; ok || !pl.usable() {
			continue
		}
		p.droppedSnap[id] = true
		p.orphan(LevelFailed, RepairDropRecord, "snapshot "+id, "drop the record of snapshot "+id,
			fmt.Sprintf("the record of snapshot %s names storage that is gone from %s", id, pl.label()), "drops the record",
			func(ctx context.Context) error { return e.Store.Q().DeleteSnapshot(ctx, id) })
	}
	for _, v := range sortedKeys(s.retired) {
		pl := s.poolOf[s.retired[v]]
		if _, ok := pl.entries[v]; ok || !pl.usable() {
			continue
		}
		p.droppedRetired[v] = true
		p.orphan(LevelFailed, RepairDropRecord, "retired volume "+v, "drop the record of retired volume "+v,
			fmt.Sprintf("the record of retired volume %s names storage that is gone from %s", v, pl.label()), "drops the record",
			func(ctx context.Context) error { return e.Store.Q().DeleteRetiredVolume(ctx, v) })
	}
}

// emptyProjects: a project with no branch left is what a project delete
// killed after it deleted main leaves: its storage goes first (storage),
// then its records.
func (p *planner) emptyProjects() {
	s, e := p.s, p.e
	for _, pr := range s.projects {
		hasBranch := false
		for _, b := range s.branches {
			hasBranch = hasBranch || (b.p.ID == pr.ID && !p.dropped[b.b.ID])
		}
		if hasBranch || !s.poolOf[pr.ID].usable() {
			continue
		}
		id := pr.ID
		p.orphan(LevelFailed, RepairDropRecord, "project "+pr.Name, "drop the record of project "+pr.Name,
			fmt.Sprintf("project %s has no branch left: a project delete did not finish", pr.Name), "finishes the delete",
			func(ctx context.Context) error {
				return e.Store.Tx(ctx, func(tx *state.Tx) error { return tx.DeleteProject(ctx, id) })
			})
	}
}

// interrupted: commands that never finished. What they stopped is started
// again, then their journal entries are closed; one still at work is only
// reported.
func (p *planner) interrupted() {
	s, e := p.s, p.e
	started := map[string]bool{}
	// What the plan mends so far is what the interrupted commands left
	// (and orphans of any other cause: which is which the journal does not
	// say). None of it, and a command's entry is closed with nothing to undo.
	mends := 0
	for _, a := range p.actions {
		if a.do != nil {
			mends++
		}
	}
	for _, o := range s.ops {
		if s.inProgress[o.ID] {
			p.actions = append(p.actions, action{finding: Finding{Section: SectionOperations, Subject: fmt.Sprintf("operation #%d", o.ID), Status: LevelOK,
				Message: fmt.Sprintf("in progress: %q (pid %d, since %s)", o.Command, o.PID, o.StartedAt.Local().Format(time.DateTime))}})
			continue
		}
		p.renamedProjects(o)
		var restarts []string
		for _, st := range o.steps {
			b := s.stoppedBy(st)
			if b == nil || p.dropped[b.b.ID] || started[b.b.ID] || b.statusErr != nil || b.dataGone || b.status.State == runtime.Running || !b.b.WantRunning || !b.b.SuspendedAt.IsZero() {
				continue
			}
			started[b.b.ID] = true
			ref := b.ref()
			restarts = append(restarts, ref)
			pr, br := b.p, b.b
			p.actions = append(p.actions, action{
				RepairAction: RepairAction{Action: RepairStartServer, Subject: ref, Text: "start " + ref + " again",
					Reason: fmt.Sprintf("the interrupted %q stopped it", o.Command)},
				do: func(ctx context.Context) error {
					spec, err := e.spec(ctx, pr, br)
					if err != nil {
						return err
					}
					if err := e.ensureDirs(); err != nil {
						return err
					}
					if err := e.configure(pr, br, spec, nil); err != nil {
						return err
					}
					_, err = e.Runtime.Start(ctx, spec)
					return err
				},
			})
		}
		msg := fmt.Sprintf("interrupted: %q (pid %d, started %s) did not finish; its steps: %s", o.Command, o.PID,
			o.StartedAt.Local().Format(time.DateTime), stepsText(o.steps))
		if len(restarts) > 0 {
			msg += "; it stopped " + strings.Join(restarts, ", ")
		}
		reason := "its leftovers are repaired above"
		if mends == 0 && len(restarts) == 0 {
			reason = "it left nothing to undo"
			msg += "; it left nothing to undo"
		}
		id := o.ID
		p.actions = append(p.actions, action{
			RepairAction: RepairAction{Action: RepairFinishOperation, Subject: fmt.Sprintf("operation #%d", id),
				Text: fmt.Sprintf("close operation #%d (%q)", id, o.Command), Reason: reason},
			finding: Finding{Section: SectionOperations, Subject: fmt.Sprintf("operation #%d", id), Status: LevelFailed, Message: msg,
				Fix: "velo doctor --repair finishes or undoes it (velo doctor --repair --dry-run shows how)"},
			do: func(ctx context.Context) error { return e.Store.FinishOperation(ctx, id) },
		})
	}
}

// renamedProjects finishes what a killed project rename left: the records
// renamed, the CA directory still under the old name.
func (p *planner) renamedProjects(o journalOp) {
	e := p.e
	for _, st := range o.steps {
		if st.kind != stepRenameProject || !st.valid {
			continue
		}
		oldName, newName := st.subj.ID, st.subj.To
		if _, err := e.Store.Q().Project(context.Background(), newName); err != nil {
			continue // the records were not renamed: nothing was
		}
		if _, err := e.Store.Q().Project(context.Background(), oldName); err == nil {
			continue // a project of the old name again: its CA is its own
		}
		if _, err := os.Stat(e.caDir(oldName)); err != nil {
			continue
		}
		p.actions = append(p.actions, action{
			RepairAction: RepairAction{Action: RepairMoveCA, Subject: "project " + newName,
				Text:   fmt.Sprintf("move project %s's certificate authority from %s to %s", newName, e.caDir(oldName), e.caDir(newName)),
				Reason: fmt.Sprintf("the interrupted %q renamed the project but not its CA directory", o.Command)},
			finding: Finding{Section: SectionProjects, Subject: newName, Status: LevelFailed,
				Message: fmt.Sprintf("project %s's certificate authority is still in %s (a project rename was interrupted)", newName, e.caDir(oldName)),
				Fix:     "velo doctor --repair moves it"},
			do: func(ctx context.Context) error { return e.moveCA(oldName, newName) },
		})
	}
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

func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ", ")
}
