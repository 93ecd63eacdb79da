package main

import (
	"fmt"
	"strings"
	"time"
)

type bareResult struct {
	n       int64
	wall    time.Duration
	cpu     time.Duration // the client (this process)
	authCPU time.Duration // the stand-in
}

func (b *bareResult) rate() float64 { return float64(b.n) / b.wall.Seconds() }

func (b *bareResult) String() string {
	return fmt.Sprintf("%d events in %v: %.0f events/s; client CPU %.1f s/M events, stand-in CPU %.1f s/M events",
		b.n, b.wall.Round(time.Millisecond), b.rate(), perM(b.cpu, b.n), perM(b.authCPU, b.n))
}

func (d *drainResult) rate() float64 { return float64(d.n) / d.wall.Seconds() }

// allRate counts recording events too: every record handed over.
func (d *drainResult) allRate() float64 { return float64(d.n+d.sessions) / d.wall.Seconds() }

func (d *drainResult) String() string {
	if d.timedOut {
		return fmt.Sprintf("TIMED OUT after %v: %d of %d events (+%d recording events), %.0f events/s, %d callbacks, largest %d records; host CPU %.1f s/M events; peak RSS %s",
			d.wall.Round(time.Second), d.n, d.want, d.sessions, d.rate(), d.callbacks, d.maxBatch, perM(d.cpu, max(d.n, 1)), mb(d.hwm))
	}
	return fmt.Sprintf("%d events (+%d recording events handed over, ~%d streamed) in %v: %.0f events/s (steady %.0f/s, %d callbacks, largest %d records); host CPU %.1f s/M events, stand-in CPU %.1f s/M events; peak RSS %s",
		d.n, d.sessions, d.streamed, d.wall.Round(time.Millisecond), d.rate(), d.steadyRate, d.callbacks, d.maxBatch,
		perM(d.cpu, d.n), perM(d.authCPU, d.n), mb(d.hwm))
}

func perM(d time.Duration, n int64) float64 { return d.Seconds() / float64(n) * 1e6 }

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

