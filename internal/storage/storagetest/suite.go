// Package storagetest is the conformance suite every storage driver passes,
// on a real filesystem of its kind. A driver's test builds its environment
// and calls Suite; adding a check here is one t.Run and every driver runs it.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/storage"
)

// NewDriver returns a fresh driver for one check. Drivers made for one
// Suite run may share a pool, since every check uses its own IDs.
type NewDriver func(t *testing.T) storage.Driver

const mb = 1 << 20

// Suite runs every check against the driver newDriver makes.
func Suite(t *testing.T, newDriver NewDriver) {
	checks := []struct {
		name string
		fn   func(t *testing.T, d storage.Driver, p string)
	}{
		{"CreateVolume", testCreateVolume},
		{"SnapshotContent", testSnapshotContent},
		{"AfterSnapshotNotInClone", testAfterSnapshot},
		{"CloneIsolation", testCloneIsolation},
		{"CloneOfClone", testCloneOfClone},
		{"DependencyRules", testDependencyRules},
		{"DestroyFreesSpace", testDestroyFreesSpace},
		{"CloneSharesBlocks", testCloneSharesBlocks},
		{"BadIDs", testBadIDs},
		{"DuplicateIDs", testDuplicateIDs},
		{"NotFound", testNotFound},
		{"ConcurrentSnapshots", testConcurrentSnapshots},
		{"PoolStats", testPoolStats},
	}
	for i, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver(t)
			// IDs unique per check, so checks may share a pool.
			prefix := fmt.Sprintf("c%02d%04x", i, rand.IntN(1<<16))
			c.fn(t, d, prefix)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

// cleanup destroys what a check made, leaves first, even when it failed.
func cleanup(t *testing.T, d storage.Driver, prefix string) {
	t.Cleanup(func() {
		c := context.Background()
		for round := 0; round < 10; round++ {
			entries, err := d.List(c)
			if err != nil {
				t.Logf("cleanup list: %v", err)
				return
			}
			left := 0
			for _, e := range entries {
				if !strings.HasPrefix(e.ID, prefix) {
					continue
				}
				left++
				if e.Kind == storage.KindVolume {
					_ = d.DestroyVolume(c, e.ID)
				} else {
					_ = d.DestroySnapshot(c, e.ID)
				}
			}
			if left == 0 {
				return
			}
		}
		t.Errorf("cleanup: entries with prefix %s remain", prefix)
	})
}

func mustVolume(t *testing.T, d storage.Driver, id string) string {
	t.Helper()
	p, err := d.CreateVolume(ctx(t), id)
	if err != nil {
		t.Fatalf("CreateVolume(%s): %v", id, err)
	}
	return p
}

func mustSnapshot(t *testing.T, d storage.Driver, vol, snap string) {
	t.Helper()
	if err := d.Snapshot(ctx(t), vol, snap); err != nil {
		t.Fatalf("Snapshot(%s, %s): %v", vol, snap, err)
	}
}

func mustClone(t *testing.T, d storage.Driver, snap, vol string) string {
	t.Helper()
	p, err := d.Clone(ctx(t), snap, vol)
	if err != nil {
		t.Fatalf("Clone(%s, %s): %v", snap, vol, err)
	}
	return p
}

func writeFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeBig writes n bytes of incompressible data and returns their digest.
func writeBig(t *testing.T, path string, n int64) [32]byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{byte(n), 7})
	buf := make([]byte, mb)
	for left := n; left > 0; left -= int64(len(buf)) {
		if left < int64(len(buf)) {
			buf = buf[:left]
		}
		_, _ = r.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func ids(entries []storage.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, string(e.Kind)+":"+e.ID+"<"+e.Origin)
	}
	sort.Strings(out)
	return out
}

func list(t *testing.T, d storage.Driver) []string {
	t.Helper()
	e, err := d.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ids(e)
}

func has(t *testing.T, d storage.Driver, kind storage.Kind, id, origin string) bool {
	return contains(list(t, d), string(kind)+":"+id+"<"+origin)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func testCreateVolume(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	path := mustVolume(t, d, p+"v")
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatalf("volume path %s: %v", path, err)
	}
	for _, e := range entries {
		if e.Name() != "lost+found" {
			t.Errorf("new volume not empty: %s", e.Name())
		}
	}
	writeFile(t, filepath.Join(path, "f"), []byte("hello"), 0o600)
	got, err := d.Path(ctx(t), p+"v")
	if err != nil || got != path {
		t.Fatalf("Path = %q, %v; want %q", got, err, path)
	}
	if !has(t, d, storage.KindVolume, p+"v", "") {
		t.Errorf("List does not show the volume: %v", list(t, d))
	}
}

