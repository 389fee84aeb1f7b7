package native

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/velohq/velo/internal/procfs"
	"github.com/velohq/velo/internal/runtime"
)

// process is a live process as found in /proc.
type process struct {
	PID  int
	stat procfs.Stat
}

// alive reports whether the process still exists, is the same process
// (same start time: the PID was not reused) and is not a zombie.
func (p process) alive() bool {
	st, err := procfs.ReadStat(p.PID)
	return err == nil && !st.Zombie() && st.StartTicks == p.stat.StartTicks
}

// postgresOn returns the process pid when it is alive, not a zombie, and a
// postgres working on dataDir (its current directory: every Postgres process
// changes into its data directory). dataDir must be canonical (symlinks
// resolved), as the kernel reports the current directory.
func postgresOn(pid int, dataDir string) (process, bool) {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.Zombie() {
		return process{}, false
	}
	if !isPostgres(pid) {
		return process{}, false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil || cwd != dataDir {
		return process{}, false
	}
	return process{PID: pid, stat: st}, true
}

// isPostgres reports whether the process runs a postgres binary. Postgres
// rewrites its argv for ps, but neither its executable nor its comm changes.
func isPostgres(pid int) bool {
	base := "/proc/" + strconv.Itoa(pid)
	if exe, err := os.Readlink(base + "/exe"); err == nil {
		exe = strings.TrimSuffix(exe, " (deleted)") // upgraded under it
		return filepath.Base(exe) == "postgres"
	}
	comm, err := os.ReadFile(base + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "postgres"
}

// postgresProcessesOn lists every live postgres process working on dataDir:
// the postmaster and its children, or children left behind by a postmaster
// that was killed.
func postgresProcessesOn(dataDir string) ([]process, error) {
	pids, err := procfs.PIDs()
	if err != nil {
		return nil, err
	}
	var out []process
	for _, pid := range pids {
		if p, ok := postgresOn(pid, dataDir); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// pidExists reports whether any process, zombie included, has this PID:
// what kill(pid, 0) would say, and so what Postgres checks before trusting a
// postmaster.pid left behind.
func pidExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// List implements runtime.Lister: every postmaster in the process table,
// found by its command line (postgres -D DIR). Postgres's children rewrite
// their command line, so only postmasters match.
func (r *Runtime) List(ctx context.Context) ([]runtime.Server, error) {
	pids, err := procfs.PIDs()
	if err != nil {
		return nil, err
	}
	type found struct {
		run  runtime.Server
		ppid int
	}
	var all []found
	dirOf := map[int]string{}
	for _, pid := range pids {
		args, err := procfs.Cmdline(pid)
		if err != nil {
			continue // gone meanwhile
		}
		dir, ok := postmasterDataDir(args)
		if !ok {
			continue
		}
		f := found{run: runtime.Server{DataDir: dir, PID: pid}}
		if st, err := procfs.ReadStat(pid); err == nil {
			f.run.StartedAt, _ = procfs.StartTime(st.StartTicks)
			f.ppid = st.PPID
		}
		all = append(all, f)
		dirOf[pid] = dir
	}
	// A backend the postmaster has just forked still shows the
	// postmaster's command line until it sets its own title: a process
	// whose parent serves the same data directory is not a server.
	var out []runtime.Server
	for _, f := range all {
		if dirOf[f.ppid] != f.run.DataDir {
			out = append(out, f.run)
		}
	}
	return out, nil
}

// postmasterDataDir reads a postmaster's arguments: the data directory of a
// postgres started as `postgres -D DIR` (an absolute DIR).
func postmasterDataDir(args []string) (string, bool) {
	if len(args) < 2 || filepath.Base(args[0]) != "postgres" {
		return "", false
	}
	for i := 1; i < len(args); i++ {
		dir := ""
		switch {
		case args[i] == "-D" && i+1 < len(args):
			dir = args[i+1]
		case strings.HasPrefix(args[i], "-D") && len(args[i]) > 2:
			dir = args[i][2:]
		}
		if dir != "" {
			return dir, filepath.IsAbs(dir)
		}
	}
	return "", false
}
