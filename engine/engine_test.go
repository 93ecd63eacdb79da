package engine

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/internal/testlog"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

var start = time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)

func testConfig(dir string) *conf.Config {
	c := conf.Default()
	c.TeleportAddr = "127.0.0.1:1"
	c.StorageDir = dir
	c.StartTime = start
	c.PollInterval = 20 * time.Millisecond
	c.CallbackBytes = 64 << 10
	c.QueueBytes = 1 << 20
	// Short, so tests run fast; the rule is the same at any length.
	c.CommitDelay = 20 * time.Millisecond
	// Days older than yesterday close at once, as the tests of the
	// backlog expect; TestLateChunksOfOldDays keeps them open.
	c.ExportLateHorizon = 24 * time.Hour
	return c
}

// shutdown stops e the way Fluent Bit shuts down a running input: pause,
// (grace, the ring buffer still collected into chunks), pause again,
// pre-exit, exit.
func shutdown(e *Engine) error {
	e.Pause()
	time.Sleep(min(e.cfg.CommitDelay, shutdownSettle)) // Fluent Bit's shutdown tick is 1 s
	e.Pause()
	e.BeginShutdown()
	return e.Stop()
}

type harness struct {
	t    *testing.T
	auth *fakeAuth
	cfg  *conf.Config
	log  testlog.Buffer
	now  time.Time // the fake clock's reading at creation; it then advances
	born time.Time
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, auth: newFakeAuth(), cfg: testConfig(filepath.Join(t.TempDir(), "state")),
		now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), born: time.Now()}
}

func (h *harness) start(opts ...func(*Options)) *Engine {
	o := Options{
		Log:     logging.New(&h.log, "input:teleport"),
		Now:     func() time.Time { return h.now.Add(time.Since(h.born)) },
		Connect: func(context.Context) (Conn, error) { return h.auth, nil },
	}
	for _, f := range opts {
		f(&o)
	}
	e, err := Start(h.cfg, o)
	require.NoError(h.t, err)
	return e
}

// uids decodes a callback's buffer into the uid of each record, checking
// every record is a [EventTime, map] pair.
func uids(t *testing.T, b []byte) []string {
	var out []string
	for len(b) > 0 {
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		require.NoError(t, err)
		require.Equal(t, uint32(2), n)
		require.Equal(t, byte(0xd7), rest[0])
		v, rest, err := msgp.ReadIntfBytes(rest[10:])
		require.NoError(t, err)
		out = append(out, v.(map[string]any)["uid"].(string))
		b = rest
	}
	return out
}

// drain runs callbacks (each followed by cleanup unless noCleanup) until want
// records arrived or the deadline passes.
func drain(t *testing.T, e *Engine, want int, cleanup bool) []string {
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		b := e.Collect()
		if len(b) == 0 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		assert.LessOrEqual(t, len(b), 64<<10+4096, "a callback stays within callback_bytes")
		got = append(got, uids(t, b)...)
		if cleanup {
			e.Handed()
		}
	}
	return got
}

// drainFor collects whatever arrives during d (to show nothing more comes).
func drainFor(t *testing.T, e *Engine, d time.Duration) []string {
	var got []string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b := e.Collect(); len(b) > 0 {
			got = append(got, uids(t, b)...)
			e.Handed()
		}
	}
	return got
}

// pump runs one callback (with cleanup) and returns its uids: Fluent Bit
// calls back every second, and commits happen at callbacks.
func pump(t *testing.T, e *Engine) []string {
	b := e.Collect()
	if len(b) == 0 {
		return nil
	}
	e.Handed()
	return uids(t, b)
}

// settle waits out the commit delay and runs one callback that commits
// everything taken so far; it returns that callback's records, returned
// and never cleaned up: the host dies with them in its ring buffer.
func settle(t *testing.T, e *Engine) []string {
	time.Sleep(e.cfg.CommitDelay)
	return uids(t, e.Collect())
}

// crash abandons the engine like kill -9 would: nothing more is committed.
func crash(e *Engine) {
	e.cancel()
	e.wg.Wait()
	e.store.Close()
}

func TestEveryEventOnceAcrossDaysAndRestart(t *testing.T) {
	h := newHarness(t)
	want := h.auth.add(start.Add(time.Hour), 90*time.Second, 3000, "user.login") // ~3 days
	want = append(want, h.auth.add(start.Add(2*time.Hour), time.Minute, 500, "session.start")...)

	e := h.start()
	got := drain(t, e, 1500, true)
	require.NoError(t, shutdown(e)) // graceful: cursor saved
	e = h.start()
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	require.NoError(t, shutdown(e))

	assert.ElementsMatch(t, want, got, "every event exactly once")
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Equal(t, cursor.ModeExport, st.Mode)
	assert.Equal(t, "2026-11-21", st.Export.NextDay, "days before yesterday are closed")
}

func TestCrashRepeatsAtMostTheUncommittedCallback(t *testing.T) {
	h := newHarness(t)
	want := h.auth.add(start.Add(time.Hour), time.Minute, 2000, "user.login")

	e := h.start()
	got := drain(t, e, 700, true)
	lost := settle(t, e)
	require.NotEmpty(t, lost)
	crash(e)

	e = h.start()
	again := drain(t, e, len(want)-len(got), true)
	require.NoError(t, shutdown(e))
	assert.Equal(t, lost, again[:len(lost)], "the uncommitted callback comes again first")
	assert.ElementsMatch(t, want, append(got, again...))
}

