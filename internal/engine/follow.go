package engine

import (
	"bufio"
	"context"
	"os"
	"strings"
	"time"

	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/state"
)

// catchingUp is the lag beyond which a streaming main is said to be
// catching up rather than streaming: a segment's worth of WAL.
const catchingUp = 16 << 20

// followView adds to v, p's source, how main follows it, read from
// main's server, when it does.
func (e *Engine) followView(ctx context.Context, p state.Project, v *SourceInfo) {
	s := p.Source
	if s == nil || v == nil {
		return
	}
	v.Following, v.Slot = s.Following, s.Slot
	if !s.Following {
		return
	}
	main, err := e.Store.Q().Branch(ctx, p.ID, MainBranch)
	if err != nil {
		return
	}
	spec, err := e.spec(ctx, p, main)
	if err == nil {
		if st, err := e.Runtime.Peek(ctx, spec); err == nil && st.State != runtime.Running {
			v.State = "stopped"
			v.Reason = "main's server is stopped; start it with velo branch start " + p.Name + "/main"
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := e.dial(ctx, p, main)
	if err != nil {
		v.State, v.Reason = "unknown", err.Error()
		return
	}
	defer c.Close(context.WithoutCancel(ctx))
	if s.Archive != "" {
		// Fed from the bucket: no walreceiver; the age of the last
		// commit replayed is how far behind the first host it may be.
		var secs *float64
		if err := c.QueryRow(ctx, `SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`).Scan(&secs); err != nil {
			v.State, v.Reason = "unknown", err.Error()
			return
		}
		v.State, v.LagSeconds = "replaying from "+s.Archive, secs
		return
	}
	var status, lastErr string
	var lag int64
	var secs *float64 // NULL: behind, but no commit replayed since main started
	err = c.QueryRow(ctx, `SELECT COALESCE((SELECT status FROM pg_stat_wal_receiver), ''),
		COALESCE(pg_wal_lsn_diff((SELECT latest_end_lsn FROM pg_stat_wal_receiver), pg_last_wal_replay_lsn()), 0)::bigint,
		CASE WHEN pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn()
		     THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) ELSE 0 END::float8`).Scan(&status, &lag, &secs)
	if err != nil {
		v.State, v.Reason = "unknown", err.Error()
		return
	}
	if lag < 0 {
		lag = 0
	}
	v.LagBytes, v.LagSeconds = &lag, secs
	switch {
	case status == "streaming" && lag > catchingUp:
		v.State = "catching up"
	case status == "streaming":
		v.State = "streaming"
	default:
		v.State = "disconnected"
		if lastErr = lastReceiverError(e.logFile(main)); lastErr != "" {
			v.Reason = lastErr
		} else {
			v.Reason = "main's walreceiver is not connected (" + orNone(status) + "); Postgres retries every few seconds"
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "no walreceiver"
	}
	return s
}

// lastReceiverError is the last error main's server logged about reaching
// its source, from the end of its log.
func lastReceiverError(logFile string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 256<<10 {
		_, _ = f.Seek(fi.Size()-256<<10, 0)
	}
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "could not connect to the primary server") || strings.Contains(l, "replication terminated by primary") ||
			strings.Contains(l, "could not receive data from WAL stream") || strings.Contains(l, "started streaming WAL") {
			last = l
		}
	}
	if strings.Contains(last, "started streaming WAL") {
		return ""
	}
	if i := strings.Index(last, "FATAL:"); i >= 0 {
		last = strings.TrimSpace(last[i+len("FATAL:"):])
	} else if i := strings.Index(last, "LOG:"); i >= 0 {
		last = strings.TrimSpace(last[i+len("LOG:"):])
	}
	return last
}
