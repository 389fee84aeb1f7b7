package hostsetup

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

// FuzzParseSize: velo setup --size never panics or overflows; what it
// accepts is a positive whole number of bytes; what it refuses says the rule.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"20G", "512M", "1T", "1", "20g", "20GB", " 5G ", "0", "-5G", "1e3G", "5 G", "0x10", "",
		"4096P", "9223372036854775807", "9223372036854775807T", "4194304T", "4194303T", "G", "$(id)", "\x00", strings.Repeat("9", 10000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "give a positive size such as 20G, 512M or 1T") || len(err.Error()) > 300 {
				t.Fatalf("ParseSize(%q): %v", s, err)
			}
			return
		}
		if n <= 0 || n > 1<<62 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		// A plain number of bytes reads back as itself.
		if back, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, which reads back as %d, %v", s, n, back, err)
		}
	})
}
