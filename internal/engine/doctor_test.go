package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/velohq/velo/internal/state"
	"github.com/velohq/velo/internal/storage"
)

func vol(id, origin string) storage.Entry {
	return storage.Entry{ID: id, Kind: storage.KindVolume, Origin: origin}
}

func snap(id, volume string) storage.Entry {
	return storage.Entry{ID: id, Kind: storage.KindSnapshot, Origin: volume}
}

func TestPlanDestroy(t *testing.T) {
	set := func(ids ...string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	cases := []struct {
		name  string
		facts storageFacts
		want  string // the destroy order
		kept  string
	}{
		{
			name: "healthy: main, its snapshot, dev cloned from it",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("s1", "vmain"), vol("vdev", "s1")},
				Branches:   set("vmain", "vdev"),
				LiveBranch: set("bmain", "bdev"),
				Snapshots:  map[string]state.Snapshot{"s1": {ID: "s1", BranchID: "bmain", VolumeID: "vmain"}},
			},
			want: "[]", kept: "[]",
		},
		{
			name: "orphans go leaves first: clone, then snapshot, then volume",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vo", ""), snap("so", "vo"), vol("vc", "so"), vol("vmain", "")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
			},
			want: "[{vc volume} {so snapshot} {vo volume}]", kept: "[]",
		},
		{
			name: "interrupted create: unrecorded snapshot of main and its clone",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("snew", "vmain"), vol("vnew", "snew")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
			},
			want: "[{vnew volume} {snew snapshot}]", kept: "[]",
		},
		{
			name: "interrupted delete: retired volume, then the origin snapshot gc would destroy",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("s0", "vmain"), snap("s1", "vmain"), vol("vdev", "s1")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
				Retired:    set("vdev"),
				Snapshots: map[string]state.Snapshot{
					"s0": {ID: "s0", BranchID: "bmain", VolumeID: "vmain", CreatedAt: time.Unix(100, 0)},
					"s1": {ID: "s1", BranchID: "bmain", VolumeID: "vmain", CreatedAt: time.Unix(200, 0)},
				},
			},
			want: "[{vdev volume} {s1 snapshot}]", kept: "[]",
		},
		{
			name: "the oldest snapshot of a live volume stays: main's point-in-time window starts there",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("s1", "vmain"), vol("vdev", "s1")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
				Retired:    set("vdev"),
				Snapshots:  map[string]state.Snapshot{"s1": {ID: "s1", BranchID: "bmain", VolumeID: "vmain"}},
			},
			want: "[{vdev volume}]", kept: "[]",
		},
		{
			name: "a user's snapshot of a live branch stays; one of a deleted branch goes",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("suser", "vmain"), snap("sold", "vmain")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
				Snapshots: map[string]state.Snapshot{
					"suser": {ID: "suser", BranchID: "bmain", User: true},
					"sold":  {ID: "sold", BranchID: "", User: true},
				},
			},
			want: "[{sold snapshot}]", kept: "[]",
		},
		{
			name: "a retired volume whose snapshot a branch was cloned from stays",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vold", ""), snap("s1", "vold"), vol("vkid", "s1")},
				Branches:   set("vkid"),
				LiveBranch: set("bkid"),
				Retired:    set("vold"),
				Snapshots:  map[string]state.Snapshot{"s1": {ID: "s1"}},
			},
			want: "[]", kept: "[]",
		},
		{
			name: "an unrecorded snapshot a branch was cloned from is kept",
			facts: storageFacts{
				Entries:    []storage.Entry{vol("vmain", ""), snap("sx", "vmain"), vol("vdev", "sx")},
				Branches:   set("vmain", "vdev"),
				LiveBranch: set("bmain", "bdev"),
			},
			want: "[]", kept: "[{sx snapshot vmain}]",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.facts.Branches == nil {
				c.facts.Branches = map[string]bool{}
			}
			steps, kept := planDestroy(c.facts)
			if got := fmt.Sprint(steps); got != c.want {
				t.Errorf("destroy order = %s, want %s", got, c.want)
			}
			if got := fmt.Sprint(kept); got != c.kept {
				t.Errorf("kept = %s, want %s", got, c.kept)
			}
		})
	}
}

func TestIsUnder(t *testing.T) {
	cases := []struct {
		path, root string
		want       bool
	}{
		{"/pool/velo/vol/v1/pgdata", "/pool/velo", true},
		{"/pool/velo", "/pool/velo", true},
		{"/pool/velocity/x", "/pool/velo", false},
		{"/pool", "/pool/velo", false},
		{"/pool/velo/../other", "/pool/velo", false},
	}
	for _, c := range cases {
		if got := isUnder(c.path, c.root); got != c.want {
			t.Errorf("isUnder(%s, %s) = %v", c.path, c.root, got)
		}
	}
}

func TestVeloNames(t *testing.T) {
	for name, want := range map[string]bool{"v0123abcd": true, "v0000000orphan": true, "s0123": false, "V1": false, "v1/x": false, "lost+found": false} {
		if got := volumeDirName.MatchString(name); got != want {
			t.Errorf("volumeDirName(%q) = %v", name, got)
		}
	}
	for name, want := range map[string]bool{"b0123abcd.log": true, "b0123abcd": false, "velo.log": false} {
		if got := logFileName.MatchString(name); got != want {
			t.Errorf("logFileName(%q) = %v", name, got)
		}
	}
}

func TestForeignEntriesAreNeverTouched(t *testing.T) {
	f := storageFacts{
		Entries: []storage.Entry{
			vol("vmain", ""),
			vol("vother", ""), snap("sother", "vother"), vol("vokid", "sother"), // another home's branch and its child
			snap("sx", "vmain"), vol("vforeignclone", "sx"), // a foreign clone of an unnamed snapshot
			vol("vorphan", ""),
		},
		Branches:   map[string]bool{"vmain": true},
		LiveBranch: map[string]bool{"bmain": true},
	}
	f.Foreign = foreignClosure(f, map[string]string{"vother": "/home/other/wal/vother", "vforeignclone": "/home/other/wal/vforeignclone"})
	for _, id := range []string{"vother", "sother", "vokid", "vforeignclone", "sx"} {
		if !f.Foreign[id] {
			t.Errorf("%s is not foreign: %v", id, f.Foreign)
		}
	}
	if f.Foreign["vmain"] || f.Foreign["vorphan"] {
		t.Errorf("foreignness spread too far: %v", f.Foreign)
	}
	steps, kept := planDestroy(f)
	if got := fmt.Sprint(steps); got != "[{vorphan volume}]" {
		t.Errorf("destroy = %s, want only the orphan", got)
	}
	if len(kept) != 5 {
		t.Errorf("kept = %v, want the 5 foreign entries", kept)
	}
}
