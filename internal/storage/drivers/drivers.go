// Package drivers picks and builds the storage driver for a pool, as
// DESIGN §2 says: a ZFS pool name selects zfs; an absolute path selects
// what its filesystem supports (btrfs, then reflink, then copy).
package drivers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/btrfs"
	"github.com/velohq/velo/internal/storage/copy"
	"github.com/velohq/velo/internal/storage/reflink"
	"github.com/velohq/velo/internal/storage/zfs"
	"github.com/velohq/velo/internal/ui"
)

var zfsPoolName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,200}$`)

// Names lists the drivers, best first.
var Names = []string{"zfs", "btrfs", "reflink", "copy"}

// Root is where a directory driver keeps its volumes inside a pool path.
func Root(pool string) string { return filepath.Join(pool, "velo") }

// Resolve decides the driver and pool for a new project. pool is a ZFS
// pool name, an absolute path, or "" for the default (the host's only ZFS
// pool, else defaultPath); force names a driver to use regardless.
func Resolve(ctx context.Context, pool, force, defaultPath string) (driver, resolvedPool string, err error) {
	if err := Check(pool, force); err != nil {
		return "", "", err
	}
	if pool == "" {
		if force == "" || force == "zfs" {
			pools := zfsPools(ctx)
			if len(pools) == 1 {
				return "zfs", pools[0], nil
			}
			if force == "zfs" {
				return "", "", errdefs.Invalid("--storage zfs needs a pool and the host has %d ZFS pools (%s); name one with --pool", len(pools), strings.Join(pools, ", "))
			}
		}
		pool = defaultPath
	} else if filepath.IsAbs(pool) {
		// A directory the user names must be there: a typo must not make
		// a new directory on whatever filesystem holds its parent.
		if _, err := os.Stat(pool); errors.Is(err, os.ErrNotExist) {
			return "", "", errdefs.Invalid("--pool %s does not exist; if the data is to go there, make it first (mkdir -p %s), or make a copy-on-write pool there with velo setup --pool-file IMAGE --size 20G --mount %s", ui.Quote(pool), ui.Quote(pool), ui.Quote(pool))
		}
	}
	if !filepath.IsAbs(pool) {
		return "zfs", pool, nil
	}
	pool = filepath.Clean(pool)
	if force == "zfs" {
		return "", "", errdefs.Invalid("--storage zfs needs --pool to name a ZFS pool, not the path %s", pool)
	}
	if force != "" {
		return force, pool, nil
	}
	if err := os.MkdirAll(pool, 0o711); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is shown quoted, once
		}
		return "", "", errdefs.Invalid("pool directory %s: %v", ui.Quote(pool), err)
	}
	if onBtrfs(pool) {
		if _, err := exec.LookPath("btrfs"); err == nil {
			return "btrfs", pool, nil
		}
	}
	if _, err := reflink.New(Root(pool)); err == nil {
		return "reflink", pool, nil
	}
	return "copy", pool, nil
}

// Check refuses, without looking at the host, a --pool that is neither a
// ZFS pool name nor a printable absolute path, and a --storage that names
// no driver or does not go with the pool ("" for either is the default).
func Check(pool, force string) error {
	if force != "" && !valid(force) {
		return errdefs.Invalid("--storage %s: choose one of %s", ui.Quote(force), strings.Join(Names, ", "))
	}
	if pool == "" {
		return nil
	}
	if !filepath.IsAbs(pool) {
		if !zfsPoolName.MatchString(pool) {
			return errdefs.Invalid("--pool %s is neither a ZFS pool name (a letter, then letters, digits, '_', '-', '.', ':') nor an absolute path", ui.Quote(pool))
		}
		if force != "" && force != "zfs" {
			return errdefs.Invalid("--storage %s needs --pool to be an absolute path, not %s", force, ui.Quote(pool))
		}
		return nil
	}
	// A pool path is shown by velo status and written in messages: no
	// control characters, nothing a terminal would act on.
	for _, r := range pool {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return errdefs.Invalid("--pool %s holds a character that is not printable: pool paths must be printable text", ui.Quote(pool))
		}
	}
	if len(pool) > 4000 {
		return errdefs.Invalid("--pool %s is longer than a pool path can be (4000 bytes)", ui.Quote(pool))
	}
	return nil
}

// Pools is Resolve and Open as one value, which cmd/velo gives the engine
// (engine.Pools).
type Pools struct{}

// Resolve is the package's Resolve.
func (Pools) Resolve(ctx context.Context, pool, force, defaultPath string) (string, string, error) {
	return Resolve(ctx, pool, force, defaultPath)
}

// Open is the package's Open.
func (Pools) Open(ctx context.Context, driver, pool string) (storage.Driver, error) {
	return Open(ctx, driver, pool)
}

// Open builds the driver of a project.
func Open(ctx context.Context, driver, pool string) (storage.Driver, error) {
	switch driver {
	case "zfs":
		return zfs.New(ctx, pool)
	case "btrfs":
		return btrfs.New(Root(pool))
	case "reflink":
		return reflink.New(Root(pool))
	case "copy":
		return copy.New(Root(pool))
	}
	return nil, errdefs.Unsupported("unknown storage driver %q", driver)
}

func valid(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

func zfsPools(ctx context.Context) []string {
	if _, err := exec.LookPath("zpool"); err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "zpool", "list", "-H", "-o", "name").Output()
	if err != nil {
		return nil
	}
	var pools []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "no pools") {
			pools = append(pools, l)
		}
	}
	return pools
}

func onBtrfs(path string) bool {
	var st unix.Statfs_t
	for p := path; ; p = filepath.Dir(p) {
		err := unix.Statfs(p, &st)
		if err == nil {
			return uint32(st.Type) == uint32(unix.BTRFS_SUPER_MAGIC)
		}
		if !errors.Is(err, os.ErrNotExist) || p == "/" {
			return false
		}
	}
}
