package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/velohq/velo/internal/state"
)

// The journal: every changing command runs in mutate, which takes the lock
// and opens an entry in state.db's operations table; each step is recorded
// (operation_steps: action, subject) before it is taken, and a failed step
// runs the undos registered so far. An entry left open (velo was killed, or
// an undo failed) is what velo doctor reads back, through the same types,
// to finish or undo.

// stepKind is one kind of journalled step. Its string is what state.db
// holds in operation_steps.action and what VELO_FAULT=after:KIND names, so
// a constant is never renamed: old journals must still read.
type stepKind string

// The step kinds, each with the layout of its subject.
const (
	// Storage made: Driver, Pool, ID (a volume or snapshot).
	stepCreateVolume stepKind = "create-volume"
	stepSnapshot     stepKind = "snapshot"
	stepClone        stepKind = "clone"

	// A data directory acted on: Path.
	stepInitdb     stepKind = "initdb"
	stepConfigure  stepKind = "configure"
	stepBasebackup stepKind = "basebackup"
	// A pushed snapshot's tar downloaded into a data directory (project
	// create --from-archive).
	stepDownload    stepKind = "download"
	stepStartServer stepKind = "start-server"
	stepStopServer  stepKind = "stop-server"
	// A masked branch's clone (masked.go): its mask script and clean-up
	// run, and its WAL from before masking removed.
	stepMask     stepKind = "mask"
	stepScrubWAL stepKind = "scrub-wal"

	// A branch's server started, stopped or restarted: Branch.
	stepServer stepKind = "server"
	// Every branch's server: no subject.
	stepStartAll stepKind = "start-all"
	stepStopAll  stepKind = "stop-all"

	// Records written: Record (project, branch or snapshot) and ID (its
	// name, PROJECT/BRANCH, or snapshot ID).
	stepWriteState stepKind = "write-state"

	// One thing named by ID: a project name, branch, snapshot or volume
	// ID, database, or the source an import's roles came from.
	stepDeleteProject   stepKind = "delete-project"
	stepDeleteBranch    stepKind = "delete-branch"
	stepDestroySnapshot stepKind = "destroy-snapshot"
	stepDestroyVolume   stepKind = "destroy-volume"
	stepDump            stepKind = "dump"
	stepRestore         stepKind = "restore"
	stepRestoreRoles    stepKind = "restore-roles"
	// A snapshot's objects written to its project's bucket (snapshot
	// push): ID. Nothing to undo: a push run again writes the same parts.
	stepUpload stepKind = "upload"

	// A file or directory: Path.
	stepWriteSourcePassfile stepKind = "write-source-passfile"
	stepWALCleanup          stepKind = "wal-cleanup"

	// Renames and swaps: ID becomes To (names, or branch ID to a name, or
	// the old volume ID to the new).
	stepRenameProject stepKind = "rename-project"
	stepMoveCA        stepKind = "move-ca"
	stepRenameBranch  stepKind = "rename-branch"
	stepPromote       stepKind = "promote"
	stepSwapVolume    stepKind = "swap-volume"

	// A replication slot on an import's source. create-slot: ID (the slot)
	// and Conninfo (the source, without its password); drop-slot: Host,
	// Port and ID.
	stepCreateSlot stepKind = "create-slot"
	stepDropSlot   stepKind = "drop-slot"
)

// repairStep is the kind doctor --repair journals before a repair action
// of the given kind (RepairStopServer, ...); its subject is ID.
func repairStep(action string) stepKind { return stepKind(repairPrefix + action) }

const repairPrefix = "repair:"

// layout is how a kind's subject is written as the journal's string.
type layout int

const (
	layoutID      layout = iota // ID
	layoutNone                  // nothing
	layoutStorage               // DRIVER:POOL:ID (the pool may hold ':')
	layoutPath                  // PATH
	layoutBranch                // PROJECT/BRANCH
	layoutRecord                // RECORD ID
	layoutRename                // ID>TO
	layoutSlot                  // ID CONNINFO
	layoutRemote                // HOST:PORT:ID
)

