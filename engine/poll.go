package engine

import (
	"context"
	"time"
)

// Polls are timed to Fluent Bit's callbacks. Fluent Bit calls a Go input
// once a second, fixed (PROXY_CALLBACK_TIME in src/flb_plugin_proxy.c), so
// what a poll finds waits for the next callback: up to a second when the
// poll ends just after one. Ending a poll just before a callback instead,
// at most poll_interval after the last one, the newest events wait for
// the poll and the callback together about a second less at worst.

// Bounds of the callback period that polls are timed to: outside them
// Fluent Bit is not calling at a steady pace (paused, or a test), and a
// poll just waits poll_interval.
const (
	minCollectPeriod = 100 * time.Millisecond
	maxCollectPeriod = 5 * time.Second
	// pollMargin is added to the last poll's duration: the head start a
	// poll needs to have its records staged before the callback.
	pollMargin = 50 * time.Millisecond
)

// noteCollectLocked records a Collect call and the period of the calls.
func (e *Engine) noteCollectLocked() {
	now := e.opts.Now()
	if !e.lastCollect.IsZero() {
		if p := now.Sub(e.lastCollect); p >= minCollectPeriod && p <= maxCollectPeriod {
			e.collectPeriod = p
		} else {
			e.collectPeriod = 0
		}
	}
	e.lastCollect = now
}

// pollWait is the export source's wait between two polls once caught up
// (teleport.ExportSource.Wait): at most d, ending the last poll's
// duration (plus a margin) before a callback when one is due within d.
func (e *Engine) pollWait(ctx context.Context, d time.Duration) error {
	e.mu.Lock()
	wait := e.nextPollLocked(e.opts.Now(), d)
	e.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nextPollLocked is pollWait's wait from now, at most d, and notes it.
// A callback a poll was already timed to is not aimed at again: the poll
// after a long one is short, so that callback still looks a few
// milliseconds away, and a third poll would come just before it (each poll
// lists today's and yesterday's chunks: S3 LIST requests on Athena).
func (e *Engine) nextPollLocked(now time.Time, d time.Duration) time.Duration {
	lead := pollMargin
	if !e.pollWoke.IsZero() {
		lead += now.Sub(e.pollWoke)
	}
	wait, aim := alignedWait(now, e.lastCollect, e.collectPeriod, lead, d, e.pollAim)
	e.pollWoke = now.Add(wait)
	if !aim.IsZero() {
		e.pollAim = aim
	}
	return wait
}

// alignedWait is how long to wait, at most d, so that a poll lasting lead
// ends just before a callback, and that callback (zero if none): callbacks
// came every period, the last at last; the one at aimed (if any) a poll
// was timed to already. It waits d when no callback can be met within d,
// when the callbacks are not steady (period zero) or have stopped (the
// last is more than two periods old), or when lead is half a period or
// more.
func alignedWait(now, last time.Time, period, lead, d time.Duration, aimed time.Time) (time.Duration, time.Time) {
	if period <= 0 || last.IsZero() || now.Sub(last) > 2*period || lead >= period/2 {
		return d, time.Time{}
	}
	// The first callback at least lead from now and not aimed at yet, then
	// the latest one within d of that start.
	c := last.Add(period)
	for c.Sub(now) < lead || !aimed.IsZero() && c.Sub(aimed) < period/2 {
		c = c.Add(period)
	}
	if c.Sub(now)-lead > d {
		return d, time.Time{}
	}
	for c.Add(period).Sub(now)-lead <= d {
		c = c.Add(period)
	}
	return c.Sub(now) - lead, c
}
