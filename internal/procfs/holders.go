package procfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MountDev is the device number of the filesystem mounted on dir, and
// false when dir is not the root of a mount (its parent is on the same
// device) or cannot be read.
func MountDev(dir string) (uint64, bool) {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(filepath.Clean(dir)), &parent) != nil {
		return 0, false
	}
	return st.Dev, st.Dev != parent.Dev
}

// Holders describes the processes that use the filesystem of device dev:
// their working or root directory, an open file or a mapped one there, as
// fuser -m would find them. Devices, not paths, so that files of a mount
// detached lazily are found too. It is what a "busy" unmount is told
// with; a process that exits while it is read is skipped, and an empty
// answer means no process holds it (a filesystem daemon may still).
func Holders(dev uint64) []string {
	pids, err := PIDs()
	if err != nil {
		return nil
	}
	var out []string
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		if what := holds(pid, dev); what != "" {
			out = append(out, fmt.Sprintf("pid %d (%s) %s", pid, comm(pid), what))
		}
	}
	return out
}

func holds(pid int, dev uint64) string {
	base := "/proc/" + strconv.Itoa(pid)
	on := func(path string) bool {
		var st syscall.Stat_t
		return syscall.Stat(path, &st) == nil && st.Dev == dev
	}
	for _, link := range []string{"cwd", "root", "exe"} {
		if on(base + "/" + link) {
			target, _ := os.Readlink(base + "/" + link)
			return "has its " + link + " " + target
		}
	}
	if fds, err := os.ReadDir(base + "/fd"); err == nil {
		for _, fd := range fds {
			if on(base + "/fd/" + fd.Name()) {
				target, _ := os.Readlink(base + "/fd/" + fd.Name())
				return "has open " + target
			}
		}
	}
	f, err := os.Open(base + "/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && fields[3] == want && fields[4] != "0" {
			return "has mapped " + strings.Join(fields[5:], " ")
		}
	}
	return ""
}

// MountedElsewhere names, one process for each, the mount namespaces
// other than this process's where a filesystem of source (the mount's
// source, as /proc/PID/mountinfo shows it: a zfs-fuse dataset's name) is
// still mounted. Such a copy, made by a program that unshared its mounts
// (ip netns exec, unshare -m) where mounts do not propagate, keeps the
// filesystem alive after it is unmounted here.
func MountedElsewhere(source string) []string {
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil
	}
	pids, err := PIDs()
	if err != nil {
		return nil
	}
	seen := map[string]bool{own: true}
	var out []string
	for _, pid := range pids {
		base := "/proc/" + strconv.Itoa(pid)
		ns, err := os.Readlink(base + "/ns/mnt")
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		b, err := os.ReadFile(base + "/mountinfo")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// ... mount point ... - fstype source options
			_, after, ok := strings.Cut(line, " - ")
			if f := strings.Fields(after); ok && len(f) >= 2 && f[1] == source {
				out = append(out, fmt.Sprintf("pid %d (%s)", pid, comm(pid)))
				break
			}
		}
	}
	return out
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
