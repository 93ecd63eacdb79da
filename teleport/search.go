package teleport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// SearchSource reads audit events with SearchUnstructuredEvents, for Auth
// Services without the bulk export API. Its pages are keyset-paginated by
// (time, id): an event stored after the search went past its place is never
// on a later page. So the search works in two ways:
//
//   - the backlog, everything older than two search_late_tolerance, is cut
//     into windows of WindowSize (aligned on multiples of it, so 24h windows
//     are UTC days) searched Concurrency at a time with the largest pages
//     Teleport serves, each window resumable on its own;
//   - once caught up, every poll reads from the frontier (about one
//     tolerance ago) to now again with pages of Batch, and skips what it
//     handed over already: an event stored up to LateTolerance after its
//     time is exported exactly once. The ids handed over since the frontier
//     are part of the cursor.
//
// Events stored later than that are looked for once more, a tolerance
// later, and exported out of order when found (counted in
// teleport_fluent_bit_search_late_events_total); later still, they are
// missed.
type SearchSource struct {
	API         AuditLog
	Filter      *Filter
	Types       []string // passed to the server; Filter applies them again
	Batch       int      // page size once caught up
	WindowSize  time.Duration
	Concurrency int // backlog windows searched at once
	Poll        time.Duration
	// LateTolerance is how long after its time an event may be stored and
	// still be exported exactly once (search_late_tolerance).
	LateTolerance time.Duration
	Log           *logging.Logger
	Now           func() time.Time
	Metrics       *metrics.Metrics
	// Compat is shared by the sources of one connection (legacy.go); nil
	// gets one of its own.
	Compat *Compat

	compatOnce sync.Once

	// seen are the events handed over at or after the frontier; expired
	// those the frontier has passed, kept in memory for the late check of
	// the span from checkedTo to one tolerance before the frontier.
	seen      map[seenKey]struct{}
	expired   map[seenKey]struct{}
	checkedTo time.Time
	warnedCap bool
	// tail is the first page of the poll that follows a backlog round,
	// read while the round's windows are (see backlog).
	tail <-chan tailPage
}

// tailPage is the first page of [from, to), read ahead of a poll.
type tailPage struct {
	from, to time.Time
	events   []*auditlogpb.EventUnstructured
	next     string
	err      error
}

// maxPage is the largest page Teleport serves (defaults.EventsMaxIterationLimit;
// its backends also stop a page at 1 MiB of events, events.MaxEventBytesInResponse).
const maxPage = cursor.MaxSearchLimit

// maxWindowsAhead bounds the windows of one backlog round, so the cursor
// (which holds the windows done ahead of a slow one) stays small.
const maxWindowsAhead = cursor.MaxWindows / 2

// seenKey identifies an event handed over: its id and time (a server with
// reused ids still has its events told apart by time).
type seenKey struct {
	id string
	t  int64
}

// Run exports from st (the source's working copy) until ctx ends; failures
// are retried with backoff.
func (s *SearchSource) Run(ctx context.Context, st *cursor.Search, sink Sink) error {
	if st.Key != "" || st.LastID != "" {
		// A version 1 position: the window at WindowStart, read with pages
		// of batch events; finish it as the first backlog window.
		end := st.WindowStart.Add(s.WindowSize)
		if now := s.Now().UTC(); end.After(now) {
			end = now
		}
		if end.After(st.WindowStart) && (len(st.Windows) == 0 || !st.Windows[0].Start.Before(end)) {
			st.Windows = append([]*cursor.Window{{Start: st.WindowStart, End: end, Key: st.Key, LastID: st.LastID, Limit: s.Batch}}, st.Windows...)
		}
		st.Key, st.LastID = "", ""
	}
	s.seen = make(map[seenKey]struct{}, len(st.Seen))
	for _, e := range st.Seen {
		s.seen[seenKey{e.ID, e.Time.UnixNano()}] = struct{}{}
	}
	// The frontier first: a new search position starts where this one does.
	if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosSearchFrontier, WindowStart: st.WindowStart}}); err != nil {
		return err
	}
	tail := false
	for {
		now := s.Now().UTC()
		if len(st.Windows) > 0 || st.WindowStart.Before(now.Add(-2*s.LateTolerance)) {
			tail, s.expired = false, nil
			if err := s.backlog(ctx, st, now.Add(-s.LateTolerance), sink); err != nil {
				return err
			}
			continue
		}
		if !tail {
			// The late check covers what this process saw leave the tolerance.
			tail, s.checkedTo, s.expired = true, st.WindowStart, map[seenKey]struct{}{}
		}
		if err := s.poll(ctx, st, now, sink); err != nil {
			return err
		}
		if err := sink.Put(ctx, record.Item{CaughtUp: true}); err != nil {
			return err
		}
		if err := sleep(ctx, s.Poll); err != nil {
			return err
		}
	}
}

