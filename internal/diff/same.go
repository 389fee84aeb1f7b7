package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// Unchanged answers a comparison of a branch (new) with the snapshot it
// was made from, whose data directory is oldDir, without a server on the
// snapshot: when every relation file of new's database is, after a
// checkpoint, the same as in the snapshot, nothing can differ, and the
// result is built from new's catalog alone. It returns nil, and has
// changed nothing, when any file differs or it cannot tell: then the
// caller compares as usual.
//
// Why the files decide: the reading transaction's snapshot is taken first
// and the checkpoint after, so everything it sees is in the files. The
// schema is rows of the database's catalogs, the data rows of its tables,
// all in main forks. Every change to a page of a logged relation is
// WAL-logged and stamps the page with its record's LSN, and the branch's
// records (WAL replay at its start included) all come after everything in
// the snapshot; so a page whose bytes differ but whose LSN is the
// snapshot's was written again with hint bits alone (reading rows sets
// them, and a checkpoint writes them without WAL unless checksums are on),
// which changes no row. Unlogged tables change without WAL, and a
// prepared transaction's rows change visibility at COMMIT PREPARED with
// no page written: with either, it goes the usual way. The free space and
// visibility maps, which hold no rows, are not compared. The cluster's
// shared catalogs are not compared either (a branch's own password is a
// change to pg_authid): what a diff shows of them is role names, in grants
// and policies, so a comparison with --grants, or of a database with
// policies, goes the usual way.
func Unchanged(ctx context.Context, oldName, oldDir string, new Side, o Options) (*Result, error) {
	if oldDir == "" || new.DataDir == "" || o.Grants {
		return nil, nil
	}
	if ents, err := os.ReadDir(filepath.Join(new.DataDir, "pg_tblspc")); err != nil || len(ents) > 0 {
		return nil, nil // tablespaces of their own: the usual way
	}
	nc, err := new.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close(context.WithoutCancel(ctx))
	if _, err := nc.Exec(ctx, "SET search_path = ''"); err != nil {
		return nil, err
	}
	if _, err := nc.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, err
	}
	var bs, others int
	var dboid uint32
	if err := nc.QueryRow(ctx, `SELECT current_setting('block_size')::int, oid,
		(SELECT count(*) FROM pg_policy) + (SELECT count(*) FROM pg_class WHERE relpersistence = 'u') + (SELECT count(*) FROM pg_prepared_xacts)
		FROM pg_database WHERE datname = current_database()`).Scan(&bs, &dboid, &others); err != nil {
		return nil, err
	}
	if bs != BlockSize || others > 0 {
		return nil, nil
	}
	if ents, err := os.ReadDir(filepath.Join(oldDir, "pg_twophase")); err != nil || len(ents) > 0 {
		return nil, nil // prepared when the snapshot was taken
	}
	tables, err := resolveTables(ctx, nc, nc, o.Tables)
	if err != nil {
		return nil, err
	}
	all, err := readTables(ctx, nc)
	if err != nil {
		return nil, err
	}
	if err := checkpoint(ctx, new); err != nil {
		return nil, err
	}
	found := map[string]Found{}
	dir := filepath.Join("base", fmt.Sprint(dboid))
	if same, err := sameDir(ctx, filepath.Join(oldDir, dir), filepath.Join(new.DataDir, dir), dir, found); err != nil || !same {
		return nil, err
	}
	r := &Result{Old: oldName, New: new.Name, OriginRead: "files"}
	var names []string
	for n := range all {
		if o.Data && (len(tables) == 0 || contains(tables, n)) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		t := all[n]
		f := found[t.File]
		r.Tables = append(r.Tables, TableDiff{Table: t.Name, Key: t.Key, ByRow: len(t.Key) == 0, Columns: t.Columns,
			Explain: Explain{Method: "same-blocks", Finder: f.Method, Blocks: f.Blocks, FileBytes: f.Read}})
	}
	if o.Data {
		var lo int64
		if err := nc.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&lo); err != nil {
			return nil, err
		}
		if lo > 0 {
			r.Notes = append(r.Notes, plural(lo, "large object")+" in "+new.Name+": large objects are not compared")
		}
	}
	return r, nil
}

// mainFork matches a relation's main fork segment (16384, 16384.1) and the
// relation mapper's file; the other forks and files hold no rows.
var mainFork = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?|pg_filenode\.map)$`)

// laterSegment matches the segments after a relation's first.
var laterSegment = regexp.MustCompile(`\.[0-9]+$`)

// sameDir reports whether the main forks in directories a and b are the
// same files with the same blocks, or blocks that differ with the same
// page LSN (see Unchanged), recording what it found for each relation
// under its path relative to the data directory (rel/NAME). It stops at
// the first difference: the blocks are found with FIEMAP where the files
// share extents, else by their bytes.
func sameDir(ctx context.Context, a, b, rel string, found map[string]Found) (bool, error) {
	an, err := mainForks(a)
	if err != nil {
		return false, err
	}
	bn, err := mainForks(b)
	if err != nil {
		return false, err
	}
	if len(an) != len(bn) {
		return false, nil
	}
	var names []string
	for name, fa := range an {
		if fb, ok := bn[name]; !ok || fb.size != fa.size {
			return false, nil
		}
		if !laterSegment.MatchString(name) { // walked with its first segment
			names = append(names, name)
		}
	}
	// The files written since first (a newer modification time on either
	// side): where a difference is likeliest, so found soonest.
	written := func(n string) bool {
		return !an[n].mtime.Equal(bn[n].mtime) || !an[n+".1"].mtime.Equal(bn[n+".1"].mtime)
	}
	sort.SliceStable(names, func(i, j int) bool { return written(names[i]) && !written(names[j]) })
	for _, name := range names {
		stop := func(o, n []byte) bool { return name == "pg_filenode.map" || !samePageLSN(o, n) }
		f, err := ExtentFinder{Stop: stop}.Changed(ctx, filepath.Join(a, name), filepath.Join(b, name))
		if err != nil || f.Stopped {
			return false, err
		}
		found[rel+"/"+name] = f
	}
	return true, nil
}

// fileInfo is what mainForks reads of a file.
type fileInfo struct {
	size  int64
	mtime time.Time
}

// mainForks lists the main fork files of dir with their sizes and times.
func mainForks(dir string) (map[string]fileInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]fileInfo{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]fileInfo{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !mainFork.MatchString(e.Name()) {
			continue
		}
		st, err := e.Info()
		if err != nil {
			return nil, err
		}
		out[e.Name()] = fileInfo{st.Size(), st.ModTime()}
	}
	return out, nil
}

// samePageLSN reports whether two versions of a block have the same page
// LSN, not zero: written again since with no WAL-logged change (see
// Unchanged). A block one side lacks, or holds in part, is a change.
func samePageLSN(o, n []byte) bool {
	if len(o) != BlockSize || len(n) != BlockSize {
		return false
	}
	return bytes.Equal(o[:8], n[:8]) && !bytes.Equal(o[:8], make([]byte, 8))
}