type fixture struct {
	bigSum [32]byte
	uid    int
}

// populate lays out what a data directory has: a large file, a sparse
// file, many small files, modes, owners, symlinks and an empty directory.
func populate(t *testing.T, root string, bigSize int64) fixture {
	t.Helper()
	fx := fixture{bigSum: writeBig(t, filepath.Join(root, "base", "big"), bigSize), uid: -1}
	sp, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt([]byte("tail"), 64*mb); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	for i := 0; i < 500; i++ {
		writeFile(t, filepath.Join(root, "small", fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o640)
	}
	writeFile(t, filepath.Join(root, "secret"), []byte("s"), 0o600)
	writeFile(t, filepath.Join(root, "script"), []byte("#!/bin/sh\n"), 0o755)
	if err := os.Mkdir(filepath.Join(root, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("secret", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "secret"), old, old); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		fx.uid = 4321
		if err := os.Chown(filepath.Join(root, "secret"), 4321, 4322); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(root, "link"), 4323, 4324); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// verify checks that root holds what populate wrote.
func verify(t *testing.T, root string, fx fixture) {
	t.Helper()
	if digest(t, filepath.Join(root, "base", "big")) != fx.bigSum {
		t.Errorf("big file differs in %s", root)
	}
	sp := readFile(t, filepath.Join(root, "sparse"))
	if len(sp) != 64*mb+4 || string(sp[:4]) != "head" || string(sp[64*mb:]) != "tail" || !bytes.Equal(sp[4:64*mb], make([]byte, 64*mb-4)) {
		t.Errorf("sparse file differs in %s", root)
	}
	for i := 0; i < 500; i++ {
		p := filepath.Join(root, "small", fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%03d", i))
		if got := string(readFile(t, p)); got != fmt.Sprintf("file %d\n", i) {
			t.Fatalf("%s = %q", p, got)
		}
	}
	modes := map[string]fs.FileMode{"secret": 0o600, "script": 0o755, "private": 0o700 | fs.ModeDir, "empty": 0o750 | fs.ModeDir, "small/d00/f000": 0o640}
	for name, want := range modes {
		info, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(root, "empty")); err != nil || len(entries) != 0 {
		t.Errorf("empty dir: %v, %v", entries, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "link")); err != nil || l != "secret" {
		t.Errorf("link = %q, %v", l, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "dangling")); err != nil || l != "/nonexistent/target" {
		t.Errorf("dangling = %q, %v", l, err)
	}
	info, err := os.Stat(filepath.Join(root, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.ModTime().Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("secret mtime = %v", info.ModTime())
	}
	if fx.uid >= 0 {
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("secret owner = %d:%d, want 4321:4322", st.Uid, st.Gid)
		}
		li, err := os.Lstat(filepath.Join(root, "link"))
		if err != nil {
			t.Fatal(err)
		}
		if st := li.Sys().(*syscall.Stat_t); st.Uid != 4323 || st.Gid != 4324 {
			t.Errorf("link owner = %d:%d, want 4323:4324", st.Uid, st.Gid)
		}
	}
}

func testSnapshotContent(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	src := mustVolume(t, d, p+"v")
	fx := populate(t, src, 100*mb)
	mustSnapshot(t, d, p+"v", p+"s")
	clone := mustClone(t, d, p+"s", p+"c")
	verify(t, clone, fx)
	verify(t, src, fx)
	if !has(t, d, storage.KindSnapshot, p+"s", p+"v") || !has(t, d, storage.KindVolume, p+"c", p+"s") {
		t.Errorf("List lacks origins: %v", list(t, d))
	}
}

func testAfterSnapshot(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	src := mustVolume(t, d, p+"v")
	writeFile(t, filepath.Join(src, "before"), []byte("before"), 0o644)
	writeFile(t, filepath.Join(src, "changed"), []byte("old"), 0o644)
	mustSnapshot(t, d, p+"v", p+"s")
	writeFile(t, filepath.Join(src, "after"), []byte("after"), 0o644)
	writeFile(t, filepath.Join(src, "changed"), []byte("new"), 0o644)
	if err := os.Remove(filepath.Join(src, "before")); err != nil {
		t.Fatal(err)
	}
	clone := mustClone(t, d, p+"s", p+"c")
	if string(readFile(t, filepath.Join(clone, "before"))) != "before" {
		t.Error("file removed after the snapshot is missing from the clone")
	}
	if string(readFile(t, filepath.Join(clone, "changed"))) != "old" {
		t.Error("change made after the snapshot reached the clone")
	}
	if _, err := os.Stat(filepath.Join(clone, "after")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file written after the snapshot is in the clone: %v", err)
	}
	// A snapshot read in place holds what the volume held at the snapshot.
	if sr, ok := d.(storage.SnapshotReader); ok {
		dir, err := sr.SnapshotPath(ctx(t), p+"s")
		if err != nil {
			t.Fatalf("SnapshotPath: %v", err)
		}
		if string(readFile(t, filepath.Join(dir, "changed"))) != "old" || string(readFile(t, filepath.Join(dir, "before"))) != "before" {
			t.Errorf("snapshot %s read in place does not hold the volume as it was", dir)
		}
		if _, err := sr.SnapshotPath(ctx(t), p+"v"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("SnapshotPath of a volume: %v, want not found", err)
		}
	}
}

func testCloneIsolation(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	src := mustVolume(t, d, p+"v")
	writeFile(t, filepath.Join(src, "f"), []byte("origin"), 0o644)
	mustSnapshot(t, d, p+"v", p+"s")
	a := mustClone(t, d, p+"s", p+"a")
	b := mustClone(t, d, p+"s", p+"b")
	writeFile(t, filepath.Join(a, "f"), []byte("from a"), 0o644)
	writeFile(t, filepath.Join(a, "only-a"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(src, "only-origin"), []byte("o"), 0o644)
	if got := string(readFile(t, filepath.Join(src, "f"))); got != "origin" {
		t.Errorf("clone write reached origin: %q", got)
	}
	if got := string(readFile(t, filepath.Join(b, "f"))); got != "origin" {
		t.Errorf("clone write reached sibling: %q", got)
	}
	for _, p := range []string{filepath.Join(src, "only-a"), filepath.Join(b, "only-a"), filepath.Join(a, "only-origin"), filepath.Join(b, "only-origin")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s leaked: %v", p, err)
		}
	}
	// A fresh clone of the snapshot still shows the snapshot's content.
	c := mustClone(t, d, p+"s", p+"c")
	if got := string(readFile(t, filepath.Join(c, "f"))); got != "origin" {
		t.Errorf("snapshot changed: %q", got)
	}
}

func testCloneOfClone(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	src := mustVolume(t, d, p+"v")
	writeFile(t, filepath.Join(src, "f"), []byte("1"), 0o644)
	mustSnapshot(t, d, p+"v", p+"s1")
	c1 := mustClone(t, d, p+"s1", p+"c1")
	writeFile(t, filepath.Join(c1, "g"), []byte("2"), 0o644)
	mustSnapshot(t, d, p+"c1", p+"s2")
	c2 := mustClone(t, d, p+"s2", p+"c2")
	if string(readFile(t, filepath.Join(c2, "f"))) != "1" || string(readFile(t, filepath.Join(c2, "g"))) != "2" {
		t.Error("clone of a clone lacks data")
	}
	writeFile(t, filepath.Join(c2, "f"), []byte("3"), 0o644)
	if string(readFile(t, filepath.Join(c1, "f"))) != "1" || string(readFile(t, filepath.Join(src, "f"))) != "1" {
		t.Error("grandchild write reached its ancestors")
	}
}

func testDependencyRules(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	mustVolume(t, d, p+"v")
	mustSnapshot(t, d, p+"v", p+"s")
	mustClone(t, d, p+"s", p+"c")
	before := list(t, d)

	err := d.DestroyVolume(c, p+"v")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(fmt.Sprint(err), p+"s") {
		t.Errorf("destroy volume with a snapshot: %v; want errdefs.ErrFailedPrecondition naming %s", err, p+"s")
	}
	err = d.DestroySnapshot(c, p+"s")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(fmt.Sprint(err), p+"c") {
		t.Errorf("destroy snapshot with a clone: %v; want errdefs.ErrFailedPrecondition naming %s", err, p+"c")
	}
	if after := list(t, d); !equal(before, after) {
		t.Errorf("refusals changed the listing:\nbefore %v\nafter  %v", before, after)
	}
	if err := d.DestroyVolume(c, p+"c"); err != nil {
		t.Fatalf("destroy clone: %v", err)
	}
	if err := d.DestroySnapshot(c, p+"s"); err != nil {
		t.Fatalf("destroy snapshot after its clone: %v", err)
	}
	if err := d.DestroyVolume(c, p+"v"); err != nil {
		t.Fatalf("destroy volume after its snapshot: %v", err)
	}
	for _, e := range list(t, d) {
		if strings.Contains(e, ":"+p) {
			t.Errorf("left after destroy: %s", e)
		}
	}
	if _, err := d.Path(c, p+"v"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Path of destroyed volume: %v; want errdefs.ErrNotFound", err)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// waitFree polls the pool until its free space reaches want: some
// filesystems release space asynchronously after a destroy.
func waitFree(t *testing.T, d storage.Driver, want int64) int64 {
	var free int64
	for i := 0; i < 100; i++ {
		syscall.Sync()
		ps, err := d.Pool(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		free = ps.Free
		if free >= want {
			return free
		}
		time.Sleep(200 * time.Millisecond)
	}
	return free
}

func testDestroyFreesSpace(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	syscall.Sync()
	start, err := d.Pool(c)
	if err != nil {
		t.Fatal(err)
	}
	v := mustVolume(t, d, p+"v")
	writeBig(t, filepath.Join(v, "big"), 100*mb)
	mustSnapshot(t, d, p+"v", p+"s")
	cl := mustClone(t, d, p+"s", p+"c")
	writeBig(t, filepath.Join(cl, "big2"), 50*mb)
	syscall.Sync()
	if u, err := d.Usage(c, p+"c"); err != nil || u.Exclusive < 40*mb {
		t.Errorf("clone with 50 MB of its own: usage %+v, %v", u, err)
	}
	for _, step := range []func() error{
		func() error { return d.DestroyVolume(c, p+"c") },
		func() error { return d.DestroySnapshot(c, p+"s") },
		func() error { return d.DestroyVolume(c, p+"v") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// Within 20 MB of where it started: the 150 MB written are back.
	if free := waitFree(t, d, start.Free-20*mb); free < start.Free-20*mb {
		t.Errorf("free space %d MB after destroying everything, %d MB before", free/mb, start.Free/mb)
	}
}

func testCloneSharesBlocks(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	v := mustVolume(t, d, p+"v")
	writeBig(t, filepath.Join(v, "big"), 100*mb)
	for i := 0; i < 50; i++ {
		writeFile(t, filepath.Join(v, "small", fmt.Sprint(i)), bytes.Repeat([]byte{byte(i)}, 8192), 0o600)
	}
	mustSnapshot(t, d, p+"v", p+"s")
	mustClone(t, d, p+"s", p+"c")
	syscall.Sync()
	u, err := d.Usage(c, p+"c")
	if err != nil {
		t.Fatal(err)
	}
	if u.Referenced < 100*mb {
		t.Errorf("clone references %d bytes, want at least 100 MB", u.Referenced)
	}
	if d.Capabilities().SpaceEfficient {
		if u.Exclusive >= mb {
			t.Errorf("fresh clone of 100 MB uses %d bytes exclusive, want under 1 MB", u.Exclusive)
		}
	} else if u.Exclusive < 100*mb {
		t.Errorf("driver shares nothing, yet clone exclusive is %d bytes", u.Exclusive)
	}
	// A driver that reports all volumes at once agrees with Path and Usage.
	if bd, ok := d.(storage.Bulk); ok {
		for _, usage := range []bool{false, true} {
			all, err := bd.Volumes(c, usage)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{p + "v", p + "c"} {
				got, ok := all[id]
				if !ok {
					t.Errorf("Volumes(usage %v) lacks %s", usage, id)
					continue
				}
				path, err := d.Path(c, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Path != path {
					t.Errorf("Volumes(usage %v)[%s].Path = %q, Path = %q", usage, id, got.Path, path)
				}
				if !usage {
					if got.Usage != nil {
						t.Errorf("Volumes(usage false)[%s] reports usage %+v", id, *got.Usage)
					}
					continue
				}
				one, err := d.Usage(c, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Usage == nil || *got.Usage != one {
					t.Errorf("Volumes(usage true)[%s].Usage = %v, Usage = %+v", id, got.Usage, one)
				}
			}
			if _, ok := all[p+"s"]; ok {
				t.Errorf("Volumes lists snapshot %s", p+"s")
			}
		}
	}
}

var badIDs = []string{"", ".", "..", "a/b", "/abs", "../up", "has space", "Upper", "-lead", "a\x00b", "x@y", strings.Repeat("a", 300)}

func testBadIDs(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	mustVolume(t, d, p+"v")
	mustSnapshot(t, d, p+"v", p+"s")
	before := list(t, d)
	for _, bad := range badIDs {
		calls := map[string]error{}
		_, calls["CreateVolume"] = d.CreateVolume(c, bad)
		calls["Snapshot(bad vol)"] = d.Snapshot(c, bad, p+"x")
		calls["Snapshot(bad snap)"] = d.Snapshot(c, p+"v", bad)
		_, calls["Clone(bad snap)"] = d.Clone(c, bad, p+"y")
		_, calls["Clone(bad vol)"] = d.Clone(c, p+"s", bad)
		calls["DestroyVolume"] = d.DestroyVolume(c, bad)
		calls["DestroySnapshot"] = d.DestroySnapshot(c, bad)
		_, calls["Path"] = d.Path(c, bad)
		_, calls["Usage"] = d.Usage(c, bad)
		for name, err := range calls {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%s(%q) = %v; want errdefs.ErrInvalid", name, bad, err)
			}
		}
	}
	if after := list(t, d); !equal(before, after) {
		t.Errorf("bad IDs changed the listing:\nbefore %v\nafter  %v", before, after)
	}
}

func testDuplicateIDs(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	v := mustVolume(t, d, p+"v")
	writeFile(t, filepath.Join(v, "keep"), []byte("keep"), 0o644)
	mustSnapshot(t, d, p+"v", p+"s")
	mustVolume(t, d, p+"w")
	before := list(t, d)
	if _, err := d.CreateVolume(c, p+"v"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateVolume of an existing volume: %v", err)
	}
	if _, err := d.CreateVolume(c, p+"s"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateVolume named like a snapshot: %v", err)
	}
	if err := d.Snapshot(c, p+"v", p+"s"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Snapshot with an existing snapshot's ID: %v", err)
	}
	if err := d.Snapshot(c, p+"w", p+"s"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Snapshot of another volume with a taken ID: %v", err)
	}
	if err := d.Snapshot(c, p+"v", p+"w"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Snapshot named like a volume: %v", err)
	}
	if _, err := d.Clone(c, p+"s", p+"w"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Clone onto an existing volume: %v", err)
	}
	if after := list(t, d); !equal(before, after) {
		t.Errorf("duplicates changed the listing:\nbefore %v\nafter  %v", before, after)
	}
	if string(readFile(t, filepath.Join(v, "keep"))) != "keep" {
		t.Error("duplicate create touched the existing volume")
	}
}

func testNotFound(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	c := ctx(t)
	mustVolume(t, d, p+"v")
	mustSnapshot(t, d, p+"v", p+"s")
	calls := map[string]error{}
	calls["Snapshot"] = d.Snapshot(c, p+"missing", p+"x")
	_, calls["Clone"] = d.Clone(c, p+"missing", p+"y")
	_, calls["Clone(volume as snapshot)"] = d.Clone(c, p+"v", p+"y")
	calls["Snapshot(snapshot as volume)"] = d.Snapshot(c, p+"s", p+"x")
	calls["DestroyVolume"] = d.DestroyVolume(c, p+"missing")
	calls["DestroyVolume(snapshot)"] = d.DestroyVolume(c, p+"s")
	calls["DestroySnapshot"] = d.DestroySnapshot(c, p+"missing")
	calls["DestroySnapshot(volume)"] = d.DestroySnapshot(c, p+"v")
	_, calls["Path"] = d.Path(c, p+"missing")
	_, calls["Usage"] = d.Usage(c, p+"missing")
	for name, err := range calls {
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s: %v; want errdefs.ErrNotFound", name, err)
		}
	}
	if !has(t, d, storage.KindVolume, p+"v", "") || !has(t, d, storage.KindSnapshot, p+"s", p+"v") {
		t.Errorf("refused calls changed the listing: %v", list(t, d))
	}
}

func testConcurrentSnapshots(t *testing.T, d storage.Driver, p string) {
	cleanup(t, d, p)
	const n = 4
	for i := 0; i < n; i++ {
		v := mustVolume(t, d, fmt.Sprintf("%sv%d", p, i))
		writeFile(t, filepath.Join(v, "id"), []byte(fmt.Sprint(i)), 0o644)
		writeBig(t, filepath.Join(v, "data"), 8*mb)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = d.Snapshot(ctx(t), fmt.Sprintf("%sv%d", p, i), fmt.Sprintf("%ss%d", p, i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent snapshot %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		c := mustClone(t, d, fmt.Sprintf("%ss%d", p, i), fmt.Sprintf("%sc%d", p, i))
		if got := string(readFile(t, filepath.Join(c, "id"))); got != fmt.Sprint(i) {
			t.Errorf("clone of snapshot %d holds volume %s's data", i, got)
		}
	}
}

func testPoolStats(t *testing.T, d storage.Driver, p string) {
	ps, err := d.Pool(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if ps.Size <= 0 || ps.Free <= 0 || ps.Used < 0 || ps.Free > ps.Size || ps.Health == "" || ps.Name == "" {
		t.Errorf("implausible pool figures: %+v", ps)
	}
}