// backlog searches the windows from the frontier up to until (settled:
// every event of it is stored), Concurrency at a time, and moves the
// frontier to the end of the last one.
func (s *SearchSource) backlog(ctx context.Context, st *cursor.Search, until time.Time, sink Sink) error {
	plan := s.plan(st, until)
	if len(plan) == 0 {
		st.Windows = nil
		return nil
	}
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, max(1, s.Concurrency))
	)
	s.readTailAhead(ctx, plan, until, sem)
	for _, w := range plan {
		if w.Done {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(w cursor.Window) {
			defer wg.Done()
			defer func() { <-sem }()
			_ = s.searchWindow(ctx, w, sink)
		}(*w)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.advance(st, plan[len(plan)-1].End)
	st.Windows = nil
	s.Log.Debugf("search: backlog searched up to %s", st.WindowStart.Format(time.RFC3339))
	return nil
}

// readTailAhead starts the first page of the poll that follows this round
// when the round reaches until and leaves a search slot free: read now,
// it is what a poll at this moment reads, and the last events of a backlog
// do not wait for the round before their search begins.
func (s *SearchSource) readTailAhead(ctx context.Context, plan []*cursor.Window, until time.Time, sem chan struct{}) {
	s.tail = nil
	busy := 0
	for _, w := range plan {
		if !w.Done {
			busy++
		}
	}
	if busy >= cap(sem) || !plan[len(plan)-1].End.Equal(until) {
		return
	}
	now := s.Now().UTC()
	if !until.Before(now) {
		return
	}
	sem <- struct{}{} // a free slot: the windows take the others
	ch := make(chan tailPage, 1)
	s.tail = ch
	go func() {
		defer func() { <-sem }()
		limit := s.Batch
		events, next, err := s.page(ctx, newFailures(s.Log, "searching events", s.Metrics, metrics.ErrSearch), until, now, &limit, "")
		ch <- tailPage{from: until, to: now, events: events, next: next, err: err}
	}()
}

// plan lists the windows from the frontier to until: those of the cursor as
// they are, the gaps cut at multiples of WindowSize.
func (s *SearchSource) plan(st *cursor.Search, until time.Time) []*cursor.Window {
	stored := append([]*cursor.Window(nil), st.Windows...)
	sort.Slice(stored, func(i, j int) bool { return stored[i].Start.Before(stored[j].Start) })
	var plan []*cursor.Window
	at, i := st.WindowStart, 0
	for len(plan) < maxWindowsAhead && (at.Before(until) || i < len(stored)) {
		if i < len(stored) && !stored[i].Start.After(at) {
			if stored[i].End.After(at) {
				plan = append(plan, stored[i])
				at = stored[i].End
			}
			i++
			continue
		}
		end := at.Truncate(s.WindowSize).Add(s.WindowSize)
		if i < len(stored) && end.After(stored[i].Start) {
			end = stored[i].Start
		}
		if i == len(stored) && end.After(until) {
			end = until
		}
		if !end.After(at) {
			break
		}
		plan = append(plan, &cursor.Window{Start: at, End: end})
		at = end
	}
	return plan
}

// searchWindow pages through one backlog window from its position to its
// end. It returns once the window's end is queued, or with ctx's error.
func (s *SearchSource) searchWindow(ctx context.Context, w cursor.Window, sink Sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lastID := w.LastID
	for p := range s.pages(ctx, w) {
		if p.err != nil {
			return p.err
		}
		items, skip := p.items, 0
		if lastID != "" && len(items) > 0 {
			// Resuming inside a page: skip what was already taken from it.
			skip = -1
			for i := range items {
				if items[i].id == lastID {
					skip = i + 1
					break
				}
			}
			if skip < 0 {
				// Never skip ahead: re-sending a page beats losing one.
				s.Log.Warnf("search: event %s, where the cursor stopped, is no longer on its page; exporting the page again from its start (duplicates possible)", lastID)
				skip = 0
			}
			lastID = ""
		}
		for i := range items[skip:] {
			pi := &items[skip+i]
			if _, ok := s.seen[pi.key]; ok {
				continue // handed over while caught up, before a long stop
			}
			it := pi.it
			it.Pos = cursor.Pos{Kind: cursor.PosSearch, WindowStart: w.Start, End: w.End, Key: p.key, ID: pi.id, Index: int64(p.limit)}
			if err := sink.Put(ctx, it); err != nil {
				return err
			}
		}
		if p.done {
			return sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosWindowDone, WindowStart: w.Start, End: w.End}})
		}
	}
	return ctx.Err()
}

