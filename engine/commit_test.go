package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handOne runs callbacks until one hands records over (with cleanup) and
// returns them.
func handOne(t *testing.T, e *Engine) []string {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if got := pump(t, e); len(got) > 0 {
			return got
		}
	}
	t.Fatal("no records handed over")
	return nil
}

// firstAfterRestart crashes e (kill -9) and returns the first callback's
// records of the next run.
func firstAfterRestart(t *testing.T, h *harness, e *Engine) []string {
	crash(e)
	e = h.start()
	defer func() { require.NoError(t, shutdown(e)) }()
	return handOne(t, e)
}

// Records Fluent Bit took are committed only commit_delay later, at a
// callback: a crash before that repeats them, a crash after does not.
func TestTakenRecordsCommitAfterTheDelay(t *testing.T) {
	h := newHarness(t)
	h.cfg.CommitDelay = 5 * time.Second // not reached, however loaded the machine
	h.cfg.CallbackBytes = 4 << 10
	h.auth.add(start.Add(time.Hour), time.Minute, 500, "user.login")

	e := h.start()
	first := handOne(t, e)
	handOne(t, e) // a later callback, within the delay
	assert.Equal(t, first[0], firstAfterRestart(t, h, e)[0], "a crash within the delay repeats what was taken")

	h.cfg.CommitDelay = 300 * time.Millisecond
	e = h.start()
	first = handOne(t, e)
	time.Sleep(h.cfg.CommitDelay)
	second := handOne(t, e) // commits first
	again := firstAfterRestart(t, h, e)
	assert.NotContains(t, again, first[0], "committed once the delay has passed")
	assert.Equal(t, second[0], again[0], "the callback within the delay comes again")
}

// While Fluent Bit pauses the input for back-pressure its ring-buffer
// collector skips it, so the delay's clock stops.
func TestPauseStopsTheCommitClock(t *testing.T) {
	h := newHarness(t)
	h.cfg.CommitDelay = 200 * time.Millisecond
	h.cfg.CallbackBytes = 4 << 10
	h.auth.add(start.Add(time.Hour), time.Minute, 500, "user.login")

	e := h.start()
	first := handOne(t, e)
	e.Pause()
	time.Sleep(2 * h.cfg.CommitDelay)
	assert.Nil(t, e.Collect(), "nothing handed over while paused")
	assert.Equal(t, first[0], firstAfterRestart(t, h, e)[0], "paused time does not count")

	e = h.start()
	first = handOne(t, e)
	e.Pause()
	time.Sleep(h.cfg.CommitDelay)
	e.Resume()
	time.Sleep(h.cfg.CommitDelay)
	pump(t, e)
	assert.NotContains(t, firstAfterRestart(t, h, e), first[0], "committed after the delay of running time")
}

// Stop commits everything taken only after Fluent Bit's shutdown of a
// running input (pause, a second or more while the ring is still collected,
// pause again, exit), and not what was taken right before pauses that came
// back to back; otherwise only what is durable.
func TestStopCommitsWhatIsDurable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stop    func(e *Engine)
		repeats bool
	}{
		{"Fluent Bit shutdown: pause, the 1 s tick, pause, pre-exit, exit", func(e *Engine) { _ = shutdown(e) }, false},
		{"a callback outlasting the shutdown tick: both pauses back to back", func(e *Engine) { e.Pause(); e.Pause(); e.BeginShutdown(); _ = e.Stop() }, true},
		{"shutdown while paused for back-pressure: one pause", func(e *Engine) { e.Pause(); e.BeginShutdown(); _ = e.Stop() }, true},
		{"paused, resumed, then exit with no shutdown pause", func(e *Engine) { e.Pause(); e.Pause(); e.Resume(); _ = e.Stop() }, true},
		{"exit alone", func(e *Engine) { _ = e.Stop() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.cfg.CommitDelay = time.Hour
			h.cfg.CallbackBytes = 4 << 10
			h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
			e := h.start()
			first := handOne(t, e)
			tc.stop(e)
			e = h.start()
			again := handOne(t, e)
			require.NoError(t, shutdown(e))
			if tc.repeats {
				assert.Equal(t, first[0], again[0], "not durable: exported again")
			} else {
				assert.NotContains(t, again, first[0], "durable: not exported again")
			}
		})
	}
}

// A callback of positions only (events filtered out, found after the
// records) waits behind the records before it: committed alone it would
// move the search cursor past records a crash loses.
func TestPositionsWaitBehindTakenRecords(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true // search: one cursor for all events
	h.cfg.CommitDelay = time.Hour
	h.cfg.Types = []string{"user.login"}
	want := h.auth.add(h.now.Add(-10*time.Minute), time.Second, 50, "user.login")

	e := h.start()
	got := drain(t, e, len(want), true)
	require.ElementsMatch(t, want, got)
	e.mu.Lock()
	items := len(e.inflight[0].items)
	e.mu.Unlock()
	h.auth.add(h.now.Add(-5*time.Minute), time.Second, 100, "session.start") // stored later, filtered
	// Callbacks until the filtered events' positions were handed over.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		assert.Empty(t, pump(t, e))
		e.mu.Lock()
		grown := len(e.inflight) == 1 && len(e.inflight[0].items) > items
		e.mu.Unlock()
		if grown {
			break
		}
	}
	crash(e)
	e = h.start()
	assert.ElementsMatch(t, want, drain(t, e, len(want), true), "after a crash the records come again")
	require.NoError(t, shutdown(e))
}

// exit_on_last_event asks Fluent Bit to stop only once the last records are
// committed: a kill right then repeats nothing.
func TestExitOnLastEventWaitsForTheCommit(t *testing.T) {
	h := newHarness(t)
	h.cfg.ExitOnLastEvent = true
	h.cfg.CommitDelay = 200 * time.Millisecond
	want := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	drained := make(chan struct{})
	e := h.start(func(o *Options) { o.OnDrained = func() { close(drained) } })
	var got []string
	for done := false; !done; {
		select {
		case <-drained:
			done = true
		case <-time.After(10 * time.Second):
			t.Fatal("OnDrained never called")
		default:
			got = append(got, pump(t, e)...)
			time.Sleep(10 * time.Millisecond)
		}
	}
	assert.ElementsMatch(t, want, got)
	crash(e)
	e = h.start()
	assert.Empty(t, drainFor(t, e, 300*time.Millisecond), "nothing repeats")
	require.NoError(t, shutdown(e))
}
