package native

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pidFile is what a postmaster writes to DataDir/postmaster.pid: its PID,
// data directory, start time, port, socket directory, listen address, shared
// memory key and, from Postgres 10, a status word ("starting", "ready",
// "stopping", "standby"). Lines after the first may not be written yet while
// the server starts.
type pidFile struct {
	PID     int
	DataDir string
	Port    int
	Status  string
}

// readPIDFile parses dataDir/postmaster.pid; a missing file is an
// os.ErrNotExist error.
func readPIDFile(dataDir string) (pidFile, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}, err
	}
	return parsePIDFile(data)
}

func parsePIDFile(data []byte) (pidFile, error) {
	lines := strings.Split(string(data), "\n")
	var pf pidFile
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		// A postmaster of an old single-user backend writes -PID; a file
		// being written may be empty. Neither names a server to talk to.
		return pidFile{}, fmt.Errorf("postmaster.pid: bad PID line %q", lines[0])
	}
	pf.PID = pid
	if len(lines) > 1 {
		pf.DataDir = strings.TrimSpace(lines[1])
	}
	if len(lines) > 3 {
		pf.Port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) > 7 {
		pf.Status = strings.TrimSpace(lines[7])
	}
	return pf, nil
}

// procStat is the part of /proc/PID/stat the runtime needs.
type procStat struct {
	State     byte   // 'R', 'S', 'Z'...
	StartTime uint64 // clock ticks after boot
}

// readProcStat reads /proc/PID/stat; a process that does not exist gives an
// os.ErrNotExist error.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

func parseProcStat(data []byte) (procStat, error) {
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("/proc stat: too few fields")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat: starttime %q", f[19])
	}
	return procStat{State: f[0][0], StartTime: start}, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. The kernel fixes
// it at 100 for user space on every Linux architecture Velo runs on.
const clockTicks = 100

var (
	bootOnce sync.Once
	bootTime time.Time
	bootErr  error
)

// readBootTime returns the boot time from /proc/stat (btime). It moves only
// when the wall clock is stepped, so two processes computing a start time
// from it agree.
func readBootTime() (time.Time, error) {
	bootOnce.Do(func() {
		f, err := os.Open("/proc/stat")
		if err != nil {
			bootErr = err
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
				sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					bootErr = fmt.Errorf("/proc/stat btime %q", v)
					return
				}
				bootTime = time.Unix(sec, 0).UTC()
				return
			}
		}
		bootErr = errors.New("/proc/stat has no btime line")
	})
	return bootTime, bootErr
}

// startedAt converts a process start time in ticks after boot to a time.
func startedAt(ticks uint64) (time.Time, error) {
	boot, err := readBootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks)), nil
}

// process is a live process as found in /proc.
type process struct {
	PID  int
	stat procStat
}

// alive reports whether the process still exists, is the same process
// (same start time: the PID was not reused) and is not a zombie.
func (p process) alive() bool {
	st, err := readProcStat(p.PID)
	return err == nil && st.State != 'Z' && st.StartTime == p.stat.StartTime
}

// postgresOn returns the process pid when it is alive, not a zombie, and a
// postgres working on dataDir (its current directory: every Postgres process
// changes into its data directory). dataDir must be canonical (symlinks
// resolved), as the kernel reports the current directory.
func postgresOn(pid int, dataDir string) (process, bool) {
	st, err := readProcStat(pid)
	if err != nil || st.State == 'Z' {
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
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
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
