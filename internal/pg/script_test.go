package pg

import "testing"

func TestSplitScript(t *testing.T) {
	script := "-- mask\nUPDATE a SET s = 'x;y';\n\nUPDATE b SET s = $$;$$ /* ; */;\nDO $f$ BEGIN\n PERFORM 1; END $f$;\nSELECT E'\\';';\n  SELECT \"a;\"\n FROM t\n"
	got := SplitScript(script)
	want := []int{2, 4, 5, 7, 8}
	if len(got) != len(want) {
		t.Fatalf("got %d statements: %+v", len(got), got)
	}
	for i, s := range got {
		if s.Line != want[i] {
			t.Errorf("statement %d %q starts on line %d, want %d", i, s.SQL, s.Line, want[i])
		}
	}
	// The position Postgres gives for "FROM" in the last statement.
	last := got[4]
	pos := int32(len([]rune(last.SQL[:len(last.SQL)-len("FROM t\n")]))) + 1
	if l := LineOf(last, pos); l != 9 {
		t.Errorf("LineOf = %d, want 9", l)
	}
	if n := len(SplitScript("-- nothing\n/* at all */\n;")); n != 0 {
		t.Errorf("a script of comments has %d statements", n)
	}
}
