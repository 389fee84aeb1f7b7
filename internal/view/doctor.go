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

func (Doctor) JSONDocument() {}
func (Repair) JSONDocument() {}
