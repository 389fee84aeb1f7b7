// What belongs to this home but has no record: doctor never stops, removes
// or destroys it. A lost or replaced state.db makes every volume and
// server of the home look orphaned; only what an interrupted command's
// journal says it made is an orphan to undo. The rest is reported, with
// the rebuild of the records as the fix.

package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/velohq/velo/internal/pg"
	"github.com/velohq/velo/internal/state"
)

// rebuildStateFix is the fix doctor names for what lost its record. Doctor runs
// only on a state.db that opens, so the rebuild needs --force.
const rebuildStateFix = "velo doctor --rebuild-state --force makes its record again from the storage and the running servers (the current state.db is kept aside); velo doctor --repair leaves it alone"

// unrecorded is a volume or server of this home with no record.
type unrecorded struct {
	ref      string // P/B, as its identity file names it; "" without one
	branchID string
	volumeID string
}

func (u unrecorded) what() string {
	if u.ref == "" {
		return "a branch of this home (its velo.conf says so; it has no " + identityFile + ")"
	}
	return u.ref + " of this home (its " + identityFile + " says so)"
}

// journalNamed lists the storage IDs that unfinished commands journalled
// making (create-volume, clone and snapshot): those are repair's to undo,
// whatever their identity says.
func journalNamed(ops []journalOp) map[string]bool {
	out := map[string]bool{}
	for _, o := range ops {
		for _, st := range o.steps {
			if st.madeStorage() {
				out[st.subj.ID] = true
			}
		}
	}
	return out
}

// homeVolume tells a volume of this home: its identity file names this
// home, or (a volume from before identity files) its data directory's
// velo.conf archives into this home's archive directory.
func (e *Engine) homeVolume(s *survey, volumePath string) (unrecorded, bool) {
	id, err := readIdentity(volumePath)
	if err == nil {
		if id.Home != e.Home {
			return unrecorded{}, false
		}
		return unrecorded{ref: id.Project.Name + "/" + id.Branch.Name, branchID: id.Branch.ID, volumeID: filepath.Base(volumePath)}, true
	}
	archive, sock := serverPaths(dataDir(volumePath))
	if archive == "" || filepath.Clean(filepath.Dir(archive)) != filepath.Clean(s.archiveBase) {
		return unrecorded{}, false
	}
	return unrecorded{branchID: filepath.Base(sock), volumeID: filepath.Base(volumePath)}, true
}

// homeServer tells a running server of this home: its volume's identity
// file names this home, or (a data directory from before identity files)
// its velo.conf archives into this home's archive directory and listens
// on a socket directory of this home's.
func (e *Engine) homeServer(s *survey, sv server) (unrecorded, bool) {
	vol := filepath.Dir(sv.canonical)
	if id, err := readIdentity(vol); err == nil {
		if id.Home != e.Home {
			return unrecorded{}, false
		}
		u := unrecorded{ref: id.Project.Name + "/" + id.Branch.Name, branchID: id.Branch.ID, volumeID: id.Branch.VolumeID}
		// What the server uses is what its velo.conf says, if it says.
		if a, sock := serverPaths(sv.canonical); a != "" && sock != "" {
			u.volumeID, u.branchID = filepath.Base(a), filepath.Base(sock)
		}
		return u, true
	}
	archive, sock := serverPaths(sv.canonical)
	if archive == "" || sock == "" || filepath.Clean(filepath.Dir(archive)) != filepath.Clean(s.archiveBase) ||
		filepath.Clean(filepath.Dir(sock)) != filepath.Clean(e.runDir()) {
		return unrecorded{}, false
	}
	return unrecorded{branchID: filepath.Base(sock), volumeID: filepath.Base(archive)}, true
}

// serverPaths reads the archive and socket directories from a data
// directory's velo.conf.
func serverPaths(dataDir string) (archive, socketDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, pg.ConfigFile))
	if err != nil {
		return "", ""
	}
	archive = pg.ConfigValue(string(b), "basic_archive.archive_directory")
	socketDir = strings.Trim(pg.ConfigValue(string(b), "unix_socket_directories"), `"`)
	return archive, socketDir
}

// surveyUnrecorded completes the survey: which storage the journal names,
// and the pools that running servers of this home use, and the default
// pool, when no project record points there (after a lost state.db: every
// pool), so that their volumes are seen, reported and kept.
func (e *Engine) surveyUnrecorded(ctx context.Context, s *survey) {
	s.journalNamed = journalNamed(s.ops)
	s.keepVolumes, s.keepBranches = map[string]bool{}, map[string]bool{}
	open := map[string]bool{}
	for _, pl := range s.pools {
		open[pl.driver+":"+pl.name] = true
	}
	var ids []volumeIdentity
	for _, sv := range s.servers {
		if id, err := readIdentity(filepath.Dir(sv.canonical)); err == nil && id.Home == e.Home {
			ids = append(ids, id)
		}
	}
	// Stopped branches too, in the pool a project goes to without --pool.
	ids = append(ids, e.homeIdentitiesIn(e.defaultPool())...)
	for _, id := range ids {
		key := id.Project.Driver + ":" + id.Project.Pool
		if open[key] {
			continue
		}
		open[key] = true
		pl := e.openPool(ctx, state.Project{Name: "(no record)", Driver: id.Project.Driver, Pool: id.Project.Pool})
		if pl.err != nil {
			continue
		}
		pl.journalOnly = true // no project record lives here
		s.pools = append(s.pools, pl)
	}
}

// keepUnrecordedServer is the finding for a running server of this home
// that no record names; what it uses is kept.
func (s *survey) keepUnrecordedServer(sv server, u unrecorded) Finding {
	s.keepVolumes[u.volumeID], s.keepBranches[u.branchID] = true, true
	return Finding{Section: SectionOrphans, Subject: "server pid " + joinInts(sv.pids), Status: LevelFailed,
		Message: fmt.Sprintf("postgres (pid %s) on %s is %s, but no record names it (was state.db lost or replaced?); it is left running, with its archive, socket directory and log",
			joinInts(sv.pids), sv.dataDir, u.what()),
		Fix: rebuildStateFix}
}

// keepUnrecordedEntry is the finding for a volume (or a snapshot or clone
// linked to one) of this home that no record names.
func (s *survey) keepUnrecordedEntry(kind, id, where string, u unrecorded, seed bool) Finding {
	if kind == "volume" {
		s.keepVolumes[id] = true
	}
	if seed {
		s.keepBranches[u.branchID] = true
	}
	msg := fmt.Sprintf("%s %s in %s is %s, but no record names it (was state.db lost or replaced?); it is kept", kind, id, where, u.what())
	if !seed {
		msg = fmt.Sprintf("%s %s in %s belongs with volumes of this home that no record names; it is kept", kind, id, where)
	}
	return Finding{Section: SectionOrphans, Subject: kind + " " + id, Status: LevelFailed, Message: msg, Fix: rebuildStateFix}
}
