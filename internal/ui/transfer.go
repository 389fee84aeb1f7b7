package ui

import (
	"fmt"
	"sync"
	"time"
)

// Transfer runs fn as one named step that moves bytes (a base backup, a
// dump); fn calls report(done, total) as it goes (total 0 when unknown).
// On a terminal the step's line shows bytes done and total, the rate and
// the time left, redrawn in place; otherwise a plain line is printed every
// 10 seconds, so that a log shows progress without a wall of redraws.
func (p *Progress) Transfer(name string, fn func(report func(done, total int64)) error) error {
	if p == nil || p.quiet {
		return p.Step(name, func() error { return fn(func(int64, int64) {}) })
	}
	start := time.Now()
	var mu sync.Mutex
	var done, total int64
	var lastPlain time.Time
	report := func(d, t int64) {
		mu.Lock()
		done, total = d, t
		mu.Unlock()
		if p.terminal {
			return
		}
		if now := time.Now(); now.Sub(lastPlain) >= 10*time.Second {
			lastPlain = now
			p.mu.Lock()
			fmt.Fprintf(p.w, "  %s %s\n", pad(name, 36), transferLine(d, t, now.Sub(start)))
			p.mu.Unlock()
		}
	}
	if !p.terminal {
		lastPlain = start
		return p.Step(name, func() error { return fn(report) })
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			d, t := done, total
			mu.Unlock()
			p.mu.Lock()
			fmt.Fprintf(p.w, "\r\033[K  ⠿ %s %s", pad(name, 36), transferLine(d, t, time.Since(start)))
			p.mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// The final line is Step's; Step's own spinner is not run.
	err := p.stepAfter(name, start, func() error {
		err := fn(report)
		close(stop)
		wg.Wait()
		fmt.Fprint(p.w, "\r\033[K")
		return err
	})
	return err
}

// stepAfter is Step for a step that began at start.
func (p *Progress) stepAfter(name string, start time.Time, fn func() error) error {
	err := fn()
	mark := "▸"
	if err != nil {
		mark = "✗"
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "  %s %s %s\n", mark, pad(name, 36), fmtDur(time.Since(start)))
	p.mu.Unlock()
	return err
}

// transferLine is "1.2 GB of 3.0 GB, 85 MB/s, 21s left".
func transferLine(done, total int64, elapsed time.Duration) string {
	rate := float64(0)
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	line := Bytes(done)
	if total > 0 {
		line += " of " + Bytes(total)
	}
	line += fmt.Sprintf(", %s/s", Bytes(int64(rate)))
	if total > done && rate > 0 {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		line += fmt.Sprintf(", %s left", left.Round(time.Second))
	}
	return line
}
