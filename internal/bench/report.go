// Package bench holds the figures of velo-bench and turns them into a
// table, CSV, JSON and a chart. It does no measuring itself: that is
// cmd/velo-bench, which drives real servers and filesystems.
package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Methods measured. Velo's own are per driver; the alternatives run on a
// Postgres server and do not depend on the driver.
const (
	VeloCreate = "velo branch create"
	VeloReset  = "velo branch reset"
	VeloDelete = "velo branch delete"
	// The same in a project made with --image (velo-bench -image).
	VeloCreateImage = "velo branch create --image"
	VeloResetImage  = "velo branch reset --image"
	VeloDeleteImage = "velo branch delete --image"
	VeloStatus      = "velo status --json"
	Template        = "CREATE DATABASE TEMPLATE"
	DumpRestor      = "pg_dump | pg_restore"
	BaseBackup      = "pg_basebackup + start"
	FloorTotal      = "floor: checkpoint+snapshot+clone+start"
	FloorCkpt       = "floor: CHECKPOINT"
	FloorSnap       = "floor: snapshot"
	FloorClone      = "floor: clone"
	FloorStart      = "floor: postgres start"
	// The physical import, per driver: pg_basebackup by hand into a
	// plain directory on the pool, against velo project create --from
	// the same server; branch create on the following main.
	ImportByHand = "pg_basebackup by hand"
	ImportVelo   = "velo project create --from"
	ImportBranch = "velo branch create (following main)"
	// The logical import, per driver: pg_dump -Fd -j of the source's
	// database and pg_restore -j into a server made beforehand on the
	// pool, against velo project create --from --logical.
	LogicalByHand = "pg_dump -Fd -j, pg_restore -j by hand"
	LogicalVelo   = "velo project create --from --logical"
	// PostgreSQL 18's copy-on-write CREATE DATABASE, per driver: a new
	// database in one server on the pool's filesystem (file_copy_method
	// = clone, STRATEGY FILE_COPY), until it answers.
	InServerClone = "CREATE DATABASE FILE_COPY (clone)"
)

// Alternatives are what a user does without Velo, in table order.
var Alternatives = []string{Template, DumpRestor, BaseBackup}

