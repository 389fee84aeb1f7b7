// Package hostsetup prepares a host for Velo, idempotently: a loop-backed
// pool when there is no ZFS pool, and a systemd unit that brings the
// branches back at boot. Every step says what it did.
package hostsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
)

// ErrNeedsRoot is returned when a step needs root; its message holds the
// exact command to run.
var ErrNeedsRoot = errors.New("needs root")

// PoolFileOptions describe a loop-backed pool.
type PoolFileOptions struct {
	File  string // the image file, e.g. /var/lib/velo/pool.img
	Size  int64  // bytes
	FS    string // btrfs or xfs
	Mount string // mount point; default File without its extension
	Owner string // user to own the mount point ("" keeps root)
}

// ParseSize reads sizes like 20G, 512M, 1T or plain bytes.
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40} {
		if strings.HasSuffix(s, suffix) || strings.HasSuffix(s, suffix+"B") {
			s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), suffix)
			mult = m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errdefs.Invalid("size %s: give a positive size such as 20G, 512M or 1T (at most 4096P)", ui.Quote(orig))
	}
	return n * mult, nil
}

// checkPath checks a path given on the command line: absolute, and
// printable, since it goes into /etc/fstab lines and messages.
// CheckPath refuses a path flag's value that is not an absolute path of
// printable text.
func CheckPath(flag, p string) error { return checkPath(flag, p) }

func checkPath(flag, p string) error {
	if !filepath.IsAbs(p) {
		return errdefs.Invalid("--%s %s must be an absolute path", flag, ui.Quote(p))
	}
	for _, r := range p {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return errdefs.Invalid("--%s %s holds a character that is not printable: paths must be printable text", flag, ui.Quote(p))
		}
	}
	if len(p) > 4095 {
		return errdefs.Invalid("--%s %s is longer than a path can be (4095 bytes)", flag, ui.Quote(p))
	}
	return nil
}

// mountPoint is o.Mount, or by default the image's path without its extension.
func (o PoolFileOptions) mountPoint() string {
	if o.Mount != "" {
		return o.Mount
	}
	if m := strings.TrimSuffix(o.File, filepath.Ext(o.File)); m != o.File {
		return m
	}
	return o.File + ".mnt"
}

// Validate refuses, before anything is done, options PoolFile cannot
// carry out: a relative or unprintable path, an image path that is a
// directory, a mount point holding files (mounting would hide them), an
// unknown filesystem or a size that is not positive.
func (o PoolFileOptions) Validate() error {
	if o.FS != "btrfs" && o.FS != "xfs" {
		return errdefs.Invalid("--fs %s: choose btrfs or xfs", ui.Quote(o.FS))
	}
	if o.Size <= 0 {
		return errdefs.Invalid("--size must be positive, such as 20G")
	}
	if err := checkPath("pool-file", o.File); err != nil {
		return err
	}
	if o.Mount != "" {
		if err := checkPath("mount", o.Mount); err != nil {
			return err
		}
	}
	if st, err := os.Stat(o.File); err == nil && !st.Mode().IsRegular() {
		return errdefs.Invalid("--pool-file %s is not a regular file; give the path of an image file (made if missing)", ui.Quote(o.File))
	}
	m := o.mountPoint()
	if mounted(m) {
		return nil // set up already; PoolFile says so
	}
	if st, err := os.Stat(m); err == nil {
		if !st.IsDir() {
			return errdefs.Invalid("mount point %s is not a directory; name a new or empty one with --mount", ui.Quote(m))
		}
		if entries, err := os.ReadDir(m); err != nil || len(entries) > 0 {
			return errdefs.Invalid("mount point %s is not empty, and mounting the pool there would hide what it holds; name a new or empty directory with --mount", ui.Quote(m))
		}
	}
	return nil
}

// Validate refuses a unit directory that is relative or unprintable.
func (o UnitOptions) Validate() error {
	if o.Dir == "" {
		return nil
	}
	return checkPath("unit-dir", o.Dir)
}

// PoolFile makes, formats and mounts a loop-backed pool; each part is
// skipped when already done. It returns the mount point and what it did.
func PoolFile(ctx context.Context, o PoolFileOptions, args []string) (string, []string, error) {
	if err := o.Validate(); err != nil {
		return "", nil, err
	}
	o.Mount = o.mountPoint()
	if os.Geteuid() != 0 {
		return "", nil, errdefs.Mark(ErrNeedsRoot, fmt.Errorf("making a loop-mounted pool needs root; run: sudo velo %s", strings.Join(args, " ")))
	}
	var did []string
	if mounted(o.Mount) {
		did = append(did, fmt.Sprintf("%s is already mounted", o.Mount))
		return o.Mount, did, nil
	}
	if _, err := os.Stat(o.File); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(o.File), 0o711); err != nil {
			return "", did, err
		}
		f, err := os.OpenFile(o.File, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", did, err
		}
		err = f.Truncate(o.Size)
		f.Close()
		if err != nil {
			os.Remove(o.File)
			return "", did, err
		}
		mkfs := []string{"-q", "-f"}
		if o.FS == "xfs" {
			mkfs = append(mkfs, "-m", "reflink=1")
		}
		if err := run(ctx, "mkfs."+o.FS, append(mkfs, o.File)...); err != nil {
			os.Remove(o.File)
			return "", did, err
		}
		did = append(did, fmt.Sprintf("made a %s image of %d GB at %s (sparse: it takes only what is written)", o.FS, o.Size>>30, o.File))
	} else if err != nil {
		return "", did, err
	} else {
		did = append(did, fmt.Sprintf("%s exists; using it", o.File))
	}
	if err := os.MkdirAll(o.Mount, 0o755); err != nil {
		return "", did, err
	}
	if err := run(ctx, "mount", "-o", mountOptions(o.FS), o.File, o.Mount); err != nil {
		return "", did, err
	}
	if err := os.Chmod(o.Mount, 0o755); err != nil {
		return "", did, err
	}
	if o.Owner != "" {
		u, err := user.Lookup(o.Owner)
		if err != nil {
			return "", did, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(o.Mount, uid, gid); err != nil {
			return "", did, err
		}
		did = append(did, fmt.Sprintf("gave %s to %s", o.Mount, o.Owner))
	}
	did = append(did, fmt.Sprintf("mounted it at %s", o.Mount))
	did = append(did, fmt.Sprintf("to mount it at every boot, add to /etc/fstab:\n      %s %s %s %s 0 0", o.File, o.Mount, o.FS, mountOptions(o.FS)))
	did = append(did, fmt.Sprintf("use it with: velo project create NAME --pool %s", o.Mount))
	return o.Mount, did, nil
}

