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

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// ExportSource reads audit events with the bulk export API, the way Teleport
// meant it to be consumed: the chunks of one UTC day are exported
// concurrently, each resumable at its own cursor; once the backlog is done,
// the last two days are polled for new chunks (late events), and a day is
// closed once it is older than yesterday.
type ExportSource struct {
	API         AuditLog
	Filter      *Filter
	Concurrency int
	Poll        time.Duration
	Log         *logging.Logger
	Now         func() time.Time
	Metrics     *metrics.Metrics
	// Wait is the wait between two polls once caught up, at most its d;
	// nil sleeps d. The engine times it to Fluent Bit's callbacks.
	Wait func(ctx context.Context, d time.Duration) error

	nameless map[string]bool // days with a nameless chunk already warned about
}

// Run exports from st (the source's own working copy: it runs ahead of what
// has been committed) until ctx ends. It returns ErrNotImplemented when the
// server lacks the API; every other failure is retried with backoff.
func (s *ExportSource) Run(ctx context.Context, st *cursor.Export, sink Sink) error {
	if st.Days == nil {
		st.Days = make(map[string]*cursor.Day)
	}
	for {
		today := s.Now().UTC().Format(cursor.DayLayout)
		yesterday := addDays(today, -1)
		if st.NextDay > today {
			// A start_time in the future: nothing to export yet.
			if err := sleep(ctx, s.Poll); err != nil {
				return err
			}
			continue
		}
		// The backlog: days before yesterday are exported once and closed.
		for st.NextDay < yesterday {
			day := st.NextDay
			if err := s.exportDay(ctx, st, day, sink); err != nil {
				return err
			}
			delete(st.Days, day)
			st.NextDay = addDays(day, 1)
			if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosDayDone, Day: day}}); err != nil {
				return err
			}
			s.Log.Debugf("fetched every chunk of day %s", day)
		}
		// Yesterday and today stay open: late events land in new chunks.
		for day := st.NextDay; day <= today; day = addDays(day, 1) {
			if err := s.exportDay(ctx, st, day, sink); err != nil {
				return err
			}
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
// and returns when all of them reached their end.
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
		if !d.Done[c] {
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
	if d.Done == nil {
		d.Done = make(map[string]bool)
	}
	for _, c := range done {
		d.Done[c] = true
		delete(d.Cursors, c)
	}
	return nil
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
// the chunk is done (and its end is queued), or ctx's error.
func (s *ExportSource) exportChunk(ctx context.Context, date time.Time, day, chunk, from string, sink Sink) error {
	f := newFailures(s.Log, fmt.Sprintf("exporting chunk %s of %s", chunk, day), s.Metrics, metrics.ErrExport)
	sl := &slab{}
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
		}
		if err := f.fail(ctx, err); err != nil {
			return err
		}
	}
}

func addDays(day string, n int) string {
	t, err := time.Parse(cursor.DayLayout, day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, n).Format(cursor.DayLayout)
}
