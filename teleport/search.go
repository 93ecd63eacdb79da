package teleport

import (
	"context"
	"sync"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// SearchSource reads audit events with SearchUnstructuredEvents (or, from
// servers without it, SearchEvents: legacy.go), for Auth Services without
// the bulk export API. It pages through windows of
// WindowSize in ascending order; the cursor is the window, the start key of
// the current page and the id of the last event taken from it.
type SearchSource struct {
	API        AuditLog
	Filter     *Filter
	Types      []string // passed to the server; Filter applies them again
	Batch      int
	WindowSize time.Duration
	Poll       time.Duration
	Log        *logging.Logger
	Now        func() time.Time
	// Settle keeps a window open this long past its end: events are stored
	// with their own time, a little after it, and one landing in a window
	// already closed would never be searched again.
	Settle  time.Duration
	Metrics *metrics.Metrics
	// Compat is shared by the sources of one connection (legacy.go); nil
	// gets one of its own.
	Compat *Compat

	compatOnce sync.Once
}

// Run exports from st (the source's working copy) until ctx ends; failures
// are retried with backoff.
func (s *SearchSource) Run(ctx context.Context, st *cursor.Search, sink Sink) error {
	f := newFailures(s.Log, "searching events", s.Metrics, metrics.ErrSearch)
	for {
		now := s.Now().UTC()
		end := st.WindowStart.Add(s.WindowSize)
		closed := !end.After(now.Add(-s.Settle)) // the whole window is in the past, settled
		current := end.After(now)                // the window holds the present
		if current {
			end = now
		}
		if st.WindowStart.After(now) {
			if err := sleep(ctx, s.Poll); err != nil {
				return err
			}
			continue
		}
		events, next, err := s.search(ctx, st.WindowStart, end, st.Key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := f.fail(ctx, err); err != nil {
				return err
			}
			continue
		}
		f.ok()

		// Resuming inside a page: skip what was already taken from it.
		skip := 0
		if st.LastID != "" {
			skip = -1
			for i, ev := range events {
				if ev.GetId() == st.LastID {
					skip = i + 1
					break
				}
			}
			if skip < 0 {
				// Never skip ahead: re-sending a page beats losing one.
				s.Log.Warnf("search: event %s, where the cursor stopped, is no longer on its page; exporting the page again from its start (duplicates possible)", st.LastID)
				skip = 0
			}
		}
		for _, ev := range events[skip:] {
			it := encode(ev, s.Filter, s.Log)
			it.Pos = cursor.Pos{Kind: cursor.PosSearch, WindowStart: st.WindowStart, Key: st.Key, ID: ev.GetId()}
			if err := sink.Put(ctx, it); err != nil {
				return err
			}
			st.LastID = ev.GetId()
		}
		if next != "" {
			st.Key, st.LastID = next, ""
			continue
		}
		if closed {
			st.WindowStart, st.Key, st.LastID = end, "", ""
			if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosWindowDone, WindowStart: end}}); err != nil {
				return err
			}
			s.Log.Debugf("search: window up to %s done", end.Format(time.RFC3339))
			continue
		}
		// Caught up only in the window that holds the present: a window
		// that ended and is settling has a next one to read.
		if current {
			if err := sink.Put(ctx, record.Item{CaughtUp: true}); err != nil {
				return err
			}
		}
		if err := sleep(ctx, s.Poll); err != nil {
			return err
		}
	}
}
