package procfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Holders describes the processes that use anything under dir: their
// working or root directory, an open file or a mapped one, as fuser -m
// would find them. It is what a "busy" unmount is told with; a process
// that exits while it is read is skipped, and an empty answer means no
// process holds dir (a filesystem daemon may still).
func Holders(dir string) []string {
	dir = filepath.Clean(dir)
	under := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	pids, err := PIDs()
	if err != nil {
		return nil
	}
	var out []string
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		if what := holds(pid, under); what != "" {
			out = append(out, fmt.Sprintf("pid %d (%s) %s", pid, comm(pid), what))
		}
	}
	return out
}

func holds(pid int, under func(string) bool) string {
	base := "/proc/" + strconv.Itoa(pid)
	for _, link := range []string{"cwd", "root", "exe"} {
		if p, err := os.Readlink(base + "/" + link); err == nil && under(p) {
			return "has its " + link + " " + p
		}
	}
	if fds, err := os.ReadDir(base + "/fd"); err == nil {
		for _, fd := range fds {
			if p, err := os.Readlink(base + "/fd/" + fd.Name()); err == nil && under(p) {
				return "has open " + p
			}
		}
	}
	f, err := os.Open(base + "/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && under(strings.Join(fields[5:], " ")) {
			return "has mapped " + strings.Join(fields[5:], " ")
		}
	}
	return ""
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
