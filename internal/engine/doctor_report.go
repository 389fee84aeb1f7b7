// The doctor's report: findings, unfinished operations and what a repair
// did, as `velo doctor` prints them (text and JSON).

package engine

import (
	"sort"
	"strings"
	"time"
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
	Section string
	Subject string
	Status  Level
	Message string
	Fix     string
}

// OperationInfo is a journal entry whose command never finished.
type OperationInfo struct {
	ID        int64
	Command   string
	PID       int
	StartedAt time.Time
	Steps     []StepInfo
	// InProgress: its process still runs; it is not interrupted.
	InProgress bool
}

// StepInfo is one journalled step.
type StepInfo struct {
	Action  string
	Subject string
	At      time.Time
}

// DoctorReport is the whole of `velo doctor`.
type DoctorReport struct {
	Findings   []Finding
	Operations []OperationInfo
	Failed     int
	Warnings   int
}

// RepairAction is one thing `velo doctor --repair` does, or would do.
type RepairAction struct {
	Action  string // stop-server, destroy-volume, drop-record...
	Subject string // what it acts on
	Text    string // the action in words, imperative
	Reason  string
	Done    bool
	Error   string
}

// RepairReport is what `velo doctor --repair` did or would do.
type RepairReport struct {
	DryRun  bool
	Actions []RepairAction
	// Left are the problems repair does not mend, each with its fix.
	Left []Finding
}

func sectionRank(s string) int {
	for i, n := range []string{SectionHost, SectionPools, SectionState, SectionProjects, SectionBranches, SectionOrphans, SectionOperations} {
		if n == s {
			return i
		}
	}
	return 99
}

// report gathers the findings into the doctor's report: sorted by section,
// counted, with the unfinished operations the survey found.
func (s *survey) report(findings []Finding) DoctorReport {
	rep := DoctorReport{Findings: findings, Operations: []OperationInfo{}}
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	for _, o := range s.ops {
		info := OperationInfo{ID: o.ID, Command: o.Command, PID: o.PID, StartedAt: o.StartedAt, Steps: []StepInfo{}, InProgress: s.inProgress[o.ID]}
		for _, st := range o.steps {
			info.Steps = append(info.Steps, StepInfo{Action: string(st.kind), Subject: st.text, At: st.at})
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
	return rep
}

func stepsText(steps []step) string {
	if len(steps) == 0 {
		return "none"
	}
	var out []string
	for _, st := range steps {
		out = append(out, string(st.kind)+" "+st.text)
	}
	return strings.Join(out, ", ")
}
