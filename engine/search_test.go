package engine

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// searchHarness is a harness on the search path, caught up near now.
func searchHarness(t *testing.T, tolerance time.Duration) *harness {
	h := newHarness(t)
	h.auth.noExport = true
	h.cfg.SearchLateTolerance = tolerance
	h.cfg.StartTime = h.now.Add(-time.Minute)
	return h
}

// Events stored after their time, up to search_late_tolerance late, are
// exported exactly once wherever they fall: behind the last event handed
// over, before the frontier's page, and across a restart.
func TestSearchLateEventsWithinTolerance(t *testing.T) {
	h := searchHarness(t, 5*time.Second)
	h.cfg.Batch = 3 // several pages per poll
	now := func() time.Time { return h.now.Add(time.Since(h.born)) }
	want := h.auth.add(h.now.Add(-30*time.Second), time.Second, 25, "user.login")
	e := h.start()
	got := drain(t, e, len(want), true)
	for i := 0; i < 10; i++ {
		want = append(want, h.auth.addEvent("user.login", now().Add(-time.Duration(400*i)*time.Millisecond), map[string]any{"user": "late"}))
		if i == 5 {
			got = append(got, drain(t, e, len(want)-len(got), true)...)
			require.NoError(t, shutdown(e))
			e = h.start()
		}
	}
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...) // nothing comes twice
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)

	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.NotEmpty(t, st.Search.Seen, "the ids within the tolerance are in the cursor")
	for _, s := range st.Search.Seen {
		assert.False(t, s.Time.Before(st.Search.WindowStart))
	}
}

// An event stored later than the tolerance is found by the late check a
// tolerance later, exported once and counted; the export goes on.
func TestSearchLateEventBeyondTolerance(t *testing.T) {
	h := searchHarness(t, time.Second)
	h.cfg.MetricsListen = "127.0.0.1:0"
	now := func() time.Time { return h.now.Add(time.Since(h.born)) }
	want := h.auth.add(h.now.Add(-30*time.Second), time.Second, 20, "user.login")
	e := h.start()
	got := drain(t, e, len(want), true)
	time.Sleep(1500 * time.Millisecond) // the frontier is past what follows
	late := h.auth.addEvent("user.login", now().Add(-1500*time.Millisecond), map[string]any{"user": "very late"})
	got = append(got, drain(t, e, 1, true)...)
	after := h.auth.addEvent("user.login", now(), map[string]any{"user": "on time"})
	got = append(got, drain(t, e, 1, true)...)
	got = append(got, drainFor(t, e, 1500*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, append(want, late, after), got)
	assert.Contains(t, h.log.String(), "1 event(s) were stored more than search_late_tolerance (1s) after their time")
}

// Backlog windows are searched `concurrency` at a time with the largest
// pages; a restart resumes each window where it was.
func TestSearchBacklogWindowsInParallel(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true
	h.auth.searchDelay = 5 * time.Millisecond
	h.cfg.WindowSize = time.Hour
	h.cfg.Concurrency = 4
	h.cfg.CallbackBytes = conf64K
	want := h.auth.add(start.Add(time.Hour), 20*time.Second, 6000, "user.login") // about 33 hours
	e := h.start()
	got := drain(t, e, 2000, true)
	require.NoError(t, shutdown(e))
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	// Windows still in progress are in the cursor, or (when every window
	// handed over so far happened to be complete) the frontier moved past them.
	assert.True(t, len(st.Search.Windows) > 0 || st.Search.WindowStart.After(start.Add(time.Hour)), "the cursor holds the progress: %+v", st.Search)
	e = h.start()
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
	h.auth.mu.Lock()
	defer h.auth.mu.Unlock()
	assert.Equal(t, 4, h.auth.maxInFlight, "windows searched concurrency at a time")
}

// The first page of the poll that follows a backlog is read while the
// backlog's windows are (its last events do not wait for the whole round),
// and every event is still exported once.
func TestSearchTailReadAheadOfTheBacklog(t *testing.T) {
	h := searchHarness(t, 5*time.Second)
	h.auth.searchDelay = 20 * time.Millisecond
	h.cfg.WindowSize = time.Hour
	h.cfg.Concurrency = 4
	h.cfg.StartTime = h.now.Add(-2 * time.Hour)
	want := h.auth.add(h.now.Add(-2*time.Hour), 5*time.Second, 1440, "user.login") // up to now
	e := h.start()
	got := drain(t, e, len(want), true)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)

	h.auth.mu.Lock()
	defer h.auth.mu.Unlock()
	var tail *searchCall
	for i, c := range h.auth.searches {
		if c.from.After(h.now.Add(-10 * time.Second)) { // the backlog's windows begin at whole hours
			tail = &h.auth.searches[i]
			break
		}
	}
	require.NotNil(t, tail, "the recent span was searched: %+v", h.auth.searches)
	overlap := false
	for _, c := range h.auth.searches {
		if !c.from.After(h.now.Add(-10*time.Second)) && c.began.Before(tail.end) && tail.began.Before(c.end) {
			overlap = true
		}
	}
	assert.True(t, overlap, "the first search of the recent span ran while a backlog window was searched")
}

// A page too large for gRPC is asked for again smaller, not failed.
func TestSearchPageShrinksWhenTooLarge(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true
	h.auth.tooLargeAbove = 300
	want := h.auth.add(start.Add(time.Hour), 10*time.Second, 2000, "user.login")
	e := h.start()
	got := drain(t, e, len(want), true)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
	assert.NotContains(t, h.log.String(), "retrying with backoff")
}

// A version 1 search state (a window, the page of `batch` events and the
// last id taken from it) resumes after that event: nothing lost, nothing
// twice.
func TestSearchResumesVersion1State(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true
	h.cfg.Batch = 37
	want := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	// The old source had handed over page 2 (events 37..73) up to event 50.
	key := fmt.Sprintf("%d/%s", start.Add(time.Hour+36*time.Minute).UnixNano(), want[36])
	state := fmt.Sprintf(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":%q,"mode":"search","search":{"window_start":%q,"key":%q,"last_id":%q}}`,
		start.Format(time.RFC3339), start.Format(time.RFC3339), key, want[50])
	require.NoError(t, os.MkdirAll(h.cfg.StorageDir, 0o700))
	require.NoError(t, os.WriteFile(h.cfg.StorageDir+"/state.json", []byte(state), 0o600))
	e := h.start()
	got := drain(t, e, len(want)-51, true)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want[51:], got)
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Equal(t, cursor.Version, st.Version)
	assert.Empty(t, st.Search.LastID)
}