type results struct {
	c       *config
	machine string
	bare    *bareResult
	plugin  *drainResult
	// ceiling is the plugin at the ceiling settings (larger callbacks).
	ceiling *drainResult
	// athena is the plugin on a stand-in in Athena mode (late chunks,
	// repeated events, rows out of order).
	athena *drainResult
	audit  *auditPathResult
	// auditLimited is the audit path under a Go soft memory limit.
	auditLimited *auditPathResult
	rss          *drainResult
	baseline     *baselineResult
	fresh        *freshResult
	restart      *restartResult
	search       *searchResult
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func count(n int64) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

func rateStr(r float64) string { return count(int64(r+0.5)) + "/s" }

// table is the result table in Markdown, with the settings and machine.
func (r *results) table() string {
	c := r.c
	var b strings.Builder
	fmt.Fprintf(&b, "N = %s events (stand-in: build/teleportd, separate process, gRPC + mTLS), concurrency %d, callback_bytes %s, queue_bytes %s\n",
		count(c.n), c.concurrency, c.callbackBytes, c.queueBytes)
	fmt.Fprintf(&b, "machine: %s\n\n", r.machine)
	b.WriteString("| measure | result | target | met |\n|---|---|---|---|\n")
	row := func(what, result, target, met string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", what, result, target, met)
	}
	if p := r.plugin; p != nil {
		res := fmt.Sprintf("%s (%s events in %.1f s; steady %s; %s recording events alongside)", rateStr(p.rate()), count(p.n), p.wall.Seconds(), rateStr(p.steadyRate), count(p.sessions))
		if p.timedOut {
			res = fmt.Sprintf("%s (timed out: %s of %s events in %.0f s)", rateStr(p.rate()), count(p.n), count(p.want), p.wall.Seconds())
		}
		row("plugin in the Fluent Bit stand-in (1 s collector, discarding sink), from process start",
			res, "≥ 100,000/s", verdict(p.rate() >= 100_000 && !p.timedOut))
		if !p.timedOut {
			row("the same run counting every record handed over (audit and recording events)",
				fmt.Sprintf("%s (%s records in %.1f s)", rateStr(p.allRate()), count(p.n+p.sessions), p.wall.Seconds()),
				"≥ 100,000/s", verdict(p.allRate() >= 100_000))
			if p.streamed > 0 {
				row("the same run counting every event read from Teleport (recording events dropped by skip_session_types included)",
					fmt.Sprintf("%s (%s audit + ~%s recording events in %.1f s)", rateStr(float64(p.n+p.streamed)/p.wall.Seconds()), count(p.n), count(p.streamed), p.wall.Seconds()),
					"", "")
			}
		}
		row("plugin CPU (host process) per million events", fmt.Sprintf("%.1f s (stand-in: %.1f s)", perM(p.cpu, p.n), perM(p.authCPU, p.n)), "", "")
	}
	if q := r.ceiling; q != nil {
		res := fmt.Sprintf("%s (steady %s, largest callback %s records; CPU %.1f s/M; peak RSS %s)", rateStr(q.rate()), rateStr(q.steadyRate), count(q.maxBatch), perM(q.cpu, q.n), mb(q.hwm))
		if q.timedOut {
			res = fmt.Sprintf("%s (timed out: %s of %s events in %.0f s; peak RSS %s)", rateStr(q.rate()), count(q.n), count(q.want), q.wall.Seconds(), mb(q.hwm))
		}
		row(fmt.Sprintf("the same at callback_bytes %s, queue_bytes %s: the rate ceiling, with chunks as large as a second of records", c.ceilingCallback, c.ceilingQueue), res, "", "")
	}
	if a := r.athena; a != nil {
		res := fmt.Sprintf("%s (%s distinct events in %.1f s; %s recording events alongside)", rateStr(a.rate()), count(a.n), a.wall.Seconds(), count(a.sessions))
		if a.timedOut {
			res = fmt.Sprintf("%s (timed out: %s of %s events in %.0f s)", rateStr(a.rate()), count(a.n), count(a.want), a.wall.Seconds())
		}
		row("the same on a stand-in in Athena mode (--backend athena: rows out of time order, 1% of events stored twice and dropped, the last chunk of each past day 1 s late), from process start",
			res, "", "")
	}
	if a := r.audit; a != nil {
		cb, _ := c.auditSettings()
		row(fmt.Sprintf("audit path alone: the plugin's export source, queue, copy and commit, no recordings (own process, 1 s takes, callback_bytes %s)", cb),
			fmt.Sprintf("%s (steady %s; CPU %.1f s/M; peak RSS %s)", rateStr(a.rate()), rateStr(a.Steady), a.CPUS/float64(a.N)*1e6, mb(a.HWM)),
			"", "")
	}
	if a := r.auditLimited; a != nil {
		row(fmt.Sprintf("the same with GOMEMLIMIT=%s", r.c.auditMemLimit),
			fmt.Sprintf("%s (steady %s; CPU %.1f s/M; peak RSS %s)", rateStr(a.rate()), rateStr(a.Steady), a.CPUS/float64(a.N)*1e6, mb(a.HWM)),
			"", "")
	}
	if bd := r.bare; bd != nil {
		row("bare drain: plain teleport/api client, same chunks and concurrency, discarding",
			fmt.Sprintf("%s (client CPU %.1f s/M, stand-in %.1f s/M)", rateStr(bd.rate()), perM(bd.cpu, bd.n), perM(bd.authCPU, bd.n)), "", "")
		if p := r.plugin; p != nil {
			ratio := p.rate() / bd.rate()
			row("plugin / bare drain", fmt.Sprintf("%.0f%%", 100*ratio), "≥ 50%", verdict(ratio >= 0.5))
		}
		if a := r.audit; a != nil {
			row("audit path alone / bare drain", fmt.Sprintf("%.0f%%", 100*a.rate()/bd.rate()), "", "")
		}
	}
	if bl := r.baseline; bl != nil {
		row("Event-Handler-style baseline: one HTTPS+mTLS POST per event, serially, local receiver",
			fmt.Sprintf("%s (%s events in %.1f s)", rateStr(bl.rate()), count(int64(bl.n)), bl.wall.Seconds()), "", "")
		if p := r.plugin; p != nil {
			ratio := p.rate() / bl.rate()
			row("plugin / baseline", fmt.Sprintf("%.1f×", ratio), "≥ 100×", verdict(ratio >= 100))
		}
	}
	if p := r.plugin; p != nil {
		res := fmt.Sprintf("%s at %s events", mb(p.hwm), count(p.n))
		ok := p.hwm <= 150e6
		target := "≤ 150 MB"
		if q := r.rss; q != nil {
			if q.timedOut {
				res += fmt.Sprintf(", %s at %s (of %s: timed out after %.0f s)", mb(q.hwm), count(q.n), count(q.want), q.wall.Seconds())
			} else {
				res += fmt.Sprintf(", %s at %s", mb(q.hwm), count(q.n))
			}
			lo, hi := min(p.hwm, q.hwm), max(p.hwm, q.hwm)
			ok = ok && !q.timedOut && hi <= 150e6 && float64(hi-lo) <= 0.1*float64(hi)
			target += ", flat (within 10%)"
		}
		row("peak RSS of the host process (VmHWM)", res, target, verdict(ok))
	}
	if f := r.fresh; f != nil {
		row(fmt.Sprintf("freshness, write to ingest (%.0f events/s live, poll_interval %s), p50 / p99", f.rate, f.poll),
			fmt.Sprintf("%.2f s / %.2f s (max %.2f s, %s events)", f.p50.Seconds(), f.p99.Seconds(), f.max.Seconds(), count(int64(f.events))),
			"p99 ≤ 1.5 s", verdict(f.p99 <= 1500*time.Millisecond && f.missing == 0))
	}
	if rs := r.restart; rs != nil {
		row(fmt.Sprintf("restart to first record (state: %d chunk cursors, %s recordings in progress, %s; collector every %v)", rs.cursors, count(int64(rs.sessions)), kb(rs.stateBytes), rs.interval),
			fmt.Sprintf("%.2f s (Init done at %.2f s)", rs.first.Seconds(), rs.ready.Seconds()), "≤ 1 s", verdict(rs.first <= time.Second))
	}
	if s := r.search; s != nil {
		fmt.Fprintf(&b, "\n%s\n\n| measure | result | target | met |\n|---|---|---|---|\n", s.header())
		s.rows(row)
	}
	return b.String()
}

func kb(n int64) string { return fmt.Sprintf("%.0f KB", float64(n)/1e3) }
