package teleport

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// ExportSource reads audit events with the bulk export API, the way Teleport
// meant it to be consumed: the chunks of one UTC day are exported
// concurrently, each resumable at its own cursor.
//
// On Athena (the backend that serves this API) a day is never known to be
// complete: its consumer writes one chunk per batch and event date, and
// SQS redelivery or a dead-letter redrive writes new chunks for old dates
// (lib/events/athena/consumer.go). So a day's chunk list is read again
// until LateHorizon after the day ended, less often as the day ages (at
// most LatePollMax apart), and only then is the day closed. A chunk that
// keeps failing for a reason retrying will not fix is set aside after
// ChunkMaxAttempts tries, and the rest go on. An event read a second time
// (stored twice) is dropped if Dedupe still remembers it.
type ExportSource struct {
	API         AuditLog
	Filter      *Filter
	Concurrency int
	Poll        time.Duration
	Log         *logging.Logger
	Now         func() time.Time
	Metrics     *metrics.Metrics
	// LateHorizon: how long after its end a day's chunk list is read
	// again (0: the day after yesterday closes it, as before Athena was
	// understood).
	LateHorizon time.Duration
	// LatePollMax caps the time between two reads of an old day's list.
	LatePollMax time.Duration
	// ChunkMaxAttempts bounds the tries of a chunk failing for good (0: 10).
	ChunkMaxAttempts int
	// Dedupe remembers recent events; nil hands every copy over.
	Dedupe *Dedupe
	// Wait is the wait between two polls once caught up, at most its d;
	// nil sleeps d. The engine times it to Fluent Bit's callbacks.
	Wait func(ctx context.Context, d time.Duration) error

	nameless map[string]bool      // days with a nameless chunk already warned about
	checked  map[string]time.Time // when each open day's list was last read
}

// dayEnd is the end of a UTC day.
func dayEnd(day string) time.Time {
	t, err := time.Parse(cursor.DayLayout, day)
	if err != nil {
		return time.Time{}
	}
	return t.AddDate(0, 0, 1)
}

// horizon is LateHorizon, or the old rule (a day closes once older than
// yesterday) when unset.
func (s *ExportSource) horizon() time.Duration {
	if s.LateHorizon > 0 {
		return s.LateHorizon
	}
	return 24 * time.Hour
}

// pollEvery is how long after its last read a day's list is read again:
// at every poll for today and yesterday (like Teleport's own exporter, whose
// backlog of one earlier date is polled as often as the current one), then
// a sixteenth of the day's age (late chunks mostly come within minutes: an
// SQS visibility timeout is one batch interval), at most LatePollMax.
// Not Poll for the recent days: Wait ends polls just before Fluent Bit's
// callbacks, less than Poll apart at times, and a day skipped then leaves
// its newest events waiting a whole callback more (freshness p99 1.9 s).
func (s *ExportSource) pollEvery(day string, now time.Time) time.Duration {
	if day >= addDays(now.Format(cursor.DayLayout), -1) {
		return 0
	}
	age := now.Sub(dayEnd(day))
	d := max(age/16, s.Poll)
	if s.LatePollMax > 0 {
		d = min(d, max(s.LatePollMax, s.Poll))
	}
	return d
}

// Run exports from st (the source's own working copy: it runs ahead of what
// has been committed) until ctx ends. It returns ErrNotImplemented when the
// server lacks the API; every other failure is retried with backoff.
func (s *ExportSource) Run(ctx context.Context, st *cursor.Export, sink Sink) error {
	if st.Days == nil {
		st.Days = make(map[string]*cursor.Day)
	}
	if s.checked == nil {
		s.checked = make(map[string]time.Time)
	}
	for {
		now := s.Now().UTC()
		today := now.Format(cursor.DayLayout)
		if st.NextDay > today {
			// A start_time in the future: nothing to export yet.
			if err := sleep(ctx, s.Poll); err != nil {
				return err
			}
			continue
		}
		// Days past the horizon are exported once more and closed: no
		// chunk is written for them any longer.
		for st.NextDay < today && !dayEnd(st.NextDay).Add(s.horizon()).After(now) {
			day := st.NextDay
			if err := s.exportDay(ctx, st, day, sink); err != nil {
				return err
			}
			delete(st.Days, day)
			delete(s.checked, day)
			st.NextDay = addDays(day, 1)
			if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosDayDone, Day: day}}); err != nil {
				return err
			}
			s.Log.Debugf("fetched every chunk of day %s", day)
		}
		// The open days: each read again when due.
		for day := st.NextDay; day <= today; day = addDays(day, 1) {
			if last, ok := s.checked[day]; ok && now.Sub(last) < s.pollEvery(day, now) {
				continue
			}
			if err := s.exportDay(ctx, st, day, sink); err != nil {
				return err
			}
			s.checked[day] = now
		}
		if err := sink.Put(ctx, record.Item{CaughtUp: true}); err != nil {
			return err
		}
		wait := sleep
		if s.Wait != nil {
			wait = s.Wait
		}
		if err := wait(ctx, s.Poll); err != nil {
			return err
		}
	}
}