var layouts = map[stepKind]layout{
	stepCreateVolume: layoutStorage, stepSnapshot: layoutStorage, stepClone: layoutStorage,
	stepInitdb: layoutPath, stepConfigure: layoutPath, stepBasebackup: layoutPath, stepDownload: layoutPath, stepStartServer: layoutPath, stepStopServer: layoutPath,
	stepMask: layoutPath, stepScrubWAL: layoutPath,
	stepServer: layoutBranch, stepStartAll: layoutNone, stepStopAll: layoutNone,
	stepWriteState:    layoutRecord,
	stepDeleteProject: layoutID, stepDeleteBranch: layoutID, stepDestroySnapshot: layoutID, stepDestroyVolume: layoutID,
	stepDump: layoutID, stepRestore: layoutID, stepRestoreRoles: layoutID, stepUpload: layoutID,
	stepWriteSourcePassfile: layoutPath, stepWALCleanup: layoutPath,
	stepRenameProject: layoutRename, stepMoveCA: layoutRename, stepRenameBranch: layoutRename, stepPromote: layoutRename, stepSwapVolume: layoutRename,
	stepCreateSlot: layoutSlot, stepDropSlot: layoutRemote,
}

// layout of k: a repair's subject, or a kind this binary does not know (a
// journal written by another version), is read whole as ID.
func (k stepKind) layout() layout {
	if l, ok := layouts[k]; ok {
		return l
	}
	return layoutID
}

// subject is what a step acts on; each kind fills the fields its layout
// names.
type subject struct {
	Driver, Pool string // where storage is made
	ID           string // the volume, snapshot, branch, project, database or slot
	To           string // renames and swaps: the new name or volume ID
	Path         string // a data directory, file or directory
	Branch       string // PROJECT/BRANCH
	Record       string // write-state: project, branch or snapshot
	Conninfo     string // create-slot: the source, without its password
	Host         string // drop-slot: the source
	Port         int
}

// encode writes s as the journal's string for kind k: the one place the
// format is made (decodeSubject the one place it is read).
func (s subject) encode(k stepKind) string {
	switch k.layout() {
	case layoutNone:
		return ""
	case layoutStorage:
		return s.Driver + ":" + s.Pool + ":" + s.ID
	case layoutPath:
		return s.Path
	case layoutBranch:
		return s.Branch
	case layoutRecord:
		return s.Record + " " + s.ID
	case layoutRename:
		return s.ID + ">" + s.To
	case layoutSlot:
		return s.ID + " " + s.Conninfo
	case layoutRemote:
		return s.Host + ":" + strconv.Itoa(s.Port) + ":" + s.ID
	}
	return s.ID
}

