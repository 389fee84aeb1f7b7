// Package procfs reads what Linux's /proc says about processes and
// sockets: a process's state and start time, its command line, the PIDs
// there are, the TCP ports something listens on, and who holds a directory. It is the one place
// Velo parses /proc; the native runtime finds its servers with it and
// doctor tells a live command from a crashed one.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stat is the part of /proc/PID/stat Velo needs.
type Stat struct {
	State      byte   // 'R', 'S', 'Z'...
	PPID       int    // the parent's PID
	StartTicks uint64 // when the process started, in clock ticks after boot
}

// Zombie reports a process that exited and was not reaped.
func (s Stat) Zombie() bool { return s.State == 'Z' }

// ReadStat reads /proc/PID/stat; a process that does not exist gives an
// os.ErrNotExist error.
func ReadStat(pid int) (Stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(data)
}

// ParseStat parses the text of /proc/PID/stat.
func ParseStat(data []byte) (Stat, error) {
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errors.New("/proc stat: too few fields")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("/proc stat: starttime %q", f[19])
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("/proc stat: ppid %q", f[1])
	}
	return Stat{State: f[0][0], PPID: ppid, StartTicks: start}, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. The kernel fixes
// it at 100 for user space on every Linux architecture Velo runs on.
const clockTicks = 100

var (
	bootOnce sync.Once
	bootTime time.Time
	bootErr  error
)

// BootTime returns the boot time from /proc/stat (btime). It moves only
// when the wall clock is stepped, so two processes computing a start time
// from it agree.
func BootTime() (time.Time, error) {
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

// StartTime converts a process start time in ticks after boot to a time.
func StartTime(ticks uint64) (time.Time, error) {
	boot, err := BootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks)), nil
}

// LiveSince reports whether pid is a live process (not a zombie) that
// started no later than at, to the second: the process that wrote at
// (a lock's holder, a journal entry's command), not a later reuse of its
// PID.
func LiveSince(pid int, at time.Time) bool {
	st, err := ReadStat(pid)
	if err != nil || st.Zombie() {
		return false
	}
	start, err := StartTime(st.StartTicks)
	return err == nil && !start.After(at.Add(time.Second))
}

// PIDs lists the processes there are now.
func PIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Cmdline returns a process's arguments as it last set them (programs
// such as Postgres's children rewrite theirs); a zombie's is empty.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return ParseCmdline(b), nil
}

// ParseCmdline splits the NUL-separated text of /proc/PID/cmdline.
func ParseCmdline(b []byte) []string {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// ListeningPorts returns the TCP ports something listens on, IPv4 or IPv6.
func ListeningPorts() map[int]bool {
	out := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if b, err := os.ReadFile(f); err == nil {
			for p := range ParseListening(string(b)) {
				out[p] = true
			}
		}
	}
	return out
}

// ParseListening reads /proc/net/tcp: the local ports of sockets in
// state 0A (LISTEN).
func ParseListening(table string) map[int]bool {
	out := map[int]bool{}
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		_, port, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(port, 16, 16); err == nil {
			out[int(n)] = true
		}
	}
	return out
}