// exportDay exports every chunk of day not yet done, Concurrency at a time,
// and returns when all of them reached their end or were set aside.
func (s *ExportSource) exportDay(ctx context.Context, st *cursor.Export, day string, sink Sink) error {
	date, err := time.Parse(cursor.DayLayout, day)
	if err != nil {
		return fmt.Errorf("bad day %q in the cursor: %w", day, err)
	}
	chunks, err := s.listChunks(ctx, date)
	if err != nil {
		return err
	}
	d := st.Days[day]
	if d == nil {
		d = &cursor.Day{}
		st.Days[day] = d
	}
	var todo []string
	for _, c := range chunks {
		if !d.DoneSet.Has(c) {
			todo = append(todo, c)
		}
	}
	// A chunk begun (it was listed) but no longer listed was removed: it
	// is asked for all the same, so that it is set aside with its reason
	// (NotFound) rather than forgotten with its cursor.
	for c := range d.Cursors {
		if _, listed := slices.BinarySearch(chunks, c); !listed {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	s.Log.Debugf("day %s: %d chunks, %d to export", day, len(chunks), len(todo))

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done []string
		sem  = make(chan struct{}, max(1, s.Concurrency))
	)
	for _, c := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(chunk, from string) {
			defer wg.Done()
			defer func() { <-sem }()
			if s.exportChunk(ctx, date, day, chunk, from, sink) == nil {
				mu.Lock()
				done = append(done, chunk)
				mu.Unlock()
			}
		}(c, d.Cursors[c])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, c := range done {
		d.DoneSet.Add(c)
		delete(d.Cursors, c)
	}
	return nil
}

// forGood reports whether err is a chunk's own failure that retrying
// does not fix: the chunk is gone (NotFound: removed after listing), the
// server refuses our cursor or request (BadParameter), or it cannot read
// the chunk (a file it cannot decode). Connection trouble, timeouts,
// throttling and access rights concern every chunk alike: those are
// retried for ever.
func forGood(err error) bool {
	switch status.Code(trace.Unwrap(err)) {
	case codes.NotFound, codes.InvalidArgument, codes.OutOfRange, codes.DataLoss,
		codes.FailedPrecondition, codes.Internal, codes.Unknown:
		return !trace.IsConnectionProblem(err)
	}
	return trace.IsNotFound(err) || trace.IsBadParameter(err)
}

// unsureSetAsideAfter is how long a chunk must keep failing with an error
// that may yet pass (Unknown, Internal: Athena's readEventChunk wraps any S3
// error but NoSuchKey, throttling and timeouts included) before it is set
// aside; NotFound and BadParameter need only the attempts.
const unsureSetAsideAfter = 15 * time.Minute

// setAsideDue reports whether a chunk that failed for good bad times in a
// row, for as long as streak, is to be set aside.
func setAsideDue(bad, maxBad int, err error, streak time.Duration) bool {
	return bad >= maxBad && (definite(err) || streak >= unsureSetAsideAfter)
}

// definite reports whether err says for certain that the chunk cannot be
// read: it is gone, or the server refuses our cursor or request.
func definite(err error) bool {
	switch status.Code(trace.Unwrap(err)) {
	case codes.NotFound, codes.InvalidArgument, codes.OutOfRange:
		return true
	}
	return trace.IsNotFound(err) || trace.IsBadParameter(err)
}

// listChunks returns the chunks of date, retrying until it works.
func (s *ExportSource) listChunks(ctx context.Context, date time.Time) ([]string, error) {
	f := newFailures(s.Log, "listing export chunks of "+date.Format(cursor.DayLayout), s.Metrics, metrics.ErrExport)
	for {
		str := s.API.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(date)})
		var chunks []string
		for str.Next() {
			chunks = append(chunks, str.Item().GetChunk())
		}
		err := str.Done()
		if err == nil {
			f.ok()
			sort.Strings(chunks)
			chunks = slices.Compact(chunks) // a chunk listed twice is exported once
			if len(chunks) > 0 && chunks[0] == "" {
				// It can neither be asked for nor held in the cursor, which
				// would then refuse every save and stall the export.
				chunks = chunks[1:]
				if day := date.Format(cursor.DayLayout); !s.nameless[day] {
					if s.nameless == nil {
						s.nameless = map[string]bool{}
					}
					s.nameless[day] = true
					s.Log.Warnf("listing export chunks of %s: the Auth Service listed a chunk without a name; it cannot be exported and is skipped", day)
				}
			}
			return chunks, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if IsNotImplemented(err) {
			return nil, ErrNotImplemented
		}
		if err := f.fail(ctx, err); err != nil {
			return nil, err
		}
	}
}

