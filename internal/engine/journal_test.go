package engine

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/state"
)

// TestJournalSubjectsRoundTrip: every step kind's subject reads back as it
// was written.
func TestJournalSubjectsRoundTrip(t *testing.T) {
	samples := map[layout]subject{
		layoutID:      {ID: "b0123456789ab"},
		layoutNone:    {},
		layoutStorage: {Driver: "copy", Pool: "/mnt/a:b/pool", ID: "v0123456789ab"},
		layoutPath:    {Path: "/mnt/pool/velo/vol/v1/pgdata"},
		layoutBranch:  {Branch: "demo/dev"},
		layoutRecord:  {Record: "branch", ID: "demo/dev"},
		layoutRename:  {ID: "old", To: "new"},
		layoutSlot:    {ID: "velo_p1", Conninfo: "host=db.example port=5432 user=velo dbname=postgres"},
		layoutRemote:  {Host: "::1", Port: 5433, ID: "velo_p1"},
	}
	kinds := []stepKind{repairStep(RepairDestroyVolume), "a-kind-from-another-version"}
	for k := range layouts {
		kinds = append(kinds, k)
	}
	for _, k := range kinds {
		want := samples[k.layout()]
		got, ok := decodeSubject(k, want.encode(k))
		if !ok || got != want {
			t.Errorf("%s: %+v read back as %+v (ok %v)", k, want, got, ok)
		}
	}
}

// TestJournalReadsOldRows: rows as the binary before the typed journal
// wrote them (its strings, built by hand at each call) read as the same
// steps, and a subject not in its kind's layout is kept whole, not guessed.
func TestJournalReadsOldRows(t *testing.T) {
	for _, c := range []struct {
		action, subject string
		want            subject
		valid           bool
	}{
		{"create-volume", "btrfs:/mnt/pool:v1", subject{Driver: "btrfs", Pool: "/mnt/pool", ID: "v1"}, true},
		{"clone", "copy:/a:b/c:v3", subject{Driver: "copy", Pool: "/a:b/c", ID: "v3"}, true},
		{"snapshot", "zfs:tank/velo:s2", subject{Driver: "zfs", Pool: "tank/velo", ID: "s2"}, true},
		{"stop-server", "/mnt/pool/velo/vol/v9/pgdata", subject{Path: "/mnt/pool/velo/vol/v9/pgdata"}, true},
		{"server", "demo/dev", subject{Branch: "demo/dev"}, true},
		{"start-all", "", subject{}, true},
		{"write-state", "branch demo/dev", subject{Record: "branch", ID: "demo/dev"}, true},
		{"write-state", "project demo", subject{Record: "project", ID: "demo"}, true},
		{"swap-volume", "v1>v2", subject{ID: "v1", To: "v2"}, true},
		{"rename-project", "old>new", subject{ID: "old", To: "new"}, true},
		{"create-slot", "velo_p1 host=src port=5432 user=velo", subject{ID: "velo_p1", Conninfo: "host=src port=5432 user=velo"}, true},
		{"drop-slot", "src.example:5432:velo_p1", subject{Host: "src.example", Port: 5432, ID: "velo_p1"}, true},
		{"repair:destroy-volume", "volume v1", subject{ID: "volume v1"}, true},
		{"delete-branch", "b1", subject{ID: "b1"}, true},
		// Not the kind's layout: kept whole as ID, and not acted on.
		{"create-volume", "v1", subject{ID: "v1"}, false},
		{"rename-project", "old", subject{ID: "old"}, false},
		{"drop-slot", "velo_p1", subject{ID: "velo_p1"}, false},
	} {
		st := readStep(state.Step{Action: c.action, Subject: c.subject})
		if st.subj != c.want || st.valid != c.valid || st.text != c.subject || string(st.kind) != c.action {
			t.Errorf("%s %q read as %+v, want %+v (valid %v)", c.action, c.subject, st, c.want, c.valid)
		}
	}
}

