package native

import (
	"testing"

	"github.com/velohq/velo/internal/procfs"
)

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
		dir, ok := postmasterDataDir(procfs.ParseCmdline([]byte(c.cmdline)))
		if dir != c.dir || ok != c.ok {
			t.Errorf("postmasterDataDir(%q) = %q, %v; want %q, %v", c.cmdline, dir, ok, c.dir, c.ok)
		}
	}
}
