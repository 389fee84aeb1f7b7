package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// poolSize is each pool image's size. The files are sparse: only what is
// written takes disk. zfs-fuse dies when a pool fills, so it is generous.
const poolSize = "24G"

// pool is where one driver's projects live while they are measured.
type pool struct {
	driver string
	name   string // what --pool takes: a ZFS pool name or a path
	mount  string // its mount point
	remove func() error
}

// makePool prepares a pool for driver under work: a loop-mounted btrfs or
// XFS image made by `velo setup --pool-file`, a zfs-fuse pool on a sparse
// file, or a plain directory for copy.
func makePool(ctx context.Context, c config, driver string) (*pool, error) {
	switch driver {
	case "copy":
		dir := filepath.Join(c.work, "copy")
		if err := mkdir(dir); err != nil {
			return nil, err
		}
		return &pool{driver: driver, name: dir, mount: dir, remove: func() error { return os.RemoveAll(dir) }}, nil
	case "btrfs", "reflink":
		fs := map[string]string{"btrfs": "btrfs", "reflink": "xfs"}[driver]
		img := filepath.Join(c.work, driver+".img")
		mnt := filepath.Join(c.work, driver)
		if _, err := exec.LookPath("mkfs." + fs); err != nil {
			return nil, fmt.Errorf("%w: mkfs.%s not found (apt-get install %s)", errMissing, fs, map[string]string{"btrfs": "btrfs-progs", "xfs": "xfsprogs"}[fs])
		}
		if out, err := exec.CommandContext(ctx, c.velo, "setup", "--pool-file", img, "--size", poolSize, "--fs", fs).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("velo setup --pool-file %s: %v\n%s", img, err, out)
		}
		return &pool{driver: driver, name: mnt, mount: mnt, remove: func() error {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				return fmt.Errorf("umount %s: %v: %s", mnt, err, out)
			}
			return errors.Join(os.Remove(img), os.Remove(mnt))
		}}, nil
	case "zfs":
		for _, cmd := range []string{"zfs", "zpool", "zfs-fuse"} {
			if _, err := exec.LookPath(cmd); err != nil {
				return nil, fmt.Errorf("%w: %s not found (apt-get install zfs-fuse)", errMissing, cmd)
			}
		}
		if err := zfsDaemon(ctx); err != nil {
			return nil, err
		}
		img := filepath.Join(c.work, "zfs.img")
		if out, err := exec.CommandContext(ctx, "truncate", "-s", poolSize, img).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("truncate: %v: %s", err, out)
		}
		name := fmt.Sprintf("velobench%06x", rand.Uint32()&0xffffff)
		mnt := filepath.Join(c.work, "zfs")
		if out, err := exec.CommandContext(ctx, "zpool", "create", "-f", "-m", mnt, name, img).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("zpool create: %v: %s", err, out)
		}
		return &pool{driver: driver, name: name, mount: mnt, remove: func() error {
			var err error
			for range 10 {
				var out []byte
				if out, err = exec.Command("zpool", "destroy", "-f", name).CombinedOutput(); err == nil {
					break
				} else {
					err = fmt.Errorf("zpool destroy %s: %v: %s", name, err, out)
				}
				time.Sleep(time.Second)
			}
			return errors.Join(err, os.Remove(img))
		}}, nil
	}
	return nil, fmt.Errorf("unknown driver %s", driver)
}

// used is the pool's used space in bytes, after a sync so that what was
// written is allocated: `zfs get used` on zfs, statfs elsewhere.
func (p *pool) used(ctx context.Context) (int64, error) {
	syscall.Sync()
	if p.driver == "zfs" {
		out, err := exec.CommandContext(ctx, "zfs", "get", "-Hp", "-o", "value", "used", p.name).Output()
		if err != nil {
			return 0, fmt.Errorf("zfs get used %s: %w", p.name, err)
		}
		return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.mount, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", p.mount, err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, nil
}

var errMissing = errors.New("missing")

// zfsDaemon starts zfs-fuse unless one answers.
func zfsDaemon(ctx context.Context) error {
	if exec.CommandContext(ctx, "zpool", "list").Run() == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "zfs-fuse").CombinedOutput(); err != nil {
		return fmt.Errorf("start zfs-fuse: %v: %s", err, strings.TrimSpace(string(out)))
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if exec.CommandContext(ctx, "zpool", "list").Run() == nil {
			return nil
		}
	}
	return fmt.Errorf("zfs-fuse started but zpool list does not answer")
}

// mkdir makes dir that the Postgres user may pass through.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	return os.Chmod(dir, 0o711)
}