// decodeSubject reads the journal's string for kind k; ok is false when it
// does not have the kind's layout (then only ID is set, to the whole).
func decodeSubject(k stepKind, text string) (s subject, ok bool) {
	switch k.layout() {
	case layoutNone:
		return subject{}, text == ""
	case layoutStorage:
		driver, rest, ok1 := strings.Cut(text, ":")
		i := strings.LastIndexByte(rest, ':')
		if ok1 && i > 0 && driver != "" && i < len(rest)-1 {
			return subject{Driver: driver, Pool: rest[:i], ID: rest[i+1:]}, true
		}
	case layoutPath:
		return subject{Path: text}, text != ""
	case layoutBranch:
		p, b, ok1 := strings.Cut(text, "/")
		return subject{Branch: text}, ok1 && p != "" && b != ""
	case layoutRecord:
		if r, id, ok1 := strings.Cut(text, " "); ok1 && r != "" && id != "" {
			return subject{Record: r, ID: id}, true
		}
	case layoutRename:
		if from, to, ok1 := strings.Cut(text, ">"); ok1 && from != "" && to != "" {
			return subject{ID: from, To: to}, true
		}
	case layoutSlot:
		if slot, conninfo, ok1 := strings.Cut(text, " "); ok1 && slot != "" {
			return subject{ID: slot, Conninfo: conninfo}, true
		}
	case layoutRemote:
		hostPort, slot, ok1 := cutLast(text, ':')
		host, port, ok2 := cutLast(hostPort, ':')
		if n, err := strconv.Atoi(port); ok1 && ok2 && err == nil && slot != "" {
			return subject{Host: host, Port: n, ID: slot}, true
		}
	default:
		return subject{ID: text}, true
	}
	return subject{ID: text}, false
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// step is one journalled step read back: its kind and subject decoded, and
// the text as stored (what doctor shows).
type step struct {
	kind  stepKind
	subj  subject
	valid bool // the subject has its kind's layout
	text  string
	at    time.Time
}

// journalOp is an unfinished journal entry read back.
type journalOp struct {
	ID        int64
	Command   string
	PID       int
	StartedAt time.Time
	steps     []step
}

// readJournal reads the entries no command finished, their steps decoded.
func readJournal(ops []state.Operation) []journalOp {
	out := make([]journalOp, 0, len(ops))
	for _, o := range ops {
		jo := journalOp{ID: o.ID, Command: o.Command, PID: o.PID, StartedAt: o.StartedAt}
		for _, st := range o.Steps {
			jo.steps = append(jo.steps, readStep(st))
		}
		out = append(out, jo)
	}
	return out
}

func readStep(st state.Step) step {
	k := stepKind(st.Action)
	s, ok := decodeSubject(k, st.Subject)
	return step{kind: k, subj: s, valid: ok, text: st.Subject, at: st.At}
}

// madeStorage reads where a step made storage: a valid create-volume,
// snapshot or clone.
func (st step) madeStorage() bool { return st.valid && st.kind.layout() == layoutStorage }

// mutate runs fn holding the lock, inside a journalled operation.
func (e *Engine) mutate(ctx context.Context, fn func(op *op) error) error {
	lock, err := state.Acquire(ctx, e.Home, e.Command, e.LockWait, func(h state.Holder) {
		e.Progress.Warn("waiting for another velo (pid %d, %q) to finish...", h.PID, h.Command)
	})
	if err != nil {
		return err
	}
	defer lock.Release()
	id, err := e.Store.BeginOperation(ctx, e.Command)
	if err != nil {
		return err
	}
	o := &op{e: e, id: id}
	err = fn(o)
	undo := undoNothing
	if err != nil {
		undo = o.rollback()
	} else {
		// Every step is taken, the journal entry still open.
		fault("finish")
	}
	// A finished operation, successful or undone, needs no repair. If the
	// undo itself failed, the journal stays open for velo doctor.
	if err == nil || undo != undoFailed {
		if ferr := e.Store.FinishOperation(context.WithoutCancel(ctx), id); ferr != nil && err == nil {
			err = ferr
		}
	}
	// A copy of the records after every change: losing state.db then
	// loses at most the change being made (velo doctor --rebuild-state).
	// A refused or fully undone command changed nothing: no copy.
	if err != nil && undo != undoFailed {
		return err
	}
	if o.flagsOnly && err == nil {
		return nil
	}
	if _, berr := e.Store.Backup(context.WithoutCancel(ctx), state.KeepBackups); berr != nil {
		e.Progress.Note("could not back up the state database: %v", berr)
	}
	return err
}

// op is one journalled command: each step is recorded before it is taken,
// with an undo run if a later step fails.
type op struct {
	e     *Engine
	id    int64
	steps int // steps journalled so far
	// flagsOnly marks a change of a server's running flags alone (velo
	// serve's wake and suspend), which takes no copy of the records: the
	// servers themselves tell a rebuild whether they run, and hundreds of
	// branches woken and suspended would rotate the copies worth keeping
	// out within minutes.
	flagsOnly bool
	undo      []func(context.Context) error
}

// record journals a step of kind k on subj before it is taken.
func (o *op) record(ctx context.Context, k stepKind, subj subject) error {
	if err := o.e.Store.RecordStep(ctx, o.id, string(k), subj.encode(k)); err != nil {
		return err
	}
	o.steps++
	fault("after:"+string(k), fmt.Sprintf("step:%d", o.steps))
	return nil
}

// fault kills velo with SIGKILL when VELO_FAULT names one of points, so
// that tests can make the state a crash there leaves; unset, it does
// nothing. The points: after:KIND, right after journalling a step of that
// kind and before taking it; step:N, right after journalling the
// operation's N-th step (so N = 1, 2, ... reaches every step without
// knowing its name, and step N+1 is "step N done, the next not begun");
// finish, once every step is done and before the journal entry is closed.
func fault(points ...string) {
	f := os.Getenv("VELO_FAULT")
	if f == "" {
		return
	}
	for _, p := range points {
		if f == p {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

// onFail registers an undo for what was just done.
func (o *op) onFail(fn func(context.Context) error) { o.undo = append(o.undo, fn) }

// commit forgets the undos: from here on the change stands.
func (o *op) commit() { o.undo = nil }

// undoOutcome is what a rollback came to.
type undoOutcome int

const (
	undoNothing undoOutcome = iota // no undo was registered: nothing had been done
	undoDone                       // every undo ran
	undoFailed                     // an undo failed: the journal stays open for doctor
)

// rollback runs the registered undos, last first.
func (o *op) rollback() undoOutcome {
	if len(o.undo) == 0 {
		return undoNothing
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := undoDone
	for i := len(o.undo) - 1; i >= 0; i-- {
		if err := o.undo[i](ctx); err != nil {
			out = undoFailed
			// A warning, printed under --json too: the user must run doctor.
			o.e.Progress.Warn("undo failed: %v (run velo doctor)", err)
		}
	}
	if out == undoDone {
		o.e.Progress.Note("undone: %s", plural(len(o.undo), "change", "changes"))
	}
	return out
}
