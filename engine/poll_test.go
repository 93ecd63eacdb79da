package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
			got := alignedWait(last.Add(tc.sinceLast), last, tc.period, tc.lead, tc.poll)
			assert.Equal(t, tc.want, got)
			assert.LessOrEqual(t, got, tc.poll, "never longer than poll_interval")
		})
	}
}