// windowPage is one page of a backlog window, asked from key with limit,
// its events turned into items.
type windowPage struct {
	items     []pageItem
	key, next string
	limit     int
	done      bool // the window's last page
	err       error
}

// pages reads a window's pages one after another from its position, one
// page ahead of the caller: the next page is on its way while this one's
// records are queued (each call costs the server a read of the window's
// days, so the wait for it is the window's pace). The channel closes after
// the last page, or after a page with ctx's error.
func (s *SearchSource) pages(ctx context.Context, w cursor.Window) <-chan windowPage {
	out := make(chan windowPage) // unbuffered: one page read ahead, no more
	go func() {
		defer close(out)
		what := rangeName(w.Start, w.End)
		f := newFailures(s.Log, "searching "+what, s.Metrics, metrics.ErrSearch)
		c := newChain(w.Start, w.End, what, s.Log, s.Metrics)
		limit := w.Limit
		if limit <= 0 {
			limit = maxPage
		}
		key, from := w.Key, w.Start
		var sl slab
		for {
			// page shrinks limit when a response is too large: p.limit is
			// what this page was read with, for a resume inside it.
			items, next, err := s.windowPage(ctx, f, from, w.End, &limit, key, &sl)
			if err == nil && c.stalled(key, next) {
				if err := c.stall(ctx, key); err != nil {
					return
				}
				continue
			}
			n := len(items)
			kept := items[:0]
			for _, it := range items {
				if c.take(it.key) {
					kept = append(kept, it)
				}
			}
			st := stepDone
			if err == nil {
				st = c.after(key, next, n)
			}
			p := windowPage{items: kept, key: key, next: next, limit: limit, done: err == nil && st == stepDone, err: err}
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
			if err != nil || st == stepDone {
				return
			}
			if st == stepByTime {
				key, from = "", c.resumeFrom()
			} else {
				key = next
			}
			if limit < maxPage {
				limit = min(2*limit, maxPage) // a page too large shrank it; try larger again
			}
		}
	}()
	return out
}

// windowPage reads one page of a backlog window, raw where it can
// (searchRaw), retrying like page.
func (s *SearchSource) windowPage(ctx context.Context, f *failures, from, to time.Time, limit *int, key string, sl *slab) (items []pageItem, next string, err error) {
	err = s.retryPage(ctx, f, limit, func(l int) error {
		frames, n, ok, err := s.searchRaw(ctx, from, to, l, key)
		if !ok {
			var events []*auditlogpb.EventUnstructured
			events, n, err = s.search(ctx, from, to, l, key)
			items = s.typedItems(events)
		} else if err == nil {
			items, err = s.rawItems(frames, sl)
		}
		next = n
		return err
	})
	return items, next, err
}

