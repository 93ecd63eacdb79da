package teleport

import (
	"context"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
)

// Teleport's audit backends answer a search each in their own way
// (docs/backends.md): DynamoDB and Firestore select whole seconds with both
// ends inclusive, Postgres and the file log both ends inclusive, Athena
// milliseconds; keys are resumed differently, some servers answer a page
// that makes no progress, the file log answers an unknown key with an empty
// last page. A chain follows the pages of one range [from, to) with rules
// that hold for all of them, so the plugin has no branch per backend:
//
//   - an event outside [from, to) by its own time is not this range's: the
//     range before or after has it (every backend selects a superset of the
//     half-open range, never less);
//   - the ids taken in the newest second are remembered, so a page or a
//     read that returns that second again hands nothing over twice;
//   - a page asked with a key that comes back with that same key made no
//     progress: it is asked again after a backoff, said once at warn and
//     counted (teleport_fluent_bit_search_stalled_pages_total);
//   - a page asked with a key that comes back empty and without a key may be
//     a server that no longer knows the key: the chain ends only once a read
//     by time from the newest second taken finds nothing new.
type chain struct {
	from, to int64 // unix ns, half-open
	// sec is the start of the second of the newest event taken (unix ns),
	// math.MinInt64 before the first; ids are those taken at or after it.
	sec int64
	ids map[seenKey]struct{}

	// found tells whether an event was taken since the last read by time.
	found bool
	// byTime is set while the chain reads by time after an empty last page.
	byTime bool

	what    string
	stalls  int
	warned  bool
	bo      *backoff.ExponentialBackOff
	log     *logging.Logger
	metrics *metrics.Metrics
}

func newChain(from, to time.Time, what string, log *logging.Logger, m *metrics.Metrics) *chain {
	return &chain{from: from.UnixNano(), to: to.UnixNano(), sec: math.MinInt64, ids: map[seenKey]struct{}{}, what: what, log: log, metrics: m}
}

// take tells whether the event k of a page is handed over: it is within
// the range and not taken already in the newest second.
func (c *chain) take(k seenKey) bool {
	if k.t < c.from || k.t >= c.to {
		return false
	}
	if k.t >= c.sec {
		if _, ok := c.ids[k]; ok {
			return false
		}
	}
	if s := k.t - mod(k.t, int64(time.Second)); s > c.sec {
		c.sec = s
		for o := range c.ids {
			if o.t < s {
				delete(c.ids, o)
			}
		}
	}
	if k.t >= c.sec {
		c.ids[k] = struct{}{}
	}
	c.found = true
	return true
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// step is what to do after a page.
type step int

const (
	stepNext   step = iota // ask with the page's key
	stepByTime             // read by time from resumeFrom, without a key
	stepDone               // the range is read
)

// stalled tells whether a page asked with key that came back with next
// made no progress: asked again, the server would answer the same. Its
// events are not taken (they come again once the server moves on).
func (c *chain) stalled(key, next string) bool {
	return next != "" && next == key
}

// after decides the next request after a page asked with key that had n
// events (before clipping) and next as its key; the caller has taken the
// page's events.
func (c *chain) after(key, next string, n int) step {
	c.progressed()
	switch {
	case next != "":
		return stepNext
	case key != "" && n == 0 && (!c.byTime || c.found):
		// Empty and keyless after a key: the end, or a key the server no
		// longer knows (lib/events/filelog.go answers so). Read by time.
		c.byTime, c.found = true, false
		return stepByTime
	default:
		return stepDone
	}
}

// resumeFrom is where a read by time starts: the newest second taken (its
// events are skipped by id), or the range's start.
func (c *chain) resumeFrom() time.Time {
	return time.Unix(0, max(c.from, c.sec)).UTC()
}

// stall waits before a page that made no progress is asked again.
func (c *chain) stall(ctx context.Context, key string) error {
	c.stalls++
	c.metrics.StalledPage()
	if c.bo == nil {
		c.bo = retry()
	}
	d := c.bo.NextBackOff()
	if !c.warned {
		c.warned = true
		c.log.Warnf("search: the Auth Service answered a page of %s with the key it was asked with (%s): no progress; asking again with backoff until it moves on", c.what, shortKey(key))
	} else {
		c.log.Debugf("search: no progress on %s again (%d), next try in %s", c.what, c.stalls, d.Round(time.Millisecond))
	}
	return sleep(ctx, d)
}

func (c *chain) progressed() {
	if c.stalls > 0 {
		c.log.Infof("search: %s goes on after %d page(s) without progress", c.what, c.stalls)
		c.stalls = 0
		c.bo.Reset()
	}
}

// shortKey keeps log lines short: keys can be long JSON.
func shortKey(k string) string {
	if len(k) > 80 {
		return k[:80] + "..."
	}
	return k
}

// rangeName names a searched range in log lines.
func rangeName(from, to time.Time) string {
	return "the window from " + from.UTC().Format(time.RFC3339Nano) + " to " + to.UTC().Format(time.RFC3339Nano)
}
