package bench

import (
	"fmt"
	"io"
	"time"
)

// VeloStatusFleet is velo status --json with the fleet's branches mostly
// suspended by velo serve.
const VeloStatusFleet = "velo status --json, fleet suspended but the ones in use"

// Serve is what velo serve costs and saves on one driver: pgbench -S
// through the router against the same server directly, with a session
// per transaction too (-C); and the memory of a fleet of branches with a
// few in use and the rest suspended against the same fleet all running.
type Serve struct {
	Driver string `json:"driver"`
	SizeMB int    `json:"size_mb"`
	// Medians over the rounds of pgbench -S (and -S -C).
	DirectTPS     float64 `json:"direct_tps"`
	RouterTPS     float64 `json:"router_tps"`
	DirectConnTPS float64 `json:"direct_connect_tps"`
	RouterConnTPS float64 `json:"router_connect_tps"`
	// Branches is the fleet (main not counted), InUse those with a session
	// through the router while the rest were suspended.
	Branches int `json:"branches"`
	InUse    int `json:"in_use"`
	// RunningPSS is the PSS of every server of the project with the whole
	// fleet running and no velo serve; ServedPSS that of velo serve and the
	// servers still running once the idle ones were suspended; ServePSS
	// velo serve's own share of it.
	RunningPSS int64 `json:"running_pss_bytes"`
	ServedPSS  int64 `json:"served_pss_bytes"`
	ServePSS   int64 `json:"serve_pss_bytes"`
	// Suspend is how long velo serve took to suspend the idle ones.
	Suspend time.Duration `json:"suspend_ns"`
}

// serveTable writes velo serve's figures, if measured (goals: -S through
// the router ≥ 0.95× direct, -C ≥ 0.8×; the suspended fleet ≤ 15 % of the
// running one).
func (r *Report) serveTable(w io.Writer) {
	if len(r.Serves) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### velo serve: pgbench -S through the router against direct, and a fleet's memory\n\n")
	fmt.Fprintf(w, "| driver | size | -S direct TPS | -S router TPS | router / direct | -S -C direct | -S -C router | router / direct | fleet | all running PSS | in use + velo serve PSS | velo serve PSS | served / running | suspending took |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Serves {
		fmt.Fprintf(w, "| %s | %d MB | %.0f | %.0f | %s | %.0f | %.0f | %s | %d branches, %d in use | %s | %s | %s | %s | %s |\n",
			s.Driver, s.SizeMB, s.DirectTPS, s.RouterTPS, fraction(s.RouterTPS, s.DirectTPS), s.DirectConnTPS, s.RouterConnTPS,
			fraction(s.RouterConnTPS, s.DirectConnTPS), s.Branches, s.InUse, MB(s.RunningPSS), MB(s.ServedPSS), MB(s.ServePSS),
			fraction(float64(s.ServedPSS), float64(s.RunningPSS)), Dur(s.Suspend))
	}
	fmt.Fprintf(w, "\n| driver | %s | %s |\n|---|---|---|\n", VeloStatus, VeloStatusFleet)
	for _, s := range r.Serves {
		fmt.Fprintf(w, "| %s | %s | %s |\n", s.Driver, r.cell(s.Driver, s.SizeMB, VeloStatus), r.cell(s.Driver, s.SizeMB, VeloStatusFleet))
	}
}

// fraction is a/b with two decimals.
func fraction(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