// Summary is the spread of one measurement's runs.
type Summary struct {
	Runs   int           `json:"runs"`
	Median time.Duration `json:"median_ns"`
	Min    time.Duration `json:"min_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Summarize returns the median, minimum and maximum of ds (the median of
// an even count is the mean of the middle two). An empty ds gives zeros.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	return Summary{Runs: len(ds), Median: Median(ds), Min: slices.Min(ds), Max: slices.Max(ds)}
}

// Median returns the middle of xs (the mean of the middle two for an even
// count), or zero for none.
func Median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

// Result is one method measured on one driver at one database size.
// Driver is "" for the alternatives, which run on a plain server.
type Result struct {
	Driver  string `json:"driver,omitempty"`
	SizeMB  int    `json:"size_mb"`  // the size asked for
	DBBytes int64  `json:"db_bytes"` // pg_database_size as built
	Method  string `json:"method"`
	Summary
}

// Cost is what a running branch costs on one driver.
type Cost struct {
	Driver   string  `json:"driver"`
	SizeMB   int     `json:"size_mb"`
	MainTPS  float64 `json:"main_tps"`
	BranchTP float64 `json:"branch_tps"`
	// DiskAfter maps rows changed (UPDATE of pgbench_accounts, then
	// CHECKPOINT) to the bytes the branch holds alone.
	DiskAfter map[int]int64 `json:"disk_after_rows"`
	// PoolGrowth is how much the pool's used space grew across the
	// create of that fresh branch (the parent's own writes included:
	// on reflink, the WAL segment pg_backup_stop's switch fills).
	PoolGrowth int64 `json:"pool_growth_bytes"`
	// IdlePSS and IdleRSS are the proportional and resident memory of an
	// idle branch's server (postmaster and its children), median over
	// the branches of the status run.
	IdlePSS int64 `json:"idle_pss_bytes"`
	IdleRSS int64 `json:"idle_rss_bytes"`
}

// Report is one run of velo-bench.
type Report struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	Postgres string    `json:"postgres"`
	Reps     int       `json:"repetitions"`
	Branches int       `json:"status_branches"`
	Results  []Result  `json:"results"`
	Costs    []Cost    `json:"costs"`
	Lags     []Lag     `json:"replay_lags,omitempty"`
	Serves   []Serve   `json:"serve,omitempty"`
}

// Lag is a following main's replay lag under pgbench on its source, as
// velo project get --json says it, sampled about once a second.
type Lag struct {
	Driver        string  `json:"driver"`
	SizeMB        int     `json:"size_mb"`
	SourceTPS     float64 `json:"source_tps"`
	Samples       int     `json:"samples"`
	Streaming     int     `json:"samples_streaming"` // the others were catching up or worse
	MedianBytes   int64   `json:"median_bytes"`
	MaxBytes      int64   `json:"max_bytes"`
	MedianSeconds float64 `json:"median_seconds"`
	MaxSeconds    float64 `json:"max_seconds"`
}

// Find returns the result for driver, size and method.
func (r *Report) Find(driver string, size int, method string) (Result, bool) {
	for _, x := range r.Results {
		if x.Driver == driver && x.SizeMB == size && x.Method == method {
			return x, true
		}
	}
	return Result{}, false
}

// Drivers returns the drivers measured, in the order first seen.
func (r *Report) Drivers() []string {
	var ds []string
	for _, x := range r.Results {
		if x.Driver != "" && !slices.Contains(ds, x.Driver) {
			ds = append(ds, x.Driver)
		}
	}
	return ds
}

// Sizes returns the sizes measured, ascending.
func (r *Report) Sizes() []int {
	var ss []int
	for _, x := range r.Results {
		if !slices.Contains(ss, x.SizeMB) {
			ss = append(ss, x.SizeMB)
		}
	}
	sort.Ints(ss)
	return ss
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes one row per result, times in milliseconds.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"driver", "size_mb", "db_bytes", "method", "runs", "median_ms", "min_ms", "max_ms"})
	for _, x := range r.Results {
		_ = cw.Write([]string{x.Driver, strconv.Itoa(x.SizeMB), strconv.FormatInt(x.DBBytes, 10), x.Method, strconv.Itoa(x.Runs),
			ms(x.Median), ms(x.Min), ms(x.Max)})
	}
	cw.Flush()
	return cw.Error()
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

// Dur formats d for a table: milliseconds below a second, seconds above.
func Dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// Ratio is other's median over velo's, as "12.3x"; "-" when either is missing.
func Ratio(other, velo time.Duration) string {
	if other <= 0 || velo <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", float64(other)/float64(velo))
}

// count says "1 run", "5 runs": n with the noun's singular or plural.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Markdown writes the report's tables in Markdown: Velo's commands and the
// floor per driver and size, then the alternatives with the ratio of each
// to Velo's branch create, then the running cost.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "### Velo's commands and the floor (median, min–max of %s)\n\n", count(r.Reps, "run", "runs"))
	methods := []string{VeloCreate, VeloReset, VeloDelete, FloorTotal, FloorCkpt, FloorSnap, FloorClone, FloorStart}
	fmt.Fprintf(w, "| driver | size | %s |\n|---|---|%s\n", strings.Join(methods, " | "), strings.Repeat("---|", len(methods)))
	for _, d := range r.Drivers() {
		for _, s := range r.Sizes() {
			cells := []string{d, r.sizeLabel(s)}
			for _, m := range methods {
				cells = append(cells, r.cell(d, s, m))
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
	}
	fmt.Fprintf(w, "\n### `%s` with %s\n\n| driver | median | min | max |\n|---|---|---|---|\n", VeloStatus, count(r.Branches, "branch", "branches"))
	for _, d := range r.Drivers() {
		for _, s := range r.Sizes() {
			if x, ok := r.Find(d, s, VeloStatus); ok {
				fmt.Fprintf(w, "| %s | %s | %s | %s |\n", d, Dur(x.Median), Dur(x.Min), Dur(x.Max))
			}
		}
	}
	if r.hasAlternatives() {
		r.alternativesTable(w)
	}
	r.inServerTable(w)
	r.importTable(w)
	r.logicalTable(w)
	r.serveTable(w)
	if len(r.Costs) > 0 {
		fmt.Fprintf(w, "\n### The cost of a running branch\n\n| driver | size | main TPS | branch TPS | branch / main | idle server PSS | idle server RSS | pool growth at create | branch's own disk after changed rows |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Costs {
			var rows []int
			for n := range c.DiskAfter {
				rows = append(rows, n)
			}
			sort.Ints(rows)
			var disk []string
			for _, n := range rows {
				disk = append(disk, fmt.Sprintf("%d rows: %s", n, MB(c.DiskAfter[n])))
			}
			ratio := "-"
			if c.MainTPS > 0 {
				ratio = fmt.Sprintf("%.2f", c.BranchTP/c.MainTPS)
			}
			fmt.Fprintf(w, "| %s | %d MB | %.0f | %.0f | %s | %s | %s | %s | %s |\n", c.Driver, c.SizeMB, c.MainTPS, c.BranchTP, ratio,
				MB(c.IdlePSS), MB(c.IdleRSS), MB(c.PoolGrowth), strings.Join(disk, "; "))
		}
	}
}

// MB formats bytes in MB with one decimal.
func MB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func shortName(method string) string {
	switch method {
	case Template:
		return "TEMPLATE"
	case DumpRestor:
		return "dump|restore"
	case BaseBackup:
		return "basebackup"
	}
	return method
}

func (r *Report) cell(driver string, size int, method string) string {
	x, ok := r.Find(driver, size, method)
	if !ok {
		return "-"
	}
	if x.Runs < 2 {
		return Dur(x.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", Dur(x.Median), Dur(x.Min), Dur(x.Max))
}

func (r *Report) sizeLabel(size int) string {
	for _, x := range r.Results {
		if x.SizeMB == size && x.DBBytes > 0 {
			return fmt.Sprintf("%.0f MB", float64(x.DBBytes)/(1<<20))
		}
	}
	return fmt.Sprintf("%d MB", size)
}

// Text writes the Markdown tables aligned for a terminal.
func (r *Report) Text(w io.Writer) error {
	var sb strings.Builder
	r.Markdown(&sb)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, "|---") {
			continue
		}
		if strings.HasPrefix(line, "| ") {
			line = strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |")
			line = strings.ReplaceAll(line, " | ", "\t") + "\t"
			line = strings.ReplaceAll(line, `\|`, "|")
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// hasAlternatives tells whether any alternative was measured.
func (r *Report) hasAlternatives() bool {
	for _, x := range r.Results {
		if x.Driver == "" {
			return true
		}
	}
	return false
}

// alternativesTable writes each alternative's median per size and its
// ratio to Velo's branch create on each driver.
func (r *Report) alternativesTable(w io.Writer) {
	fmt.Fprintf(w, "\n### Against the alternatives: each one's median, and its ratio to `%s`\n\n", VeloCreate)
	head := append([]string{"size", "database"}, Alternatives...)
	for _, d := range r.Drivers() {
		head = append(head, "velo ("+d+")")
		for _, a := range Alternatives {
			head = append(head, shortName(a)+" / velo ("+d+")")
		}
	}
	for i := range head {
		head[i] = strings.ReplaceAll(head[i], "|", `\|`)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, s := range r.Sizes() {
		cells := []string{fmt.Sprintf("%d MB", s), r.sizeLabel(s)}
		for _, a := range Alternatives {
			cells = append(cells, r.cell("", s, a))
		}
		for _, d := range r.Drivers() {
			v, _ := r.Find(d, s, VeloCreate)
			cells = append(cells, Dur(v.Median))
			for _, a := range Alternatives {
				x, _ := r.Find("", s, a)
				cells = append(cells, Ratio(x.Median, v.Median))
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// importTable writes the physical import's figures, if measured: the
// import against pg_basebackup by hand (goal ≤ 1.1×), branch create on a
// following main against one on an ordinary main (goal ≤ 1.2×), and the
// replay lag.
func (r *Report) importTable(w io.Writer) {
	head := []string{"driver", "size", ImportByHand, ImportVelo, "velo / by hand", ImportBranch, VeloCreate, "following / ordinary"}
	var rows []string
	for _, d := range r.Drivers() {
		for _, s := range r.Sizes() {
			v, ok := r.Find(d, s, ImportVelo)
			if !ok {
				continue
			}
			h, _ := r.Find(d, s, ImportByHand)
			f, _ := r.Find(d, s, ImportBranch)
			o, _ := r.Find(d, s, VeloCreate)
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s |", d, r.sizeLabel(s), r.cell(d, s, ImportByHand), r.cell(d, s, ImportVelo),
				ratio2(v.Median, h.Median), r.cell(d, s, ImportBranch), r.cell(d, s, VeloCreate), ratio2(f.Median, o.Median)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Physical import (median, min–max)\n\n| %s |\n|%s\n%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)), strings.Join(rows, "\n"))
	if len(r.Lags) > 0 {
		fmt.Fprintf(w, "\n### Replay lag of the following main under pgbench on the source\n\n| driver | size | source TPS | samples | streaming | bytes median | bytes max | seconds median | seconds max |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, l := range r.Lags {
			fmt.Fprintf(w, "| %s | %d MB | %.0f | %d | %d | %s | %s | %.2f | %.2f |\n", l.Driver, l.SizeMB, l.SourceTPS, l.Samples, l.Streaming,
				kB(l.MedianBytes), kB(l.MaxBytes), l.MedianSeconds, l.MaxSeconds)
		}
	}
}

// logicalTable writes the logical import's figures, if measured: velo
// project create --from --logical against pg_dump | pg_restore by hand
// (goal ≤ 1.1×).
func (r *Report) logicalTable(w io.Writer) {
	var rows []string
	for _, d := range r.Drivers() {
		for _, s := range r.Sizes() {
			v, ok := r.Find(d, s, LogicalVelo)
			if !ok {
				continue
			}
			h, _ := r.Find(d, s, LogicalByHand)
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |", d, r.sizeLabel(s), r.cell(d, s, LogicalByHand), r.cell(d, s, LogicalVelo), ratio2(v.Median, h.Median)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Logical import (median, min–max)\n\n| driver | size | %s | %s | velo / by hand |\n|---|---|---|---|---|\n%s\n", LogicalByHand, LogicalVelo, strings.Join(rows, "\n"))
}

// inServerTable writes PostgreSQL 18's in-server clone against Velo's
// branch create on the same driver, if measured (goal: velo ≤ the clone
// at the largest size, though a branch is a whole isolated server).
func (r *Report) inServerTable(w io.Writer) {
	var rows []string
	for _, d := range r.Drivers() {
		for _, s := range r.Sizes() {
			c, ok := r.Find(d, s, InServerClone)
			if !ok {
				continue
			}
			v, _ := r.Find(d, s, VeloCreate)
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |", d, r.sizeLabel(s), r.cell(d, s, InServerClone), r.cell(d, s, VeloCreate), ratio2(v.Median, c.Median)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Against PostgreSQL's in-server clone (median, min–max)\n\n| driver | size | %s | %s | velo / clone |\n|---|---|---|---|---|\n%s\n",
		InServerClone, VeloCreate, strings.Join(rows, "\n"))
}

// ratio2 is a/b with two decimals, for the import's goals (≤ 1.1×, ≤ 1.2×).
func ratio2(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// kB formats bytes in kB.
func kB(b int64) string { return fmt.Sprintf("%d kB", b>>10) }
