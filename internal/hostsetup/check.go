package hostsetup

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Check is the outcome of one look at the host: what was found, and when
// it fails, the fix.
type Check struct {
	Subject string // os, filesystems, tools
	Failed  bool
	Message string
	Fix     string
}

// hostTools are the programs the storage drivers and velo setup run; forWhat
// names the driver that cannot work without one ("" for setup's tools).
var hostTools = []struct{ name, pkg, forWhat string }{
	{"zfs", "zfsutils-linux or zfs-fuse", "zfs"},
	{"zpool", "zfsutils-linux or zfs-fuse", "zfs"},
	{"btrfs", "btrfs-progs", "btrfs"},
	{"mkfs.btrfs", "btrfs-progs", ""},
	{"mkfs.xfs", "xfsprogs", ""},
}

// Checks looks at the operating system, the filesystems the kernel knows and
// the storage tools on PATH. What is missing fails only when a driver in
// inUse (driver names of recorded projects) needs it.
func Checks(inUse map[string]bool) []Check {
	var out []Check
	osName := "unknown"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		if n := osRelease(string(b)); n != "" {
			osName = n
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	out = append(out, Check{Subject: "os", Message: osName + kernel})

	fsys := map[string]bool{}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil {
		fsys = kernelFilesystems(string(b))
	}
	c := Check{Subject: "filesystems"}
	var have, lack []string
	for _, name := range []string{"btrfs", "xfs", "fuse"} {
		if fsys[name] {
			have = append(have, name)
		} else {
			lack = append(lack, name)
		}
	}
	c.Message = listOr(have, "none of btrfs, xfs, fuse") + " in the kernel"
	if len(lack) > 0 {
		c.Message += "; not available: " + strings.Join(lack, ", ")
	}
	if inUse["btrfs"] && !fsys["btrfs"] {
		c.Failed, c.Fix = true, "projects use btrfs storage: load the module (modprobe btrfs)"
	}
	out = append(out, c)

	c = Check{Subject: "tools"}
	have, lack = nil, nil
	var fixes []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t.name); err == nil {
			have = append(have, t.name)
			continue
		}
		lack = append(lack, t.name)
		if t.forWhat != "" && inUse[t.forWhat] {
			c.Failed = true
			fixes = append(fixes, fmt.Sprintf("%s storage needs %s: install %s", t.forWhat, t.name, t.pkg))
		}
	}
	c.Message = listOr(have, "none of them") + " found"
	if len(lack) > 0 {
		c.Message += "; not found: " + strings.Join(lack, ", ") + " (needed only for the storage that uses them)"
	}
	c.Fix = strings.Join(fixes, "; ")
	return append(out, c)
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}

// osRelease returns PRETTY_NAME from /etc/os-release.
func osRelease(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// kernelFilesystems reads /proc/filesystems.
func kernelFilesystems(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			out[fields[len(fields)-1]] = true
		}
	}
	return out
}
