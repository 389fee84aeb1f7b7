package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"image/png"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		in   []time.Duration
		want Summary
	}{
		{nil, Summary{}},
		{[]time.Duration{5 * ms}, Summary{1, 5 * ms, 5 * ms, 5 * ms}},
		{[]time.Duration{9 * ms, 1 * ms, 5 * ms}, Summary{3, 5 * ms, 1 * ms, 9 * ms}},
		{[]time.Duration{4 * ms, 1 * ms, 8 * ms, 2 * ms}, Summary{4, 3 * ms, 1 * ms, 8 * ms}},
	}
	for _, c := range cases {
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestRatioAndDur(t *testing.T) {
	if got := Ratio(10*time.Second, 500*time.Millisecond); got != "20.0x" {
		t.Errorf("Ratio = %s", got)
	}
	if got := Ratio(0, time.Second); got != "-" {
		t.Errorf("Ratio with a missing figure = %s", got)
	}
	if got := Dur(1500 * time.Millisecond); got != "1.50 s" {
		t.Errorf("Dur = %s", got)
	}
	if got := Dur(23500 * time.Millisecond); got != "23.5 s" {
		t.Errorf("Dur = %s", got)
	}
}

func sample() *Report {
	r := &Report{Reps: 5, Branches: 50}
	add := func(driver string, size int, method string, med time.Duration) {
		r.Results = append(r.Results, Result{Driver: driver, SizeMB: size, DBBytes: int64(size) << 20, Method: method,
			Summary: Summary{Runs: 5, Median: med, Min: med - time.Millisecond, Max: med + time.Millisecond}})
	}
	for _, s := range []int{100, 1000} {
		add("btrfs", s, VeloCreate, 150*time.Millisecond)
		add("zfs", s, VeloCreate, 300*time.Millisecond)
		add("", s, Template, time.Duration(s)*3*time.Millisecond)
		add("", s, DumpRestor, time.Duration(s)*8*time.Millisecond)
	}
	add("btrfs", 100, VeloStatus, 40*time.Millisecond)
	add("btrfs", 1000, InServerClone, 600*time.Millisecond)
	r.Costs = []Cost{{Driver: "btrfs", SizeMB: 1000, MainTPS: 1000, BranchTP: 950, DiskAfter: map[int]int64{1000: 8 << 20}}}
	return r
}

func TestOutputs(t *testing.T) {
	r := sample()
	var md bytes.Buffer
	r.Markdown(&md)
	// 1000 MB: TEMPLATE 3 s over btrfs's 150 ms is 20x; dump 8 s over zfs's 300 ms is 26.7x.
	// btrfs 1000 MB: velo's 150 ms against the in-server clone's 600 ms is 0.25x.
	for _, want := range []string{"| 1000 MB | 1000 MB | 3.00 s (3.00 s–3.00 s) |", "| btrfs | 1000 MB | 600 ms (599 ms–601 ms) | 150 ms (149 ms–151 ms) | 0.25x |", `dump\|restore / velo (zfs)`, "20.0x", "26.7x", "| btrfs | 1000 MB | 1000 | 950 | 0.95 |", "1000 rows: 8.0 MB"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var c bytes.Buffer
	if err := r.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != 1+len(r.Results) {
		t.Fatalf("CSV: %d records, %v", len(recs), err)
	}
	if got := strings.Join(recs[1], ","); got != "btrfs,100,104857600,velo branch create,5,150.0,149.0,151.0" {
		t.Errorf("first CSV row = %s", got)
	}
	var j bytes.Buffer
	if err := r.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || len(back.Results) != len(r.Results) || back.Results[0].Median != 150*time.Millisecond {
		t.Fatalf("JSON does not round-trip: %v %+v", err, back.Results)
	}
	var img bytes.Buffer
	if err := r.Chart(&img); err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(&img)
	if err != nil || cfg.Width < 600 {
		t.Fatalf("chart is not a PNG of a sensible size: %+v %v", cfg, err)
	}
}

func TestMarkdownWithoutAlternatives(t *testing.T) {
	r := &Report{Reps: 1, Branches: 2, Results: []Result{
		{Driver: "zfs", SizeMB: 100, Method: VeloCreate, Summary: Summarize([]time.Duration{time.Second})},
	}}
	var b strings.Builder
	r.Markdown(&b)
	if strings.Contains(b.String(), "Against the alternatives") {
		t.Errorf("a run without alternatives shows their table:\n%s", b.String())
	}
	for _, want := range []string{"min–max of 1 run)", "with 2 branches"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("want %q in the headings:\n%s", want, b.String())
		}
	}
	r.Results = append(r.Results, Result{SizeMB: 100, Method: Template, Summary: Summarize([]time.Duration{10 * time.Second})})
	b.Reset()
	r.Markdown(&b)
	if !strings.Contains(b.String(), "| 10.0x |") {
		t.Errorf("want the ratio of TEMPLATE to velo, 10.0x:\n%s", b.String())
	}
}

// TestChartWithNothingToChart: a report of figures the chart does not plot
// (velo-bench --wake-only) gives ErrNoChart and no PNG, not a panic.
func TestChartWithNothingToChart(t *testing.T) {
	r := &Report{Reps: 1, Results: []Result{{Driver: "btrfs", SizeMB: 100, Method: "wake through velo serve (connect to first row)",
		Summary: Summary{Runs: 1, Median: time.Second, Min: time.Second, Max: time.Second}}}}
	var buf bytes.Buffer
	if err := r.Chart(&buf); !errors.Is(err, ErrNoChart) || buf.Len() != 0 {
		t.Errorf("Chart = %v with %d bytes; want ErrNoChart and nothing written", err, buf.Len())
	}
}
