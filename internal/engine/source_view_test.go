package engine

import "testing"

func TestLagText(t *testing.T) {
	b := func(n int64) *int64 { return &n }
	f := func(x float64) *float64 { return &x }
	for _, c := range []struct {
		name string
		in   SourceInfo
		want string
	}{
		{"caught up", SourceInfo{State: "streaming", LagBytes: b(0), LagSeconds: f(0)}, ", lag 0 B / 0.0 s"},
		{"behind", SourceInfo{State: "catching up", LagBytes: b(3 << 20), LagSeconds: f(4.25)}, ", lag 3.00 MiB / 4.2 s"},
		// Behind with no commit replayed since main started: the age is
		// unknown, and must not read as 0 s.
		{"age unknown", SourceInfo{State: "catching up", LagBytes: b(3 << 20)}, ", lag 3.00 MiB / ? s (no commit replayed since main started)"},
		{"disconnected", SourceInfo{State: "disconnected", LagBytes: b(5)}, ""},
		{"not measured", SourceInfo{State: "stopped"}, ""},
	} {
		if got := c.in.LagText(); got != c.want {
			t.Errorf("%s: LagText() = %q, want %q", c.name, got, c.want)
		}
	}
}
