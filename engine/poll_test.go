package engine

import (
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPollsEndJustBeforeACallback(t *testing.T) {
	ms := time.Millisecond
	last := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // a callback; the next ones every second
	for _, tc := range []struct {
		name       string
		sinceLast  time.Duration // now - last
		period     time.Duration
		lead, poll time.Duration
		want       time.Duration
	}{
		{"callback within poll_interval: the poll ends lead before it", 600 * ms, time.Second, 100 * ms, 500 * ms, 300 * ms},
		{"no callback within poll_interval: poll_interval", 100 * ms, time.Second, 100 * ms, 500 * ms, 500 * ms},
		{"too close to the next callback: the one after, if within poll_interval", 950 * ms, time.Second, 100 * ms, 500 * ms, 500 * ms},
		{"too close, and a long poll_interval: the one after", 950 * ms, time.Second, 100 * ms, 5 * time.Second, 4950 * ms},
		{"long poll_interval: the latest callback within it", 200 * ms, time.Second, 100 * ms, 5 * time.Second, 4700 * ms},
		{"callbacks not steady: poll_interval", 600 * ms, 0, 100 * ms, 500 * ms, 500 * ms},
		{"callbacks stopped (paused): poll_interval", 2500 * ms, time.Second, 100 * ms, 500 * ms, 500 * ms},
		{"polls as long as half a period: poll_interval", 600 * ms, time.Second, 500 * ms, 500 * ms, 500 * ms},
		{"exactly reachable: waits all of poll_interval", 400 * ms, time.Second, 100 * ms, 500 * ms, 500 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := alignedWait(last.Add(tc.sinceLast), last, tc.period, tc.lead, tc.poll, time.Time{})
			assert.Equal(t, tc.want, got)
			assert.LessOrEqual(t, got, tc.poll, "never longer than poll_interval")
		})
	}
}

// Polls timed over many callbacks: poll_interval 500ms against one
// callback a second, polls taking 1 to 20 ms (as many chunks as came since
// the last, or none). Two polls a callback, the second ending just before
// it; before, a short poll after a long one aimed at the same callback
// again, a third poll a few milliseconds before it (measured: x.887 and
// x.902 for a callback at x.952), each one listing today's and
// yesterday's chunks.
func TestTwoPollsACallback(t *testing.T) {
	ms := time.Millisecond
	start := time.Date(2026, 12, 1, 0, 0, 0, 952*1000*1000, time.UTC) // a callback
	for _, phase := range []time.Duration{0, 130 * ms, 417 * ms, 510 * ms, 900 * ms, 990 * ms} {
		e := &Engine{collectPeriod: time.Second}
		rng := rand.New(rand.NewSource(int64(phase)))
		now := start.Add(phase)
		var ends []time.Time
		for now.Before(start.Add(20 * time.Second)) {
			e.lastCollect = start.Add(now.Sub(start).Truncate(time.Second))
			wait := e.nextPollLocked(now, 500*ms)
			require.LessOrEqual(t, wait, 500*ms)
			now = now.Add(wait)
			now = now.Add(ms + time.Duration(rng.Intn(20))*ms)
			ends = append(ends, now)
		}
		assert.InDelta(t, 40, len(ends), 2, "phase %v: polls in 20 s", phase)
		for c := start.Add(2 * time.Second); c.Before(start.Add(19 * time.Second)); c = c.Add(time.Second) {
			gap := time.Duration(-1)
			for _, p := range ends {
				if p.Before(c) {
					gap = c.Sub(p)
				}
			}
			assert.True(t, gap >= 0 && gap <= 2*pollMargin,
				"phase %v: the last poll before the callback at %v ended %v before it", phase, c.Sub(start), gap)
		}
	}
}