// TestDoctorRepairsOldJournalEntry: a home whose state.db holds an entry
// the previous binary left open (velo killed after it journalled making a
// volume in a pool no project has yet, and made it): doctor finds the
// entry and the volume through the journal, and the repair destroys the
// volume and closes the entry.
func TestDoctorRepairsOldJournalEntry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := bareEngine(t, filepath.Join(dir, "home"), &bytes.Buffer{}, true)
	pool := filepath.Join(dir, "pool")
	d, err := e.openDriver(ctx, "copy", pool)
	if err != nil {
		t.Fatal(err)
	}
	const vol = "v0123456789ab"
	id, err := e.Store.BeginOperation(ctx, "velo project create demo --pool "+pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.RecordStep(ctx, id, "create-volume", "copy:"+pool+":"+vol); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}

	rep, err := e.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Operations) != 1 || len(rep.Operations[0].Steps) != 1 ||
		rep.Operations[0].Steps[0].Action != "create-volume" || rep.Operations[0].Steps[0].Subject != "copy:"+pool+":"+vol {
		t.Fatalf("doctor's unfinished operations = %+v, want the old entry as stored", rep.Operations)
	}
	var named bool
	for _, f := range rep.Findings {
		named = named || (f.Section == SectionOrphans && strings.Contains(f.Subject+f.Message, vol))
	}
	if !named {
		t.Fatalf("doctor does not report volume %s the old entry made: %+v", vol, rep.Findings)
	}

	rr, err := e.Repair(ctx, false)
	if err != nil {
		t.Fatalf("repair: %v (%+v)", err, rr)
	}
	var kinds []string
	for _, a := range rr.Actions {
		kinds = append(kinds, a.Action)
		if !a.Done {
			t.Errorf("repair did not %s: %s", a.Text, a.Error)
		}
	}
	if strings.Join(kinds, ",") != RepairDestroyVolume+","+RepairFinishOperation {
		t.Errorf("repair actions = %v, want the volume destroyed, then the entry closed", kinds)
	}
	if es, err := d.List(ctx); err != nil || len(es) != 0 {
		t.Errorf("pool after the repair holds %+v (%v), want nothing", es, err)
	}
	if ops, err := e.Store.UnfinishedOperations(ctx); err != nil || len(ops) != 0 {
		t.Errorf("unfinished operations after the repair = %+v, %v", ops, err)
	}

	// Killed after journalling a step, before taking it: the entry is
	// closed with nothing to undo, not reported as undone.
	if id, err = e.Store.BeginOperation(ctx, "velo project create demo"); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.RecordStep(ctx, id, "write-state", "project demo"); err != nil {
		t.Fatal(err)
	}
	rr, err = e.Repair(ctx, false)
	if err != nil || len(rr.Actions) != 1 || rr.Actions[0].Action != RepairFinishOperation || !rr.Actions[0].Done ||
		rr.Actions[0].Reason != "it left nothing to undo" {
		t.Errorf("repair of an entry that did nothing = %+v, %v; want it closed with nothing to undo", rr.Actions, err)
	}
}

// TestRollbackTellsNothingFromUndone: a command refused before it did
// anything has nothing to undo and says nothing of it; one whose undos
// ran says it undid them; both close their journal entries.
func TestRollbackTellsNothingFromUndone(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	e := bareEngine(t, filepath.Join(t.TempDir(), "home"), &stderr, false)
	failed := errors.New("step failed")
	var outcomes []undoOutcome
	for _, undos := range []int{0, 2} {
		stderr.Reset()
		ran := 0
		err := e.mutate(ctx, func(op *op) error {
			for range undos {
				op.onFail(func(context.Context) error { ran++; return nil })
			}
			err := op.rollback()
			outcomes = append(outcomes, err)
			op.undo = nil // mutate's own rollback has nothing left
			return failed
		})
		if !errors.Is(err, failed) || ran != undos {
			t.Fatalf("mutate = %v with %d of %d undos run", err, ran, undos)
		}
		if said := strings.Contains(stderr.String(), "undone: "+plural(undos, "change", "changes")); said != (undos > 0) {
			t.Errorf("%d undos: stderr = %q", undos, stderr.String())
		}
	}
	if outcomes[0] != undoNothing || outcomes[1] != undoDone {
		t.Errorf("outcomes = %v, want nothing to undo, then undone", outcomes)
	}
	if ops, err := e.Store.UnfinishedOperations(ctx); err != nil || len(ops) != 0 {
		t.Errorf("unfinished operations = %+v, %v; want none", ops, err)
	}
}
