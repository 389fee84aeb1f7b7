package diff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
func Unchanged(ctx context.Context, oldName, oldDir string, new Side, o Options, finder BlockFinder) (*Result, error) {
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
	if same, err := sameDir(ctx, filepath.Join(oldDir, dir), filepath.Join(new.DataDir, dir), dir, finder, found); err != nil || !same {
		return nil, err
	}
	r := &Result{Old: oldName, New: new.Name, OriginRead: "files"}
	var names []string
	for n := range all {
		if len(tables) == 0 || contains(tables, n) {
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
// same files with the same blocks, recording what finder found for each
// relation under its path relative to the data directory (rel/NAME).
func sameDir(ctx context.Context, a, b, rel string, finder BlockFinder, found map[string]Found) (bool, error) {
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
	for name, size := range an {
		if bs, ok := bn[name]; !ok || bs != size {
			return false, nil
		}
	}
	for name := range an {
		if laterSegment.MatchString(name) {
			continue // walked with its first segment
		}
		f, err := finder.Changed(ctx, filepath.Join(a, name), filepath.Join(b, name))
		if err != nil {
			return false, err
		}
		if len(f.Ranges) > 0 {
			if name == "pg_filenode.map" {
				return false, nil
			}
			same, err := sameLSN(filepath.Join(a, name), filepath.Join(b, name), f.Ranges)
			if err != nil || !same {
				return false, err
			}
		}
		found[rel+"/"+name] = f
	}
	return true, nil
}

// mainForks lists the main fork files of dir with their sizes.
func mainForks(dir string) (map[string]int64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !mainFork.MatchString(e.Name()) {
			continue
		}
		st, err := e.Info()
		if err != nil {
			return nil, err
		}
		out[e.Name()] = st.Size()
	}
	return out, nil
}

// sameLSN reports whether every block of ranges has on both sides the same
// page LSN, not zero: written again since with no WAL-logged change (see
// Unchanged).
func sameLSN(oldPath, newPath string, ranges []Range) (bool, error) {
	for _, r := range ranges {
		for b := r.Lo; b < r.Hi; b++ {
			var lsn [2][8]byte
			for i, path := range []string{oldPath, newPath} {
				seg := b / segmentBlocks
				if seg > 0 {
					path = fmt.Sprintf("%s.%d", path, seg)
				}
				f, err := os.Open(path)
				if err != nil {
					return false, err
				}
				_, err = f.ReadAt(lsn[i][:], (b%segmentBlocks)*BlockSize)
				f.Close()
				if err != nil {
					return false, nil // past its end: a block one side lacks
				}
			}
			if lsn[0] != lsn[1] || lsn[0] == [8]byte{} {
				return false, nil
			}
		}
	}
	return true, nil
}
