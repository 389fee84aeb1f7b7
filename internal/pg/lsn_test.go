package pg

import "testing"

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]LSN{"0/3000060": 0x3000060, "16/B374D848": 0x16B374D848, "ffffffff/ffffffff": 1<<64 - 1, " 0/0 ": 0} {
		got, err := ParseLSN(in)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if s := LSN(0x16B374D848).String(); s != "16/B374D848" {
		t.Errorf("String = %s", s)
	}
	for _, bad := range []string{"0/", "/1", "0/3000060/1", "g/1", "123456789/0", "0/123456789", "0x0/1", "-1/0", "0 /1"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}