// poll reads from the frontier to now, hands over what it has not handed
// over yet, and moves the frontier to one tolerance before now: every
// event older than that was stored before this read began.
func (s *SearchSource) poll(ctx context.Context, st *cursor.Search, now time.Time, sink Sink) error {
	from := st.WindowStart
	var first *tailPage
	if s.tail != nil {
		if p := <-s.tail; p.err == nil && p.from.Equal(from) {
			first, now = &p, p.to // this poll is the one read ahead
		}
		s.tail = nil
	}
	if !from.Before(now) {
		return nil // a start_time in the future
	}
	err := s.read(ctx, from, now, s.Batch, first, func(ev *auditlogpb.EventUnstructured) error {
		k := keyOf(ev)
		if _, ok := s.seen[k]; ok {
			return nil
		}
		s.seen[k] = struct{}{}
		it := encode(ev, s.Filter, s.Log)
		it.Pos = cursor.Pos{Kind: cursor.PosSeen, ID: k.id, WindowStart: time.Unix(0, k.t).UTC()}
		return sink.Put(ctx, it)
	})
	if err != nil {
		return err
	}
	to := now.Add(-s.LateTolerance)
	if len(s.seen) > cursor.MaxSeen {
		// More events within the tolerance than the cursor keeps: forget
		// the oldest rather than grow without bound.
		ts := make([]int64, 0, len(s.seen))
		for k := range s.seen {
			ts = append(ts, k.t)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] > ts[j] })
		if t := time.Unix(0, ts[cursor.MaxSeen-1]).UTC(); t.After(to) {
			to = t
		}
		if !s.warnedCap {
			s.warnedCap = true
			s.Log.Warnf("search: more than %d events within search_late_tolerance (%s); the tolerance is shortened to %s to keep the cursor bounded", cursor.MaxSeen, s.LateTolerance, now.Sub(to).Round(time.Second))
		}
	}
	if !to.After(st.WindowStart) {
		return nil
	}
	if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosSearchFrontier, WindowStart: to}}); err != nil {
		return err
	}
	s.advance(st, to)
	return s.lateCheck(ctx, st, now, sink)
}

// advance moves the working copy's frontier to to: the ids seen before it
// are no longer needed to skip, only for the late check.
func (s *SearchSource) advance(st *cursor.Search, to time.Time) {
	if to.After(st.WindowStart) {
		st.WindowStart = to
	}
	for k := range s.seen {
		if k.t < st.WindowStart.UnixNano() {
			delete(s.seen, k)
			if s.expired != nil {
				s.expired[k] = struct{}{}
			}
		}
	}
	st.Seen = nil // the working copy skips with s.seen
}

// lateCheck reads the span that left the tolerance a tolerance ago, once
// that span is a quarter tolerance (or a poll) long: an event there that was
// never handed over was stored later than the tolerance. It is exported
// now, out of order, and counted; it is not part of the cursor, so a
// restart before it is committed loses it again.
func (s *SearchSource) lateCheck(ctx context.Context, st *cursor.Search, now time.Time, sink Sink) error {
	to := st.WindowStart.Add(-s.LateTolerance)
	if to.Sub(s.checkedTo) < max(s.LateTolerance/4, s.Poll) {
		return nil
	}
	var late []*auditlogpb.EventUnstructured
	err := s.read(ctx, s.checkedTo, to, maxPage, nil, func(ev *auditlogpb.EventUnstructured) error {
		k := keyOf(ev)
		if _, ok := s.expired[k]; ok {
			return nil
		}
		if _, ok := s.seen[k]; ok {
			return nil
		}
		s.expired[k] = struct{}{}
		late = append(late, ev)
		it := encode(ev, s.Filter, s.Log)
		return sink.Put(ctx, it)
	})
	if err != nil {
		return err
	}
	if len(late) > 0 {
		s.Metrics.LateEvents(len(late))
		ev := late[0]
		s.Log.Warnf("search: %d event(s) were stored more than search_late_tolerance (%s) after their time and are exported now, out of order (e.g. %s %s at %s); raise search_late_tolerance if this repeats",
			len(late), s.LateTolerance, ev.GetType(), ev.GetId(), ev.GetTime().AsTime().UTC().Format(time.RFC3339))
	}
	s.checkedTo = to
	for k := range s.expired {
		if k.t < to.UnixNano() {
			delete(s.expired, k)
		}
	}
	return nil
}

