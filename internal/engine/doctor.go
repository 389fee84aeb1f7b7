// velo doctor and velo doctor --repair, in four parts, each in a file of
// its own:
//
//   - doctor_survey.go, doctor_survey_pools.go: what exists, read once:
//     records, pools and what they hold, servers (through runtime.Lister),
//     archives, leftovers, and the journal's unfinished operations;
//   - doctor_findings.go: what is wrong with the host, pools, state,
//     projects and branches, each with its fix;
//   - doctor_plan.go and doctor_plan_storage.go: the repair plan, the
//     actions in the order they must run, each reported as a finding too;
//   - doctor_report.go: the report doctor prints.
//
// This file runs them: Doctor reports, Repair executes the plan.

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/velohq/velo/internal/state"
)

// Doctor checks the host, the pools, the state database, and every project
// and branch against the storage and the processes, and finds what no
// record names and what an interrupted command left. It changes nothing.
func (e *Engine) Doctor(ctx context.Context) (DoctorReport, error) {
	// The lock, when free, keeps other commands from changing the picture
	// while it is taken; when another velo holds it, its work in progress
	// is told apart from what a crash left.
	lock, lockErr := state.Acquire(ctx, e.Home, e.Command, 0, nil)
	if lockErr == nil {
		defer lock.Release()
	} else if !errors.Is(lockErr, state.ErrLocked) {
		return DoctorReport{}, lockErr
	}
	s, err := e.survey(ctx, lockErr == nil, 0)
	if err != nil {
		return DoctorReport{}, err
	}
	var findings []Finding
	add := func(f Finding) { findings = append(findings, f) }
	findings = append(findings, e.hostFindings(s)...)
	findings = append(findings, e.containerFindings(ctx, s)...)
	findings = append(findings, s.poolFindings()...)
	add(s.stateFinding())
	findings = append(findings, e.projectFindings(s)...)
	findings = append(findings, e.branchFindings(s)...)
	actions, left := e.plan(ctx, s)
	for _, a := range actions {
		if a.finding.Subject != "" {
			add(a.finding)
		}
	}
	findings = append(findings, left...)
	if !s.locked {
		// Another velo is mid-command: what it is building looks orphaned
		// until it records it. (An operation whose process is gone was
		// interrupted all the same.)
		for i := range findings {
			if f := &findings[i]; f.Section == SectionOrphans && f.Status == LevelFailed {
				f.Status = LevelWarning
			}
		}
		add(Finding{Section: SectionOperations, Subject: "lock", Status: LevelWarning,
			Message: fmt.Sprintf("another velo is running (%v): what it is making may look orphaned", lockErr),
			Fix:     "run velo doctor again when it has finished"})
	}
	return s.report(findings), nil
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
		e.Progress.Warn("waiting for another velo (pid %d, %q) to finish...", h.PID, h.Command)
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
				err := op.record(ctx, repairStep(ra.Action), subject{ID: ra.Subject})
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
		return fmt.Errorf("the state database %s is damaged (%v); repair will not act on damaged records: make them again first with velo doctor --rebuild-state (it starts from the newest good backup and keeps the damaged file aside)", s.statePath, s.integrityErr)
	}
	return nil
}
