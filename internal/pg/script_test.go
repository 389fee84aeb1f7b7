package pg

import (
	"strings"
	"testing"
)

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

func TestSplitConnects(t *testing.T) {
	script := "UPDATE a SET x = 1;\n\\connect shop\nUPDATE items\n  SET v = 0;\n\\c \"my db\"\nDELETE FROM t;\n\\c shop\nUPDATE more SET y = 2;\n"
	got, err := SplitConnects(script)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Database != "" || got[1].Database != "shop" || got[2].Database != "my db" {
		t.Fatalf("sections %+v", got)
	}
	shop := SplitScript(got[1].Text)
	if len(shop) != 2 || shop[0].Line != 3 || shop[1].Line != 8 || !strings.Contains(shop[0].SQL, "UPDATE items") {
		t.Fatalf("shop's statements and their lines: %+v", shop)
	}
	if def := SplitScript(got[0].Text); len(def) != 1 || def[0].Line != 1 {
		t.Fatalf("the default section: %+v", def)
	}
	if my := SplitScript(got[2].Text); len(my) != 1 || my[0].Line != 6 {
		t.Fatalf("my db: %+v", my)
	}
	for _, bad := range []string{"\\c", "\\connect shop someone", "\\c 'shop'"} {
		if _, err := SplitConnects("SELECT 1;\n" + bad + "\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error naming line 2", bad, err)
		}
	}
	if only, _ := SplitConnects("SELECT 1;"); len(only) != 1 || only[0].Text != "SELECT 1;" {
		t.Errorf("a script without \\connect: %+v", only)
	}
}