// read pages through [from, to) from its start (first, when given, is its
// first page, read already), retrying failures, and calls each for every
// event of the range, once (see chain).
func (s *SearchSource) read(ctx context.Context, from, to time.Time, limit int, first *tailPage, each func(*auditlogpb.EventUnstructured) error) error {
	what := rangeName(from, to)
	f := newFailures(s.Log, "searching "+what, s.Metrics, metrics.ErrSearch)
	c := newChain(from, to, what, s.Log, s.Metrics)
	key, at := "", from
	for {
		var (
			events []*auditlogpb.EventUnstructured
			next   string
		)
		if first != nil {
			events, next, first = first.events, first.next, nil
		} else {
			var err error
			if events, next, err = s.page(ctx, f, at, to, &limit, key); err != nil {
				return err
			}
		}
		if c.stalled(key, next) {
			if err := c.stall(ctx, key); err != nil {
				return err
			}
			continue
		}
		for _, ev := range events {
			if !c.take(keyOf(ev)) {
				continue
			}
			if err := each(ev); err != nil {
				return err
			}
		}
		switch c.after(key, next, len(events)) {
		case stepDone:
			return nil
		case stepByTime:
			key, at = "", c.resumeFrom()
		default:
			key = next
		}
	}
}

// page reads one page with search, retrying like retryPage.
func (s *SearchSource) page(ctx context.Context, f *failures, from, to time.Time, limit *int, key string) (events []*auditlogpb.EventUnstructured, next string, err error) {
	err = s.retryPage(ctx, f, limit, func(l int) (err error) {
		events, next, err = s.search(ctx, from, to, l, key)
		return err
	})
	return events, next, err
}

// retryPage calls read with *limit until it succeeds, asking again with
// half of *limit while the response is too large and retrying other
// failures with f's backoff; it fails only once ctx ends.
func (s *SearchSource) retryPage(ctx context.Context, f *failures, limit *int, read func(limit int) error) error {
	for {
		err := read(*limit)
		if err == nil {
			f.ok()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if l, ok := s.smaller(err, *limit); ok {
			*limit = l
			continue
		}
		if err := f.fail(ctx, err); err != nil {
			return err
		}
	}
}

// smaller returns the page size to ask for after err: half of limit when
// the response was too large for gRPC or the server.
func (s *SearchSource) smaller(err error, limit int) (int, bool) {
	if limit <= 1 || !tooLarge(err) {
		return 0, false
	}
	s.Log.Debugf("search: a page of %d events was too large (%s); asking for %d", limit, logging.OneLine(err.Error()), limit/2)
	return limit / 2, true
}

// tooLarge tells whether err says a response exceeded a size limit: gRPC's
// ResourceExhausted (trace.LimitExceeded on the client) saying a message
// was larger than the most allowed. Teleport answers a rate limit with the
// same code ("rate limit exceeded for searching events",
// lib/events/searcheventslimiter.go): that is a failure to back off from,
// with the page size kept.
func tooLarge(err error) bool {
	if !trace.IsLimitExceeded(err) && status.Code(trace.Unwrap(err)) != codes.ResourceExhausted {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "larger than max") || strings.Contains(msg, "too large")
}

// keyOf identifies an event for skipping: its id, or a hash of its body for
// an event without one.
func keyOf(ev *auditlogpb.EventUnstructured) seenKey {
	id := ev.GetId()
	if id == "" {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(ev.GetUnstructured())
		sum := sha256.Sum256(b)
		id = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return seenKeyOf(id, ev.GetTime().AsTime().UnixNano())
}

// seenKeyOf is the key of an event with this id and time; a very long id is
// kept as its hash.
func seenKeyOf(id string, t int64) seenKey {
	if len(id) > 512 {
		sum := sha256.Sum256([]byte(id))
		id = fmt.Sprintf("sha256:%x", sum[:16])
	}
	return seenKey{id: id, t: t}
}
