package engine

// Fuzz targets for the parsers of what users type: names, PROJECT/BRANCH
// references, snapshot labels, snapshot IDs and prefixes, and --pitr
// times. `go test` runs them on their seeds (below and in testdata/fuzz);
// `go test -run '^$' -fuzz FuzzParseRef ./internal/engine` explores.
//
// The properties: nothing panics; what is accepted obeys the documented
// rule (DESIGN §1) and round-trips; what is refused is errdefs.ErrInvalid with a
// message that states the rule, shows the input quoted (no raw control
// character reaches the terminal) and stays short whatever the input.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/state"
)

// hostileSeeds are inputs every parser is seeded with.
var hostileSeeds = []string{
	"", " ", "demo", "demo/dev", "demo/main", "a/b/c", "/", "//", "demo/", "/dev",
	"../x", "/etc", "a/../../b", "demo/../main", "./demo", "~root",
	"a;b", "$(id)", "`id`", "a'b", `a"b`, `a\b`, "a b", "-", "-rf", "--force",
	"a\x00b", "demo/dev\x00", "a\nb", "demo\n", "a\tb", "a\rb", "a\x1b[31mb", "a\x7fb", "\x1b]0;title\x07",
	"dеmo",              // Cyrillic е
	"ｄｅｍｏ",              // fullwidth
	"de\u200dmo",        // zero-width joiner
	"demo\u202egnp",     // right-to-left override
	"\xff\xfe", "a\xc3", // invalid UTF-8
	strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 10000),
	"s0123456789ab", "s012", "S012", "s01", strings.Repeat("0", 65),
	"2025-10-07T14:30:00Z", "2025-10-07 14:30:00", "2025-10-07", "2 hours ago", "30m ago", "1d", "0s",
	"9999999999 weeks ago", "3000000000w", "-5m", "1e9d", "2025-10-07T14:30:00+25:00", "0000-01-01T00:00:00Z",
}

func seed(f *testing.F) {
	for _, s := range hostileSeeds {
		f.Add(s)
	}
}

// checkRefusal asserts what every refusal must be: errdefs.ErrInvalid, the rule
// stated, the input never echoed raw or at length.
func checkRefusal(t *testing.T, in string, err error, rules ...string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("%q refused with %v; want errdefs.ErrInvalid", in, err)
	}
	msg := err.Error()
	found := false
	for _, r := range rules {
		found = found || strings.Contains(msg, r)
	}
	if !found {
		t.Errorf("%q: message %q states none of the rules %q", in, msg, rules)
	}
	if len(msg) > 400 {
		t.Errorf("%q: message is %d bytes long: %.120q...", in, len(msg), msg)
	}
	if !utf8.ValidString(msg) {
		t.Errorf("%q: message is not UTF-8: %q", in, msg)
	}
	for _, r := range msg {
		// Non-ASCII of the input is shown escaped, so a look-alike is told
		// apart from what it mimics.
		if !unicode.IsGraphic(r) || r > unicode.MaxASCII && strings.ContainsRune(in, r) {
			t.Errorf("%q: message holds %U raw: %q", in, r, msg)
			break
		}
	}
}

// isName is DESIGN's rule written out by hand: ^[a-z0-9][a-z0-9_-]{0,62}$.
func isName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName("project", name)
		if err == nil {
			if !isName(name) {
				t.Fatalf("ValidateName accepted %q", name)
			}
			return
		}
		if isName(name) {
			t.Fatalf("ValidateName refused %q: %v", name, err)
		}
		checkRefusal(t, name, err, nameRule)
	})
}

func FuzzParseRef(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, ref string) {
		p, b, err := ParseRef(ref)
		if err == nil {
			if !isName(p) || !isName(b) || p+"/"+b != ref {
				t.Fatalf("ParseRef(%q) = %q, %q", ref, p, b)
			}
			return
		}
		if p != "" || b != "" {
			t.Errorf("ParseRef(%q) refused but returned %q, %q", ref, p, b)
		}
		if before, after, ok := strings.Cut(ref, "/"); ok && isName(before) && isName(after) {
			t.Fatalf("ParseRef refused %q: %v", ref, err)
		}
		checkRefusal(t, ref, err, nameRule, "must be written PROJECT/BRANCH")
	})
}

func FuzzValidateLabel(f *testing.F) {
	seed(f)
	f.Add("before-migration")
	f.Add("avant la migration: café ☕")
	f.Add(strings.Repeat("é", 100))
	f.Add(strings.Repeat("é", 101))
	f.Fuzz(func(t *testing.T, label string) {
		err := ValidateLabel(label)
		printable := utf8.ValidString(label) && utf8.RuneCountInString(label) <= 100
		for _, r := range label {
			printable = printable && unicode.IsPrint(r)
		}
		if err == nil {
			if !printable {
				t.Fatalf("ValidateLabel accepted %q", label)
			}
			return
		}
		if printable {
			t.Fatalf("ValidateLabel refused %q: %v", label, err)
		}
		checkRefusal(t, label, err, "labels are printable text of at most 100 characters")
	})
}

