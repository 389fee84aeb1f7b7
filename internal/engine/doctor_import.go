package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/velohq/velo/internal/pg"
)

// orphanSource is a repair of what an import left: a slot on its source
// or a password file no project owns.
type orphanSource struct {
	kind, subject, text, reason, fix string
	do                               func(context.Context) error
}

// importLeftovers: what an import killed before its record was written
// left on and of its source: a replication slot there, a password file
// here (see orphanSources).
func (p *planner) importLeftovers() {
	for _, o := range p.e.orphanSources(p.s) {
		p.orphan(LevelFailed, o.kind, o.subject, o.text, o.reason, o.fix, o.do)
	}
}

// passfileName: a following import's source password (.pgpass) or a
// restored project's object store credentials (.aws).
var passfileName = regexp.MustCompile(`^(p[a-z0-9]+)\.(pgpass|aws)$`)

// orphanSources finds, for imports whose project was never recorded (the
// command was killed), the replication slot they journalled making on the
// source (create-slot) and the password files in the
// sources directory that no project owns. The slot is dropped before the
// password file that reaches it goes.
func (e *Engine) orphanSources(s *survey) []orphanSource {
	known := map[string]bool{}
	for _, p := range s.projects {
		known[p.ID] = true
	}
	var out []orphanSource
	for _, o := range s.ops {
		if s.inProgress[o.ID] {
			continue
		}
		for _, st := range o.steps {
			if st.kind != stepCreateSlot || !st.valid {
				continue
			}
			slot, conninfo := st.subj.ID, st.subj.Conninfo
			id := strings.TrimPrefix(slot, "velo_")
			if known[id] {
				continue
			}
			passfile := e.standbyPassfile(id)
			out = append(out, orphanSource{kind: RepairDropSlot, subject: "slot " + slot,
				text:   "drop replication slot " + slot + " on the source",
				reason: fmt.Sprintf("the interrupted %q may have made replication slot %s on its source, which keeps WAL there", o.Command, slot),
				fix:    "drops it",
				do: func(ctx context.Context) error {
					pw, err := pg.ReadPassfilePassword(passfile)
					if err != nil && !os.IsNotExist(err) {
						return err
					}
					src, err := pg.SourceFromConninfo(conninfo, pw)
					if err != nil {
						return err
					}
					ctx, cancel := context.WithTimeout(ctx, time.Minute)
					defer cancel()
					return pg.DropSlot(ctx, src, slot)
				}})
		}
	}
	dir := filepath.Dir(e.standbyPassfile("p"))
	for _, name := range veloNames(dir, passfileName) {
		id := passfileName.FindStringSubmatch(name)[1]
		if known[id] {
			continue
		}
		path := filepath.Join(dir, name)
		out = append(out, orphanSource{kind: RepairRemoveFile, subject: path, text: "remove " + path,
			reason: fmt.Sprintf("%s holds a source's password for project ID %s, which has no record", path, id), fix: "removes it",
			do: func(context.Context) error { return removeIfExists(path) }})
	}
	return out
}
