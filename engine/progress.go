package engine

import (
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// progressEvery is how often a progress line is logged while events flow.
const progressEvery = 30 * time.Second

// progress keeps the counts behind the periodic info line.
type progress struct {
	total     int64
	sinceLast int
	last      time.Time
	newest    time.Time
	caughtUp  bool
}

func (p *progress) add(log *logging.Logger, now time.Time, records int, newest time.Time, caughtUp bool) {
	p.total += int64(records)
	p.sinceLast += records
	if newest.After(p.newest) {
		p.newest = newest
	}
	if caughtUp && !p.caughtUp {
		log.Infof("caught up: %d events handed over so far, newest from %s", p.total, fmtTime(p.newest))
	}
	if caughtUp {
		p.caughtUp = true
	}
	if el := now.Sub(p.last); el >= progressEvery {
		if p.sinceLast > 0 {
			log.Infof("handed over %d events in %s (%.0f/s), %d in all, newest from %s",
				p.sinceLast, el.Round(time.Second), float64(p.sinceLast)/el.Seconds(), p.total, fmtTime(p.newest))
		}
		p.sinceLast, p.last = 0, now
	}
}

func (p *progress) final(log *logging.Logger) {
	log.Infof("stopped: %d events handed over in this run", p.total)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