func TestNoCleanupCommitsAtNextCallback(t *testing.T) {
	h := newHarness(t)
	want := h.auth.add(start.Add(time.Hour), time.Minute, 1000, "user.login")
	e := h.start()
	got := drain(t, e, 400, false)
	e.Collect() // takes what the previous callback returned as handed over
	time.Sleep(h.cfg.CommitDelay)
	e.Collect() // commits it
	crash(e)
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	require.NotNil(t, st.Export)

	e = h.start()
	rest := drain(t, e, len(want)-len(got), false)
	require.NoError(t, shutdown(e))
	// At most the callback in flight at the crash repeats; nothing is lost.
	assert.Subset(t, append(got, rest...), want)
	assert.LessOrEqual(t, len(got)+len(rest)-len(want), 200)
}

func TestPauseHandsOverNothingUntilResume(t *testing.T) {
	h := newHarness(t)
	want := h.auth.add(start.Add(time.Hour), time.Minute, 800, "user.login")
	e := h.start()
	got := drain(t, e, 100, true)
	e.Pause()
	e.Pause() // Fluent Bit may pause twice at shutdown
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 5; i++ {
		assert.Nil(t, e.Collect(), "nothing after Pause")
	}
	e.Resume()
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
}

func TestShutdownHandsOverNothing(t *testing.T) {
	h := newHarness(t)
	h.auth.add(start.Add(time.Hour), time.Minute, 800, "user.login")
	e := h.start()
	drain(t, e, 10, true)
	e.BeginShutdown()
	assert.Nil(t, e.Collect())
	require.NoError(t, shutdown(e))
}

func TestFiltersTypesSkipAndStartTime(t *testing.T) {
	h := newHarness(t)
	h.auth.add(start.Add(-2*time.Hour), time.Minute, 100, "user.login") // before start_time
	logins := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	h.auth.add(start.Add(time.Hour), time.Minute, 300, "session.start")
	h.auth.add(start.Add(time.Hour), time.Minute, 300, "print")
	h.cfg.Types = []string{"user.login", "print"}
	h.cfg.SkipEventTypes = []string{"print"}
	e := h.start()
	got := drain(t, e, len(logins), true)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...) // nothing more should come
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, logins, got)
}

func TestSearchFallbackWhenExportNotImplemented(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true
	h.cfg.Batch = 37
	h.cfg.WindowSize = 7 * time.Hour
	want := h.auth.add(start.Add(time.Hour), 45*time.Second, 1200, "user.login")
	e := h.start()
	got := drain(t, e, 500, true)
	require.NoError(t, shutdown(e))
	e = h.start()
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Equal(t, cursor.ModeSearch, st.Mode)
	assert.Contains(t, h.log.String(), "does not offer bulk export")
}

func TestRetriesAfterServerErrors(t *testing.T) {
	h := newHarness(t)
	h.auth.failNextCalls = 3
	want := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	e := h.start()
	got := drain(t, e, len(want), true)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
	assert.Contains(t, h.log.String(), "retrying with backoff")
}

func TestDryRunSavesNothing(t *testing.T) {
	h := newHarness(t)
	h.cfg.DryRun = true
	want := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	e := h.start()
	got := drain(t, e, len(want), true)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, want, got)
	_, err := os.Stat(filepath.Join(h.cfg.StorageDir, "state.json"))
	assert.True(t, os.IsNotExist(err), "dry_run writes no cursor")
}

func TestExitOnLastEventAfterEverythingHandedOver(t *testing.T) {
	h := newHarness(t)
	h.cfg.ExitOnLastEvent = true
	want := h.auth.add(start.Add(time.Hour), time.Minute, 2000, "user.login")
	drained := make(chan struct{})
	handed := 0
	e := h.start(func(o *Options) { o.OnDrained = func() { handed = -handed; close(drained) } })
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-drained:
			require.NoError(t, shutdown(e))
			assert.Equal(t, -len(want), handed, "OnDrained only after every event was handed over")
			return
		case <-deadline:
			t.Fatal("OnDrained never called")
		default:
		}
		if b := e.Collect(); len(b) > 0 {
			handed += len(uids(t, b))
			e.Handed()
		}
	}
}

func TestStartTimeIsFixedOnFirstRun(t *testing.T) {
	h := newHarness(t)
	e := h.start()
	require.NoError(t, shutdown(e))
	h.cfg.StartTime = start.Add(time.Hour)
	_, err := Start(h.cfg, Options{Log: logging.New(&h.log, "t"), Connect: func(context.Context) (Conn, error) { return h.auth, nil }})
	require.ErrorIs(t, err, ErrStartTime)
	assert.Contains(t, err.Error(), "cursor set")
	assert.Contains(t, err.Error(), "2026-11-18T00:00:00Z")
}

func TestNoGoroutineLeftAfterStop(t *testing.T) {
	h := newHarness(t)
	h.auth.add(start.Add(time.Hour), time.Minute, 3000, "user.login")
	before := runtime.NumGoroutine()
	e := h.start()
	drain(t, e, 100, true) // fetchers now blocked on a full queue
	require.NoError(t, shutdown(e))
	// Polled by hand: assert.Eventually runs its condition in a goroutine.
	for i := 0; i < 200 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left after Stop")
}

func TestQueueStaysBounded(t *testing.T) {
	h := newHarness(t)
	h.cfg.QueueBytes = 1 << 20
	h.auth.add(start.Add(time.Hour), time.Second, 20000, "user.login")
	e := h.start()
	time.Sleep(300 * time.Millisecond) // let fetchers fill the queue
	assert.LessOrEqual(t, e.queue.Bytes(), h.cfg.QueueBytes+4096)
	require.NoError(t, shutdown(e))
}
