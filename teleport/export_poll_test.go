package teleport

import (
	"context"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// listCounter is an Auth Service with no chunks that counts the reads of
// each day's chunk list.
type listCounter struct {
	mu    sync.Mutex
	lists map[string]int
}

func (l *listCounter) GetEventExportChunks(_ context.Context, req *auditlogpb.GetEventExportChunksRequest) stream.Stream[*auditlogpb.EventExportChunk] {
	l.mu.Lock()
	l.lists[req.GetDate().AsTime().Format(cursor.DayLayout)]++
	l.mu.Unlock()
	return stream.Empty[*auditlogpb.EventExportChunk]()
}

func (l *listCounter) ExportUnstructuredEvents(context.Context, *auditlogpb.ExportUnstructuredEventsRequest) stream.Stream[*auditlogpb.ExportEventUnstructured] {
	return stream.Empty[*auditlogpb.ExportEventUnstructured]()
}

func (l *listCounter) SearchUnstructuredEvents(context.Context, time.Time, time.Time, string, []string, int, types.EventOrder, string) ([]*auditlogpb.EventUnstructured, string, error) {
	return nil, "", nil
}

// The engine ends polls just before Fluent Bit's callbacks, which puts two
// polls less than poll_interval apart at times: the recent days are read at
// every one of them (a day skipped leaves its newest events a whole callback
// behind), older ones only as their age says.
func TestRecentDaysAreReadAtEveryPoll(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const polls = 20
	waits := 0
	api := &listCounter{lists: map[string]int{}}
	src := &ExportSource{
		API: api, Filter: &Filter{}, Concurrency: 2, Poll: 500 * time.Millisecond,
		Log: quiet, Now: clock, LateHorizon: 7 * 24 * time.Hour, LatePollMax: time.Hour,
		Wait: func(ctx context.Context, d time.Duration) error {
			assert.Equal(t, 500*time.Millisecond, d)
			if waits++; waits == polls {
				return context.Canceled
			}
			mu.Lock()
			now = now.Add(120 * time.Millisecond) // less than Poll: aligned to a callback
			mu.Unlock()
			return nil
		},
	}
	st := &cursor.Export{NextDay: "2026-11-29"}
	err := src.Run(context.Background(), st, &collect{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, map[string]int{
		"2026-12-02": polls, // today
		"2026-12-01": polls, // yesterday
		"2026-11-30": 1,     // a day old: read again 1.5 h later (a sixteenth of its age)
		"2026-11-29": 1,
	}, api.lists)
}
