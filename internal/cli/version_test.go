package cli

import (
	goruntime "runtime"
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		bi                        *debug.BuildInfo
		version, commit, modified string
		want                      string
	}{
		{stamped, "dev", "", "", "velo v1.2.3, commit abc (modified)"},
		{stamped, "0.3.0", "zzz", "false", "velo 0.3.0, commit abc (modified)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "def", "false", "velo dev, commit def"},
		{nil, "dev", "", "", "velo dev"},
	} {
		got := versionLine(versionOf(c.bi, c.version, c.commit, c.modified))
		if want := c.want + ", " + goruntime.Version() + "\n"; got != want {
			t.Errorf("%+v: %q, want %q", c, got, want)
		}
	}
}
