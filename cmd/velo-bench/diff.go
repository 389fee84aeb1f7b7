package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/velohq/velo/internal/bench"
)

// The methods of the diff figures.
const (
	diffChanged = "velo diff, 1,000 rows changed"
	diffNone    = "velo diff, no change"
	diffByHand  = "full ordered scan of both sides"
)

// diffCost times velo diff on a branch with 1,000 rows of pgbench_accounts
// changed (spread over the table: one every n/1000 accounts), against its
// origin; the same comparison by hand, an ordered scan of the table on main
// (the branch's origin, unchanged since) and on the branch, compared row by
// row; and velo diff on a branch with no change.
func (m *measure) diffCost(ctx context.Context) error {
	ref, same := m.project+"/diff", m.project+"/nodiff"
	for _, r := range []string{ref, same} {
		if _, err := m.v.run(ctx, "branch", "create", r); err != nil {
			return err
		}
	}
	port := portOf(ctx, m.v, ref)
	n := int64(m.scale) * 100000
	if err := exec1(ctx, port, m.password, "postgres", fmt.Sprintf(
		"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (SELECT g * %d FROM generate_series(1, 1000) g)", n/1000)); err != nil {
		return err
	}
	var last string
	timeDiff := func(r string) func(int) (time.Duration, error) {
		return func(int) (time.Duration, error) {
			start := time.Now()
			out, err := m.v.run(ctx, "diff", r, "--data-only", "--json")
			last = out
			return time.Since(start), err
		}
	}
	s, err := timeRuns(m.c.reps, timeDiff(ref))
	if err != nil {
		return err
	}
	var doc struct {
		Tables []struct {
			Table       string
			RowsChanged int64 `json:"rows_changed"`
			Finder      string
			Blocks      int64
			Candidates  int64 `json:"candidate_blocks"`
			FileRead    int64 `json:"file_read_bytes"`
			RowsRead    int64 `json:"rows_read"`
		}
	}
	if err := json.Unmarshal([]byte(last), &doc); err != nil {
		return err
	}
	for _, t := range doc.Tables {
		logf("%s %d MB: velo diff: %s: %d rows changed, %s: %d of %d blocks read, %s of files read, %d rows", m.p.driver, m.size, t.Table, t.RowsChanged, t.Finder, t.Candidates, t.Blocks, bench.MB(t.FileRead), t.RowsRead)
		if t.Table == "public.pgbench_accounts" && t.RowsChanged != 1000 {
			return fmt.Errorf("velo diff found %d rows of pgbench_accounts changed, want 1000", t.RowsChanged)
		}
	}
	m.add(m.p.driver, diffChanged, s)
	if s, err = timeRuns(m.c.reps, timeDiff(same)); err != nil {
		return err
	}
	var none struct {
		OriginRead string `json:"origin_read"`
	}
	if err := json.Unmarshal([]byte(last), &none); err != nil {
		return err
	}
	logf("%s %d MB: velo diff, no change: the origin read from its %s", m.p.driver, m.size, map[string]string{"files": "files alone", "server": "server on a copy"}[none.OriginRead])
	m.add(m.p.driver, diffNone, s)
	s, err = timeRuns(m.c.reps, func(int) (time.Duration, error) {
		start := time.Now()
		changed, err := m.scanBoth(ctx, m.main.Port, port)
		if err == nil && changed != 1000 {
			err = fmt.Errorf("the ordered scans found %d rows changed, want 1000", changed)
		}
		return time.Since(start), err
	})
	if err != nil {
		return err
	}
	m.add(m.p.driver, diffByHand, s)
	for _, r := range []string{ref, same} {
		if _, err := m.v.run(ctx, "branch", "delete", r); err != nil {
			return err
		}
	}
	return nil
}

// scanBoth reads pgbench_accounts ordered by its key on both servers at
// once and counts the rows that differ.
func (m *measure) scanBoth(ctx context.Context, oldPort, newPort int) (int, error) {
	oc, err := connect(ctx, oldPort, m.password, "postgres")
	if err != nil {
		return 0, err
	}
	defer oc.Close(context.WithoutCancel(ctx))
	nc, err := connect(ctx, newPort, m.password, "postgres")
	if err != nil {
		return 0, err
	}
	defer nc.Close(context.WithoutCancel(ctx))
	const q = "SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid"
	or, err := oc.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	defer or.Close()
	nr, err := nc.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	defer nr.Close()
	changed := 0
	for or.Next() {
		if !nr.Next() {
			return 0, fmt.Errorf("the branch has fewer rows")
		}
		ov, err := or.Values()
		if err != nil {
			return 0, err
		}
		nv, err := nr.Values()
		if err != nil {
			return 0, err
		}
		if !reflect.DeepEqual(ov, nv) {
			changed++
		}
	}
	if nr.Next() {
		return 0, fmt.Errorf("the branch has more rows")
	}
	if err := or.Err(); err != nil {
		return 0, err
	}
	return changed, nr.Err()
}
