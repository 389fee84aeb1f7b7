package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/pg"
)

// TestDiffProperty makes rounds of random changes on a branch (inserts,
// updates of values and of keys, NULLs, long values, deletes, VACUUM, whole
// rows duplicated and deleted in a table without a key) and compares what
// velo diff counts with a brute-force comparison of every row of both
// sides (the origin is main, unchanged since the branch was made).
func TestDiffProperty(t *testing.T) {
	// zfs: its blocks found from send streams; btrfs: FIEMAP; copy: bytes.
	for _, d := range []string{"btrfs", "zfs", "copy"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed>>1))
			e := newEnv(t, d)
			e.Create("dp")
			e.Psql("dp/main", `CREATE TABLE p (id int PRIMARY KEY, a int, b text);
				INSERT INTO p SELECT g, g, 'b' || g FROM generate_series(1, 3000) g;
				CREATE TABLE q (x int, y text);
				INSERT INTO q SELECT g % 100, 'y' FROM generate_series(1, 600) g`)
			e.OK("branch", "create", "dp/dev")
			next := 100000
			for round := 0; round < 4; round++ {
				var sql []string
				for i := 0; i < 1+rng.IntN(40); i++ {
					id := 1 + rng.IntN(3000)
					switch rng.IntN(8) {
					case 0:
						next++
						sql = append(sql, fmt.Sprintf("INSERT INTO p VALUES (%d, %d, 'n')", next, rng.IntN(9)))
					case 1:
						sql = append(sql, fmt.Sprintf("UPDATE p SET a = %d WHERE id = %d", rng.IntN(9), id))
					case 2:
						sql = append(sql, fmt.Sprintf("UPDATE p SET b = NULL WHERE id = %d", id))
					case 3:
						sql = append(sql, fmt.Sprintf("UPDATE p SET b = repeat(md5(random()::text), 300) WHERE id = %d", id))
					case 4:
						sql = append(sql, fmt.Sprintf("DELETE FROM p WHERE id = %d", id))
					case 5:
						next++
						sql = append(sql, fmt.Sprintf("UPDATE p SET id = %d WHERE id = %d", next, id))
					case 6:
						sql = append(sql, fmt.Sprintf("INSERT INTO q VALUES (%d, 'y')", rng.IntN(100)))
					case 7:
						sql = append(sql, fmt.Sprintf("DELETE FROM q WHERE ctid = (SELECT ctid FROM q WHERE x = %d LIMIT 1)", rng.IntN(100)))
					}
				}
				e.Psql("dp/dev", strings.Join(sql, ";\n"))
				if rng.IntN(2) == 0 {
					e.Psql("dp/dev", "VACUUM p")
				}
				got := e.diff("dp/dev", "--data-only")
				want := map[string][3]int64{
					"public.p": bruteKeyed(t, e, "p"),
					"public.q": bruteWhole(t, e, "q"),
				}
				for _, tb := range got.Tables {
					w := want[tb.Table]
					if g := [3]int64{tb.RowsAdded, tb.RowsDeleted, tb.RowsChanged}; g != w {
						t.Errorf("round %d: %s: velo diff +%d -%d ~%d, brute force +%d -%d ~%d\n%s", round, tb.Table, g[0], g[1], g[2], w[0], w[1], w[2], strings.Join(sql, "\n"))
					}
				}
			}
		})
	}
}

// sideRows reads every row of table on ref: key (the first column) and
// the whole row, as text.
func sideRows(t *testing.T, e *env, ref, table string) [][2]string {
	t.Helper()
	c := e.Conn(ref)
	ctx := context.Background()
	conn, err := pg.Connect(ctx, c.Port, c.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	key := "r::text"
	if table == "p" {
		key = "id::text"
	}
	rows, err := conn.Query(ctx, "SELECT "+key+", r::text FROM "+table+" r")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

func bruteKeyed(t *testing.T, e *env, table string) [3]int64 {
	old := map[string]string{}
	for _, r := range sideRows(t, e, "dp/main", table) {
		old[r[0]] = r[1]
	}
	var out [3]int64
	seen := map[string]bool{}
	for _, r := range sideRows(t, e, "dp/dev", table) {
		seen[r[0]] = true
		o, ok := old[r[0]]
		switch {
		case !ok:
			out[0]++
		case o != r[1]:
			out[2]++
		}
	}
	for k := range old {
		if !seen[k] {
			out[1]++
		}
	}
	return out
}

func bruteWhole(t *testing.T, e *env, table string) [3]int64 {
	count := map[string]int64{}
	for _, r := range sideRows(t, e, "dp/main", table) {
		count[r[1]]--
	}
	for _, r := range sideRows(t, e, "dp/dev", table) {
		count[r[1]]++
	}
	var out [3]int64
	for _, n := range count {
		if n > 0 {
			out[0] += n
		} else {
			out[1] -= n
		}
	}
	return out
}
