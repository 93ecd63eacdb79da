package engine

import (
	"fmt"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
)

// progress keeps the counts behind the periodic info line, and the backlog
// state: catching up until a source has fetched everything and it is handed
// over; behind again when what is handed over is old.
type progress struct {
	log         *logging.Logger
	m           *metrics.Metrics
	every       time.Duration
	behindAfter time.Duration

	total     int64
	sinceLast int
	last      time.Time
	newest    time.Time // newest audit event handed over
	caughtUp  bool
}

// batch is what one commit handed over.
type batch struct {
	audit, session int
	bytes          int
	newestAudit    time.Time
	caughtUp       bool // everything fetched so far is handed over, recordings included
	announces      int  // announcements of sessions not in the state when staged (hold-back)
}

// merge adds o's counts to b.
func (b *batch) merge(o batch) {
	b.audit += o.audit
	b.session += o.session
	b.bytes += o.bytes
	b.announces += o.announces
	if o.newestAudit.After(b.newestAudit) {
		b.newestAudit = o.newestAudit
	}
}

// add accounts for one hand-over; fellBehind reports the switch from
// caught up to catching up.
func (p *progress) add(now time.Time, b batch, st *cursor.State, inFlight, known int) (fellBehind bool) {
	n := b.audit + b.session
	p.total += int64(n)
	p.sinceLast += n
	if b.newestAudit.After(p.newest) {
		p.newest = b.newestAudit
	}
	p.m.HandedOver(b.audit, b.session, b.bytes, b.newestAudit)
	p.m.Sessions(known, inFlight)
	switch {
	case b.caughtUp && !p.caughtUp:
		p.caughtUp = true
		p.m.CaughtUp(true)
		p.log.Infof("caught up: %d events handed over in this run, newest from %s; polling for new events", p.total, fmtTime(p.newest))
	case p.caughtUp && !b.newestAudit.IsZero() && now.Sub(b.newestAudit) > p.behindAfter:
		p.caughtUp = false
		p.m.CaughtUp(false)
		p.log.Infof("falling behind: the newest events handed over are %s old; catching up", now.Sub(b.newestAudit).Round(time.Second))
		fellBehind = true
	}
	if el := now.Sub(p.last); el >= p.every {
		if p.sinceLast > 0 {
			p.log.Infof("handed over %d events in %s (%.0f/s), %d in this run; exporting %s; newest from %s; %d recordings in flight, %d pending",
				p.sinceLast, el.Round(time.Second), float64(p.sinceLast)/el.Seconds(), p.total, where(st), fmtTime(p.newest), inFlight, known-inFlight)
		}
		p.sinceLast, p.last = 0, now
	}
	return fellBehind
}

// where names the day or window being exported.
func where(st *cursor.State) string {
	switch {
	case st.Mode == cursor.ModeExport && st.Export != nil:
		// Days stay open for export_late_horizon: name the oldest with
		// chunks in progress rather than the oldest open one.
		busy := ""
		for day, d := range st.Export.Days {
			if d != nil && len(d.Cursors) > 0 && (busy == "" || day < busy) {
				busy = day
			}
		}
		if busy != "" {
			return "day " + busy
		}
		return "the days from " + st.Export.NextDay + " (open for late chunks)"
	case st.Mode == cursor.ModeSearch && st.Search != nil:
		return fmt.Sprintf("the window from %s", st.Search.WindowStart.Format(time.RFC3339))
	default:
		return "from " + st.StartTime.Format(time.RFC3339)
	}
}

func (p *progress) final() {
	p.log.Infof("stopped: %d events handed over in this run", p.total)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
