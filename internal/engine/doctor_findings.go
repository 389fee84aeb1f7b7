// Findings: what is wrong with the host, the pools, the state database,
// the projects and the branches, each with the command that mends it. What
// a repair mends is reported from its plan (doctor_plan.go).

package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/velohq/velo/internal/hostsetup"
	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/ui"
)

func (e *Engine) hostFindings(s *survey) []Finding {
	var out []Finding
	inUse := map[string]bool{}
	for _, p := range s.projects {
		inUse[p.Driver] = true
	}
	for _, c := range hostsetup.Checks(inUse) {
		f := Finding{Section: SectionHost, Subject: c.Subject, Status: LevelOK, Message: c.Message, Fix: c.Fix}
		if c.Failed {
			f.Status = LevelFailed
		}
		out = append(out, f)
	}

	f := Finding{Section: SectionHost, Subject: "postgres", Status: LevelOK}
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
		// A pool where this user can make what it cannot delete.
		if pr, ok := p.d.(storage.Prober); ok && p.err == nil {
			var fe *storage.FixError
			if err := pr.Check(); errors.As(err, &fe) {
				out = append(out, Finding{Section: SectionPools, Subject: p.label(), Status: LevelFailed, Message: fe.Problem, Fix: fe.Fix})
			} else if err != nil {
				out = append(out, Finding{Section: SectionPools, Subject: p.label(), Status: LevelFailed, Message: err.Error()})
			}
		}
	}
	return out
}

func (s *survey) stateFinding() Finding {
	f := Finding{Section: SectionState, Subject: "state.db", Status: LevelOK, Message: "integrity ok (" + s.statePath + ")"}
	if s.integrityErr != nil {
		f.Status, f.Message = LevelFailed, fmt.Sprintf("%s: %v", s.statePath, s.integrityErr)
		f.Fix = "velo doctor --rebuild-state makes the records again from the newest good backup, the storage and the running servers (the damaged file is kept aside)"
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
