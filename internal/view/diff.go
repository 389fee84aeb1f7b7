package view

import "github.com/velohq/velo/internal/diff"

// Diff is velo diff --json.
type Diff struct {
	Old    string         `json:"old"` // PROJECT/BRANCH, or PROJECT/BRANCH@SNAPSHOT for an origin
	New    string         `json:"new"` // PROJECT/BRANCH
	Same   bool           `json:"same"`
	Schema []SchemaChange `json:"schema"`
	// Sketch is SQL taking the old schema to the new: a sketch to review,
	// not a migration to run.
	Sketch []string    `json:"sketch"`
	Tables []TableDiff `json:"tables"`
	Notes  []string    `json:"notes,omitempty"`
	// OriginRead is how the origin snapshot was read: "server" (a server
	// started on a copy of it) or "files" (the branch's files are the
	// snapshot's, so nothing differs); absent for two branches.
	OriginRead string `json:"origin_read,omitempty"`
}

// SchemaChange is one object added, dropped or changed.
type SchemaChange struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Change string `json:"change"` // added, dropped, changed
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
}

// TableDiff is the rows of one table that differ.
type TableDiff struct {
	Table       string      `json:"table"` // SCHEMA.TABLE
	Key         []string    `json:"key"`   // primary key columns; empty: compared as whole rows
	WholeRows   bool        `json:"whole_rows"`
	Columns     []string    `json:"columns"` // compared: those both sides have
	RowsAdded   int64       `json:"rows_added"`
	RowsDeleted int64       `json:"rows_deleted"`
	RowsChanged int64       `json:"rows_changed"`
	Samples     []RowSample `json:"samples,omitempty"`
	Method      string      `json:"method"` // same-blocks, blocks, whole
	Finder      string      `json:"finder"` // bytes, fiemap, zfs-send, none
	Blocks      int64       `json:"blocks"`
	Candidates  int64       `json:"candidate_blocks"`
	FileBytes   int64       `json:"file_read_bytes"`
	RowsRead    int64       `json:"rows_read"`
}

// RowSample is one differing row's values as text (null: SQL NULL); old is
// absent for an added row, new for a deleted one.
type RowSample struct {
	Old []*string `json:"old,omitempty"`
	New []*string `json:"new,omitempty"`
}

// JSONDocument marks Diff as a document.
func (Diff) JSONDocument() {}

// NewDiff builds velo diff's document.
func NewDiff(r *diff.Result) Diff {
	d := Diff{Old: r.Old, New: r.New, Same: r.Empty(), Schema: []SchemaChange{}, Sketch: r.Sketch, Tables: []TableDiff{}, Notes: r.Notes, OriginRead: r.OriginRead}
	if d.Sketch == nil {
		d.Sketch = []string{}
	}
	for _, c := range r.Schema {
		d.Schema = append(d.Schema, SchemaChange{Kind: c.Kind, Name: c.Name, Change: c.Change, Old: c.Old, New: c.New})
	}
	for _, t := range r.Tables {
		td := TableDiff{Table: t.Table, Key: t.Key, WholeRows: t.ByRow, Columns: t.Columns, RowsAdded: t.Added, RowsDeleted: t.Deleted, RowsChanged: t.Changed,
			Method: t.Explain.Method, Finder: t.Explain.Finder, Blocks: t.Explain.Blocks, Candidates: t.Explain.Candidates, FileBytes: t.Explain.FileBytes, RowsRead: t.Explain.RowsRead}
		if td.Key == nil {
			td.Key = []string{}
		}
		if td.Columns == nil {
			td.Columns = []string{}
		}
		for _, s := range t.Samples {
			td.Samples = append(td.Samples, RowSample{Old: s.Old, New: s.New})
		}
		d.Tables = append(d.Tables, td)
	}
	return d
}
