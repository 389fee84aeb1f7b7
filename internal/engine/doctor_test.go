package engine

import (
	"fmt"
	"reflect"
	"testing"

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
				Entries:    []storage.Entry{vol("vmain", ""), snap("s1", "vmain"), vol("vdev", "s1")},
				Branches:   set("vmain"),
				LiveBranch: set("bmain"),
				Retired:    set("vdev"),
				Snapshots:  map[string]state.Snapshot{"s1": {ID: "s1", BranchID: "bmain", VolumeID: "vmain"}},
			},
			want: "[{vdev volume} {s1 snapshot}]", kept: "[]",
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

func TestPostmasterDataDir(t *testing.T) {
	cases := []struct {
		cmdline string
		dir     string
		ok      bool
	}{
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/pool/velo/vol/v1/pgdata\x00-p\x0020001\x00-k\x00/h/run/b1\x00", "/pool/velo/vol/v1/pgdata", true},
		{"postgres\x00-D/data\x00", "/data", true},
		{"postgres: checkpointer \x00", "", false},            // a child: its title replaced
		{"postgres: 15/main: checkpointer   ", "", false},     // idem, without NULs
		{"/usr/bin/psql\x00-D\x00/x\x00", "", false},          // not postgres
		{"postgres\x00-D\x00relative\x00", "relative", false}, // relative: cannot be placed
		{"/usr/lib/postgresql/15/bin/postgres\x00--single\x00", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		dir, ok := postmasterDataDir([]byte(c.cmdline))
		if dir != c.dir || ok != c.ok {
			t.Errorf("postmasterDataDir(%q) = %q, %v; want %q, %v", c.cmdline, dir, ok, c.dir, c.ok)
		}
	}
}

func TestParseListening(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4E22 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   101        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`
	got := parseListening(table)
	want := map[int]bool{20001: true, 22: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseListening = %v, want %v", got, want)
	}
	v6 := "  sl  local_address                         remote_address                        st\n" +
		"   0: 00000000000000000000000001000000:7531 00000000000000000000000000000000:0000 0A 0\n"
	if got := parseListening(v6); !got[30001] || len(got) != 1 {
		t.Errorf("parseListening(tcp6) = %v, want port 30001", got)
	}
}

func TestHostParsers(t *testing.T) {
	rel := "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
	if got := osRelease(rel); got != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("osRelease = %q", got)
	}
	if got := osRelease("PRETTY_NAME=Plain\n"); got != "Plain" {
		t.Errorf("osRelease unquoted = %q", got)
	}
	if got := osRelease("ID=x\n"); got != "" {
		t.Errorf("osRelease without PRETTY_NAME = %q", got)
	}
	fsys := kernelFilesystems("nodev\tsysfs\n\text4\n\tbtrfs\nnodev\tfuse\n\tfuseblk\n")
	for _, name := range []string{"btrfs", "fuse", "ext4"} {
		if !fsys[name] {
			t.Errorf("kernelFilesystems lacks %s: %v", name, fsys)
		}
	}
	if fsys["xfs"] || fsys["nodev"] {
		t.Errorf("kernelFilesystems has too much: %v", fsys)
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

func TestConfValue(t *testing.T) {
	conf := "port = 20001\nbasic_archive.archive_directory = '/h/wal/v1'\nlisten_addresses = '127.0.0.1'\n" +
		"basic_archive.archive_directory = '/it''s/wal/v2'\n"
	if got := confValue(conf, "basic_archive.archive_directory"); got != "/it's/wal/v2" {
		t.Errorf("confValue = %q", got)
	}
	if got := confValue(conf, "port"); got != "20001" {
		t.Errorf("confValue(port) = %q", got)
	}
	if got := confValue(conf, "archive_mode"); got != "" {
		t.Errorf("confValue(missing) = %q", got)
	}
}
