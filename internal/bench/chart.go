package bench

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ErrNoChart is Chart's answer for a report with none of its lines (velo-bench
// --diff-only, --wake-only): no PNG is written.
var ErrNoChart = errors.New("nothing to chart: no velo branch create or alternative measured")

// Chart draws time to a usable copy against database size, both on log
// scales: one line per driver for `velo branch create`, one per
// alternative. It writes a PNG.
func (r *Report) Chart(w io.Writer) error {
	p := plot.New()
	p.Title.Text = "Time until the copy answers a query"
	p.X.Label.Text = "database size (MB)"
	p.Y.Label.Text = "seconds (median)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = logTicks{}, logTicks{}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())

	type line struct {
		name, driver, method string
	}
	var lines []line
	drawn := 0
	for _, d := range r.Drivers() {
		lines = append(lines, line{"velo branch create (" + d + ")", d, VeloCreate})
	}
	for _, a := range Alternatives {
		lines = append(lines, line{a, "", a})
	}
	for _, d := range r.Drivers() {
		if r.has(d, InServerClone) {
			lines = append(lines, line{"PostgreSQL's in-server clone (" + d + ")", d, InServerClone})
		}
	}
	for i, l := range lines {
		var pts plotter.XYs
		for _, s := range r.Sizes() {
			x, ok := r.Find(l.driver, s, l.method)
			if !ok || x.Median <= 0 {
				continue
			}
			mb := float64(x.DBBytes) / (1 << 20)
			if mb <= 0 {
				mb = float64(s)
			}
			pts = append(pts, plotter.XY{X: mb, Y: x.Median.Seconds()})
		}
		if len(pts) == 0 {
			continue
		}
		ln, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		ln.Color, sc.Color = c, c
		ln.Width = vg.Points(1.5)
		if l.driver == "" {
			ln.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		sc.Shape = draw.CircleGlyph{}
		p.Add(ln, sc)
		p.Legend.Add(l.name, ln, sc)
		drawn++
	}
	if drawn == 0 {
		return ErrNoChart
	}
	// One size, or one figure: a log axis needs a range, not a point.
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		if a.Min == a.Max && a.Min > 0 {
			a.Min, a.Max = a.Min/2, a.Max*2
		}
	}
	p.Legend.TextStyle.Color = color.Black
	wt, err := p.WriterTo(9*vg.Inch, 6*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// logTicks marks 1, 2 and 5 times each power of ten, labelling them all:
// the few decades a benchmark spans need more than plot.LogTicks gives.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	if min <= 0 {
		min = 1e-3
	}
	for e := math.Floor(math.Log10(min)); math.Pow(10, e) <= max*1.0001; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < min*0.9999 || v > max*1.0001 {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: trim(v)})
		}
	}
	return ts
}

func trim(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}

// has tells whether method was measured on driver at any size.
func (r *Report) has(driver, method string) bool {
	for _, x := range r.Results {
		if x.Driver == driver && x.Method == method {
			return true
		}
	}
	return false
}