func FuzzSnapshotPrefix(f *testing.F) {
	seed(f)
	all := []state.Snapshot{{ID: "s0123456789ab"}, {ID: "s0123fffffff0"}, {ID: "s9999aaaaaaaa"}}
	f.Fuzz(func(t *testing.T, prefix string) {
		err := ValidateSnapshotPrefix(prefix)
		wellFormed := len(prefix) >= 4 && len(prefix) <= 64 && strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789") == ""
		if (err == nil) != wellFormed {
			t.Fatalf("ValidateSnapshotPrefix(%q) = %v", prefix, err)
		}
		if err != nil {
			checkRefusal(t, prefix, err, "unique prefix of at least 4 characters (a-z, 0-9)")
		}
		s, err := pickSnapshot(all, prefix)
		var matches []string
		for _, x := range all {
			if strings.HasPrefix(x.ID, prefix) {
				matches = append(matches, x.ID)
			}
		}
		switch {
		case !wellFormed:
			checkRefusal(t, prefix, err, "unique prefix of at least 4 characters (a-z, 0-9)")
		case len(matches) == 0:
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("pickSnapshot(%q) = %v, %v; want errdefs.ErrNotFound", prefix, s.ID, err)
			}
		case len(matches) == 1:
			if err != nil || s.ID != matches[0] {
				t.Fatalf("pickSnapshot(%q) = %v, %v; want %s", prefix, s.ID, err, matches[0])
			}
		default:
			checkRefusal(t, prefix, err, "give more characters")
			for _, m := range matches {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("ambiguous %q: message does not name %s: %v", prefix, m, err)
				}
			}
		}
	})
}

const timeRule = "use RFC 3339 (2025-10-07T14:30:00Z"

func FuzzParseTime(f *testing.F) {
	seed(f)
	for _, s := range []string{"2025-10-07T14:30:00.123456789+02:00", "2025-10-07 14:30:00-05", "2025-10-07t14:30:00z", " 1 week ago ", "100 years ago", "36500d", "1 day", "2 HOURS AGO"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, zoned, err := ParseTime(s, now)
		if err != nil {
			checkRefusal(t, s, err, timeRule, "relative times reach back at most")
			return
		}
		if got.IsZero() {
			t.Fatalf("ParseTime(%q) accepted as the zero time", s)
		}
		if relativeTime.MatchString(strings.TrimSpace(strings.ToLower(s))) {
			// A relative time is in the past, at most 100 years back.
			if got.After(now) || got.Before(now.AddDate(-101, 0, 0)) {
				t.Fatalf("ParseTime(%q) = %s: not within 100 years before %s", s, got, now)
			}
			return
		}
		if !zoned && got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) has no zone but is in %s, not UTC", s, got.Location())
		}
		// An absolute time round-trips through its RFC 3339 form.
		back, zoned2, err := ParseTime(got.Format(time.RFC3339Nano), now)
		if err != nil || !back.Equal(got) || !zoned2 {
			t.Fatalf("ParseTime(%q) = %s; its RFC 3339 form %s gives %s, %v, %v", s, got, got.Format(time.RFC3339Nano), back, zoned2, err)
		}
		// What Postgres is given (recovery_target_time) names the same moment.
		pgForm := got.UTC().Format("2006-01-02 15:04:05.999999-07")
		if got.Year() >= 1 && got.Year() <= 9999 {
			back, _, err := ParseTime(pgForm, now)
			if err != nil || back.Sub(got.Truncate(time.Microsecond)).Abs() > time.Microsecond {
				t.Fatalf("ParseTime(%q) = %s; recovery form %q gives %s, %v", s, got, pgForm, back, err)
			}
		}
	})
}

// TestQuotedInput: what the parsers echo is quoted, escaped and short,
// including NUL, which no command line can carry.
func TestQuotedInput(t *testing.T) {
	for _, in := range []string{"a\x00b", "demo/\x00", "\x1b[2J", strings.Repeat("a\x00", 5000), "dеmo", "de\u200dmo"} {
		for _, err := range []error{ValidateName("branch", in), ValidateLabel(in + "\x00"), ValidateSnapshotPrefix(in)} {
			checkRefusal(t, in, err, nameRule, "printable text", "unique prefix")
		}
		_, _, err := ParseRef(in)
		checkRefusal(t, in, err, nameRule, "PROJECT/BRANCH")
		_, _, err = ParseTime(in, time.Now())
		checkRefusal(t, in, err, timeRule)
	}
	if got := fmt.Sprint(ValidateName("project", "dеmo")); !strings.Contains(got, `"d\u0435mo"`) {
		t.Errorf("a look-alike is not told apart: %s", got)
	}
}