// exportChunk streams one chunk from cursor from to its end, resuming after
// the last event it fetched whenever the stream breaks. It returns nil once
// the chunk is done (and its end is queued) or set aside, or ctx's error.
func (s *ExportSource) exportChunk(ctx context.Context, date time.Time, day, chunk, from string, sink Sink) error {
	f := newFailures(s.Log, fmt.Sprintf("exporting chunk %s of %s", chunk, day), s.Metrics, metrics.ErrExport)
	sl := &slab{}
	bad := 0               // failures for good in a row
	var badSince time.Time // when that streak began
	maxBad := s.ChunkMaxAttempts
	if maxBad <= 0 {
		maxBad = 10
	}
	for {
		n, err, putErr := s.streamChunk(ctx, &auditlogpb.ExportUnstructuredEventsRequest{
			Date: timestamppb.New(date), Chunk: chunk, Cursor: from,
		}, day, chunk, &from, sink, sl)
		if putErr != nil {
			return putErr
		}
		if err == nil {
			f.ok()
			return sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosChunkDone, Day: day, Chunk: chunk}})
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			// Progress was made: the next failure starts a new streak.
			f.ok()
			bad = 0
		}
		if forGood(err) {
			if bad == 0 {
				badSince = s.Now()
			}
			bad++
			if setAsideDue(bad, maxBad, err, s.Now().Sub(badSince)) && s.stillServed(ctx, date) {
				return s.setAside(ctx, day, chunk, from, bad, err, sink)
			}
		} else {
			bad = 0
		}
		if err := f.fail(ctx, err); err != nil {
			return err
		}
	}
}

// errorKind names err's kind the way Teleport's trace package does.
func errorKind(err error) string {
	code := status.Code(trace.Unwrap(err))
	switch {
	case trace.IsNotFound(err) || code == codes.NotFound:
		return "NotFound"
	case trace.IsBadParameter(err) || code == codes.InvalidArgument:
		return "BadParameter"
	}
	return code.String()
}

// stillServed reports whether the day's chunk list can be read: a chunk is
// set aside only while the rest of the export works, never because the
// Auth Service (or its bucket) is failing as a whole.
func (s *ExportSource) stillServed(ctx context.Context, date time.Time) bool {
	str := s.API.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(date)})
	for str.Next() {
	}
	return str.Done() == nil
}

// setAside gives a chunk up with one error line naming it, the day, why,
// and how to export it later; the rest of the day and later days go on.
func (s *ExportSource) setAside(ctx context.Context, day, chunk, from string, tries int, err error, sink Sink) error {
	reason := fmt.Sprintf("failed %d times in a row (export_chunk_max_attempts), last: %s: %s", tries, errorKind(err), logging.OneLine(err.Error()))
	s.Log.Errorf("day %s: setting chunk %s aside: %s; the export goes on without it; `teleport-fluent-bit export --chunk %s/%s` exports it once it can be read (cursor show lists it under set_aside)",
		day, chunk, reason, day, chunk)
	s.Metrics.ChunkSetAside()
	return sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosChunkSetAside, Day: day, Chunk: chunk, Cursor: from,
		GivenUp: &cursor.GivenUp{Reason: reason, At: s.Now().UTC()}}})
}

func addDays(day string, n int) string {
	t, err := time.Parse(cursor.DayLayout, day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, n).Format(cursor.DayLayout)
}

// ExportChunk streams one chunk of date from its start to its end, once,
// calling put for every record (an operator's re-export of a chunk set
// aside: no retry, no cursor, no dedupe).
func (s *ExportSource) ExportChunk(ctx context.Context, date time.Time, chunk string, put func(record.Item) error) error {
	day := date.UTC().Format(cursor.DayLayout)
	from := ""
	_, err, putErr := s.streamChunk(ctx, &auditlogpb.ExportUnstructuredEventsRequest{
		Date: timestamppb.New(date), Chunk: chunk}, day, chunk, &from, recordsTo(put), &slab{})
	if putErr != nil {
		return putErr
	}
	return err
}

// recordsTo is a Sink calling a function for records (and ignoring
// position-only items).
type recordsTo func(record.Item) error

func (f recordsTo) Put(_ context.Context, it record.Item) error {
	if it.Data == nil {
		return nil
	}
	return f(it)
}
