package view

import (
	"time"

	"github.com/velohq/velo/internal/engine"
)

// Finding is the outcome of one of doctor's checks.
type Finding struct {
	Section string `json:"section"`
	Subject string `json:"subject"`
	Status  string `json:"status"` // ok, warning, failed
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // the command that mends it
}

// Step is one journalled step of an operation.
type Step struct {
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
}

// Operation is a journal entry whose command never finished.
type Operation struct {
	ID        int64     `json:"id"`
	Command   string    `json:"command"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	Steps     []Step    `json:"steps"`
	// InProgress: its process still runs; it is not interrupted.
	InProgress bool `json:"in_progress"`
}

// Doctor is velo doctor.
type Doctor struct {
	Findings   []Finding   `json:"findings"`
	Operations []Operation `json:"unfinished_operations"`
	Failed     int         `json:"failed"`
	Warnings   int         `json:"warnings"`
}

func newFindings(fs []engine.Finding) []Finding {
	out := []Finding{}
	for _, f := range fs {
		out = append(out, Finding{Section: f.Section, Subject: f.Subject, Status: string(f.Status), Message: f.Message, Fix: f.Fix})
	}
	return out
}

// NewDoctor is the view of rep.
func NewDoctor(rep engine.DoctorReport) Doctor {
	v := Doctor{Findings: newFindings(rep.Findings), Operations: []Operation{}, Failed: rep.Failed, Warnings: rep.Warnings}
	for _, o := range rep.Operations {
		op := Operation{ID: o.ID, Command: o.Command, PID: o.PID, StartedAt: o.StartedAt, Steps: []Step{}, InProgress: o.InProgress}
		for _, s := range o.Steps {
			op.Steps = append(op.Steps, Step{Action: s.Action, Subject: s.Subject, At: s.At})
		}
		v.Operations = append(v.Operations, op)
	}
	return v
}

// RepairAction is one thing doctor --repair does, or would do.
type RepairAction struct {
	Action  string `json:"action"`  // stop-server, destroy-volume, drop-record...
	Subject string `json:"subject"` // what it acts on
	Text    string `json:"text"`    // the action in words, imperative
	Reason  string `json:"reason"`
	Done    bool   `json:"done"`
	Error   string `json:"error,omitempty"`
}

// Repair is velo doctor --repair.
type Repair struct {
	DryRun  bool           `json:"dry_run"`
	Actions []RepairAction `json:"actions"`
	// Left are the problems repair does not mend, each with its fix.
	Left []Finding `json:"left"`
}

// NewRepair is the view of rep.
func NewRepair(rep engine.RepairReport) Repair {
	v := Repair{DryRun: rep.DryRun, Actions: []RepairAction{}, Left: newFindings(rep.Left)}
	for _, a := range rep.Actions {
		v.Actions = append(v.Actions, RepairAction{Action: a.Action, Subject: a.Subject, Text: a.Text, Reason: a.Reason, Done: a.Done, Error: a.Error})
	}
	return v
}

// Rebuild is velo doctor --rebuild-state.
type Rebuild struct {
	DryRun bool `json:"dry_run"`
	// Base is the database the rebuild started from (state.db or a
	// backup); absent when it started from the storage alone.
	Base     string     `json:"base,omitempty"`
	BaseTime *time.Time `json:"base_time,omitempty"`
	// DamagedBackups are the backups skipped because they failed SQLite's check.
	DamagedBackups []string        `json:"damaged_backups"`
	Pools          []string        `json:"pools"` // DRIVER:POOL
	Projects       []string        `json:"projects"`
	Branches       []RebuiltBranch `json:"branches"`
	Snapshots      int             `json:"snapshots"`
	// Changes are what the storage and the servers corrected in the base.
	Changes      []string `json:"changes"`
	NotRecovered []string `json:"not_recovered"`
	// KeptAside is where the state.db that was replaced went.
	KeptAside string `json:"kept_aside,omitempty"`
}

// RebuiltBranch is one branch of the rebuilt records.
type RebuiltBranch struct {
	Name   string `json:"name"`             // PROJECT/BRANCH
	Parent string `json:"parent,omitempty"` // PROJECT/BRANCH
	Port   int    `json:"port"`
	Volume string `json:"volume"`
	State  string `json:"state"` // running, stopped
	From   string `json:"from"`  // records (the base) or storage
}

// NewRebuild is the view of rep.
func NewRebuild(rep engine.RebuildReport) Rebuild {
	v := Rebuild{DryRun: rep.DryRun, Base: rep.Base, DamagedBackups: rep.Damaged, Pools: rep.Pools, Projects: rep.Projects,
		Branches: []RebuiltBranch{}, Snapshots: rep.Snapshots, Changes: rep.Changes, NotRecovered: rep.NotRecovered, KeptAside: rep.KeptAside}
	if !rep.BaseTime.IsZero() {
		t := rep.BaseTime.UTC()
		v.BaseTime = &t
	}
	for _, b := range rep.Branches {
		state := "stopped"
		if b.Running {
			state = "running"
		}
		v.Branches = append(v.Branches, RebuiltBranch{Name: b.Branch, Parent: b.Parent, Port: b.Port, Volume: b.Volume, State: state, From: b.From})
	}
	return v
}

func (Doctor) JSONDocument()  {}
func (Repair) JSONDocument()  {}
func (Rebuild) JSONDocument() {}
