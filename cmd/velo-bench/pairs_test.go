package main

import (
	"strings"
	"testing"
	"time"
)

// TestTimePairs: the two ways run in turn, each round's first the other
// round's second, and each way's runs (warm-up left out) go to its own
// summary.
func TestTimePairs(t *testing.T) {
	var order []string
	fn := func(name string, d time.Duration) func(int) (time.Duration, error) {
		return func(i int) (time.Duration, error) {
			order = append(order, name)
			return d * time.Duration(i+1), nil
		}
	}
	sa, sb, err := timePairs(3, fn("a", time.Second), fn("b", time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "abbaabba" {
		t.Errorf("order %s, want abbaabba", got)
	}
	if sa.Runs != 3 || sa.Min != 2*time.Second || sa.Max != 4*time.Second || sb.Runs != 3 || sb.Median != 3*time.Millisecond {
		t.Errorf("summaries a %+v, b %+v", sa, sb)
	}
}
