package testenv

import "testing"

func TestRequired(t *testing.T) {
	cases := []struct {
		env, what string
		want      bool
	}{
		{"", "root", false},
		{"all", "root", true},
		{"root", "root", true},
		{"zfs, root", "root", true},
		{"zfs,btrfs", "root", false},
		{"rooter", "root", false},
	}
	for _, c := range cases {
		t.Setenv(RequireEnv, c.env)
		if got := Required(c.what); got != c.want {
			t.Errorf("VELO_TEST_REQUIRE=%q Required(%q) = %v, want %v", c.env, c.what, got, c.want)
		}
	}
}