func mountOptions(fs string) string {
	if fs == "btrfs" {
		// Lets an ordinary user delete the subvolumes it made.
		return "loop,user_subvol_rm_allowed"
	}
	return "loop"
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// UnitOptions describe the boot unit.
type UnitOptions struct {
	Dir    string // where unit files go; default /etc/systemd/system
	Velo   string // the velo binary
	Home   string // VELO_HOME
	User   string // the user velo runs as
	Enable bool   // run systemctl enable when systemd runs
}

// Unit writes velo.service, which runs `velo branch start --all` at boot,
// and velo-serve.service, which runs `velo serve` after it (restarted if
// it fails; only velo serve itself is stopped with it, never the
// branches' servers it woke), and enables both when systemd is the init
// system. A unit already as it would be written is left alone.
func Unit(ctx context.Context, o UnitOptions, args []string) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Dir == "" {
		o.Dir = "/etc/systemd/system"
	}
	var did []string
	for _, u := range units(o) {
		path := filepath.Join(o.Dir, u.name)
		if old, err := os.ReadFile(path); err == nil && string(old) == u.text {
			did = append(did, path+" is already in place")
			continue
		}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil || unix.Access(o.Dir, unix.W_OK) != nil {
			return did, errdefs.Mark(ErrNeedsRoot, fmt.Errorf("writing %s needs root; run: sudo velo %s", path, strings.Join(args, " ")))
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(u.text), 0o644); err != nil {
			return did, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return did, err
		}
		did = append(did, "wrote "+path)
	}
	if err := maybeEnable(ctx, o); err != nil {
		return did, err
	}
	switch {
	case !o.Enable:
	case systemdRuns():
		did = append(did, "enabled velo.service and velo-serve.service (systemctl start velo-serve starts velo serve now)")
	default:
		did = append(did, "systemd is not running here; once it is: systemctl enable --now velo.service velo-serve.service")
	}
	return did, nil
}

// unit is a systemd unit file.
type unit struct{ name, text string }

// UnitNames are the units velo setup --systemd writes.
var UnitNames = []string{"velo.service", "velo-serve.service"}

func units(o UnitOptions) []unit {
	return []unit{{UnitNames[0], fmt.Sprintf(`# Written by velo setup --systemd: brings back, at boot, every Velo
# branch that was running, with its port and password unchanged.
[Unit]
Description=Velo: start the Postgres branches that were running
After=local-fs.target network.target remote-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
User=%s
Environment=VELO_HOME=%s
ExecStart=%s branch start --all

[Install]
WantedBy=multi-user.target
`, o.User, o.Home, o.Velo)}, {UnitNames[1], fmt.Sprintf(`# Written by velo setup --systemd: velo serve, one port for every branch
# (127.0.0.1:6543), woken on connect and suspended when idle, and the HTTP
# API (127.0.0.1:7780). Other addresses: systemctl edit velo-serve.service,
# then a new ExecStart= with --listen and --http. Stopping it leaves the
# branches' servers running (KillMode=process); a new start adopts them.
[Unit]
Description=Velo serve: one port for every branch, and the HTTP API
After=velo.service network.target
Wants=velo.service

[Service]
Type=simple
User=%s
Environment=VELO_HOME=%s
ExecStart=%s serve
KillMode=process
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2s

[Install]
WantedBy=multi-user.target
`, o.User, o.Home, o.Velo)}}
}

func systemdRuns() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

func maybeEnable(ctx context.Context, o UnitOptions) error {
	if !o.Enable || !systemdRuns() {
		return nil
	}
	if err := run(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	return run(ctx, "systemctl", append([]string{"enable"}, UnitNames...)...)
}

// Completion installs the bash completion script as DIR/velo (bash-completion
// reads /etc/bash_completion.d at every shell's start): written under a
// temporary name and renamed, so a shell never reads half of it, and left
// alone when it is already the same. It says what it did.
func Completion(dir string, script []byte, args []string) (string, error) {
	if err := checkPath("completion-dir", dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "velo")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, script) {
		return "bash completion already in place: " + path, nil
	}
	if os.Geteuid() != 0 && !writable(dir) {
		return "", errdefs.Mark(ErrNeedsRoot, fmt.Errorf("installing the bash completion into %s needs root; run: sudo velo %s", dir, strings.Join(args, " ")))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".velo-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(script); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return "installed the bash completion: " + path + " (new shells complete velo)", nil
}

// writable reports whether this user may make files in dir (or, when it
// does not exist yet, in the directory that would hold it).
func writable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			return unix.Access(d, unix.W_OK) == nil
		}
		if d == filepath.Dir(d) {
			return false
		}
	}
}
