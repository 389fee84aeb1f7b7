package btrfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
)

// Probe implements dirtree.Prober. Root deletes any subvolume; any other
// user only where the filesystem is mounted with user_subvol_rm_allowed,
// and without it branches would be made that nothing but root can delete
// (their records gone, their subvolumes left in trash/). So it makes a
// subvolume holding a file and deletes it the way Remove does; when that
// is refused it empties the subvolume and removes it with rmdir(2), which
// Linux (4.18 and later) allows the owner of an empty subvolume, so the
// probe leaves nothing either way.
func (ops) Probe(ctx context.Context, dir string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := run(ctx, "subvolume", "create", dir); err != nil {
		return err
	}
	file := filepath.Join(dir, "probe")
	if err := os.WriteFile(file, []byte("velo\n"), 0o600); err != nil {
		_ = os.Remove(dir)
		return err
	}
	derr := deleteSubvolumes(ctx, dir)
	if derr == nil {
		return nil
	}
	_ = os.Remove(file)
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("probe subvolume %s could not be removed (%v) after: %w", dir, err, derr)
	}
	if strings.Contains(derr.Error(), "Operation not permitted") {
		_, mnt, err := mountOptions(dir)
		if err != nil {
			mnt = "MOUNTPOINT"
		}
		return noUserDelete(mnt)
	}
	return derr
}

// Check implements dirtree.Prober from the mount's options alone.
func (ops) Check(root string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	opts, mnt, err := mountOptions(root)
	if err != nil {
		return nil // cannot tell: nothing to report
	}
	for _, o := range strings.Split(opts, ",") {
		if o == "user_subvol_rm_allowed" {
			return nil
		}
	}
	return noUserDelete(mnt)
}

func noUserDelete(mnt string) error {
	return &storage.FixError{Kind: errdefs.ErrUnsupported,
		Problem: fmt.Sprintf("the btrfs filesystem at %s is mounted without user_subvol_rm_allowed, so velo (uid %d) could make branches there but not delete them", mnt, os.Geteuid()),
		Fix:     fmt.Sprintf("remount it with sudo mount -o remount,user_subvol_rm_allowed %s (and add the option to its line in /etc/fstab), or run velo as root", mnt)}
}

// mountOptions returns the super block options and the mount point of
// the mount holding path (the longest mount point that is a prefix of
// its nearest existing parent), from /proc/self/mountinfo.
func mountOptions(path string) (opts, mountPoint string, err error) {
	p := path
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
			break
		}
		if p == filepath.Dir(p) {
			return "", "", fmt.Errorf("no existing parent of %s", path)
		}
		p = filepath.Dir(p)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+3 >= len(fields) {
			continue
		}
		mp := unescapeMount(fields[4])
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(mountPoint) {
			mountPoint, opts = mp, fields[sep+3]
		}
	}
	if mountPoint == "" {
		return "", "", fmt.Errorf("no mount holds %s", path)
	}
	return opts, mountPoint, sc.Err()
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
