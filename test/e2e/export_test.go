package e2e

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// The bulk export path delivers every event of a three-day backlog exactly
// once, as records shaped like the Event Handler's JSON.
func TestBulkExportEveryEventOnce(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(20000, 3*24*time.Hour, 1)
	want := r.expected(nil)
	require.Len(t, want, 20000)

	h := r.host(hostOpts{props: r.props()})
	require.NoError(t, h.WaitReady(30*time.Second))
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())

	// Records carry the raw event: typed fields, nested maps and arrays, and
	// the event time as the record time.
	recs, _, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, rec := range recs {
		ev, _ := rec.Body["event"].(string)
		kinds[ev] = true
		ts, err := time.Parse(time.RFC3339Nano, rec.Body["time"].(string))
		require.NoError(t, err)
		require.True(t, ts.Equal(rec.Time), "record time %v = event time %v", rec.Time, ts)
		require.IsType(t, int64(0), rec.Body["ei"], "ei stays an integer")
		if ev == "cert.create" {
			require.IsType(t, map[string]any{}, rec.Body["identity"], "nested maps stay maps")
		}
	}
	for _, k := range []string{"user.login", "session.start", "session.end", "session.upload", "role.created", "access_request.create"} {
		assert.True(t, kinds[k], "a %s event was exported", k)
	}
	st, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	assert.Equal(t, cursor.ModeExport, st.Mode)
	assert.Contains(t, h.Log(), "connected to Teleport cluster")
}

// Without the bulk export API the plugin pages through
// SearchUnstructuredEvents, or on servers older still through the legacy
// GetEvents; a graceful stop and a kill -9 mid-backlog lose nothing.
func TestSearchPathEveryEventOnce(t *testing.T) {
	for _, mode := range []struct {
		name   string
		legacy bool
	}{{"unstructured", false}, {"legacy", true}} {
		t.Run(mode.name, func(t *testing.T) {
			r := newRig(t, teleportd.Options{ExportUnimplemented: true, SearchUnimplemented: mode.legacy, RecordingsUnimplemented: mode.legacy})
			r.generate(12000, 3*24*time.Hour, 2)
			want := r.expected(nil)

			const interval = 20 * time.Millisecond
			delay := conf.MinCommitDelay
			props := r.props("batch=700", "window_size=20h", "callback_bytes=64K", "commit_delay="+delay.String())
			first := r.host(hostOpts{props: props})
			r.waitCount(first, len(want)/4, 60*time.Second)
			require.NoError(t, first.Stop())
			h := r.host(hostOpts{props: props, interval: int(interval / time.Millisecond)})
			r.waitCount(h, len(want)/2, 60*time.Second)
			time.Sleep(delay) // commits happen before the kill
			require.NoError(t, h.Kill())
			h = r.host(hostOpts{props: props})
			r.waitAll(h, want, 60*time.Second)
			require.NoError(t, h.WaitLog("caught up:", 1, 60*time.Second))
			require.NoError(t, h.Stop())

			got, recs, uploads := r.split()
			require.NotEmpty(t, uploads)
			missing, dups, extra := compare(want, got)
			rmissing, rdups, rextra := compare(r.recordingKeys(uploads, "print", "desktop.recording"), recs)
			assert.Empty(t, missing, "no audit event lost")
			assert.Empty(t, rmissing, "no recording event lost")
			assert.Empty(t, extra)
			assert.Empty(t, rextra)
			// Records are over 60 bytes; the kill repeats at most the
			// callbacks of one commit delay and two more.
			perKill := (int(delay/interval) + 2) * (64 << 10) / 60
			assert.LessOrEqual(t, len(dups)+len(rdups), perKill, "duplicates bounded by the commit delay")
			assert.Contains(t, first.Log(), "does not offer bulk export")
			assert.Equal(t, mode.legacy, strings.Contains(first.Log(), "audit events: the Auth Service answers Unimplemented"), "the switch is said")
			st, err := cursor.Peek(r.storage)
			require.NoError(t, err)
			assert.Equal(t, cursor.ModeSearch, st.Mode)
			if mode.legacy {
				assert.Positive(t, r.auth.Stats().GetEvents)
			}

		})
	}
}

// A graceful stop in the middle of a backlog, then a restart: nothing lost,
// nothing repeated.
func TestGracefulRestartMidBacklog(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unimpl    bool
		noCleanup bool
	}{
		{"bulk", false, false},
		{"search", true, false},
		{"bulk without cleanup callback", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, teleportd.Options{ExportUnimplemented: tc.unimpl})
			r.generate(15000, 3*24*time.Hour, 3)
			want := r.expected(nil)
			for i := 0; i < 3; i++ {
				h := r.host(hostOpts{props: r.props("callback_bytes=64K"), noCleanup: tc.noCleanup})
				r.waitCount(h, (i+1)*len(want)/4, 60*time.Second)
				require.NoError(t, h.Stop())
			}
			h := r.host(hostOpts{props: r.props(), noCleanup: tc.noCleanup})
			r.waitCount(h, len(want), 60*time.Second)
			require.NoError(t, h.Stop())
			exactlyOnce(t, want, r.ingested())
		})
	}
}

// kill -9 of the host at random points of a backlog: nothing lost, and
// what comes again is at most what was handed over in the commit delay and
// the callback after it, per kill.
func TestKill9AtRandomPoints(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(40000, 3*24*time.Hour, 4)
	want := r.expected(nil)
	const kills = 12
	const callbackBytes = 64 << 10
	const interval = 20 * time.Millisecond
	delay := conf.MinCommitDelay
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < kills; i++ {
		h := r.host(hostOpts{props: r.props("callback_bytes=64K", "commit_delay="+delay.String()), interval: int(interval / time.Millisecond)})
		require.NoError(t, h.WaitReady(30*time.Second))
		// Long enough for commits to happen, short enough to kill mid-backlog.
		time.Sleep(delay + time.Duration(rng.Intn(1500))*time.Millisecond)
		require.NoError(t, h.Kill())
	}
	h := r.host(hostOpts{props: r.props()})
	r.waitAll(h, want, 90*time.Second)
	require.NoError(t, h.Stop())
	got := r.ingested()
	missing, dups, extra := compare(want, got)
	assert.Empty(t, missing, "%d of %d events lost across %d kills, e.g. %v", len(missing), len(want), kills, first(missing))
	assert.Empty(t, extra)
	// Every record is over 200 bytes, so one callback holds fewer than
	// callbackBytes/200 records; per kill, the callbacks of one delay and
	// two more come again at most.
	perKill := (int(delay/interval) + 2) * callbackBytes / 200
	assert.LessOrEqual(t, len(dups), kills*perKill, "duplicates bounded by the commit delay")
	t.Logf("%d kills: %d events, %d duplicates", kills, len(want), len(dups))
}

// Pause stops hand-over until Resume; nothing is lost across it.
func TestPauseThenResume(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(15000, 2*24*time.Hour, 5)
	want := r.expected(nil)
	h := r.host(hostOpts{props: r.props("callback_bytes=64K")})
	r.waitCount(h, 2000, 60*time.Second)
	require.NoError(t, h.Pause())
	paused := len(r.ingested())
	time.Sleep(700 * time.Millisecond)
	assert.Equal(t, paused, len(r.ingested()), "nothing handed over while paused")
	require.NoError(t, h.Resume())
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
}

// types and skip_event_types apply identically on both paths.
func TestFilters(t *testing.T) {
	for _, unimpl := range []bool{false, true} {
		name := map[bool]string{false: "bulk", true: "search"}[unimpl]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, teleportd.Options{ExportUnimplemented: unimpl})
			r.generate(8000, 2*24*time.Hour, 6)
			keep := map[string]bool{"user.login": true, "session.start": true}
			want := r.expected(func(m teleportd.EventMeta) bool { return keep[m.Type] && m.Type != "session.start" })
			require.NotEmpty(t, want)
			h := r.host(hostOpts{props: r.props("types=user.login,session.start", "skip_event_types=session.start")})
			r.waitCount(h, len(want), 60*time.Second)
			time.Sleep(500 * time.Millisecond) // anything unwanted would show up now
			require.NoError(t, h.Stop())
			exactlyOnce(t, want, r.ingested())
		})
	}
}

// start_time bounds the export; it is fixed on the first run and a
// different one later is refused with a line saying how to move the cursor.
func TestStartTime(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(6000, 3*24*time.Hour, 7)
	r.start = time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Second)
	want := r.expected(nil)
	require.Less(t, len(want), 6000)
	h := r.host(hostOpts{props: r.props()})
	r.waitCount(h, len(want), 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())

	h = r.host(hostOpts{props: r.props("start_time=" + r.start.Add(-time.Hour).Format(time.RFC3339))})
	code, _ := h.WaitTimeout(30 * time.Second)
	assert.Equal(t, 1, code)
	assert.Contains(t, h.Log(), "start_time")
	assert.Contains(t, h.Log(), "cursor set --storage")
}

// Events that arrive late for the previous day (a new chunk of yesterday)
// are picked up by polling the last two days.
func TestLateEventsInPreviousDay(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(3000, 2*24*time.Hour, 8)
	h := r.host(hostOpts{props: r.props()})
	r.waitCount(h, len(r.expected(nil)), 60*time.Second)

	yesterday := time.Now().UTC().Add(-24 * time.Hour)
	var late []teleportd.Event
	for i := 0; i < 50; i++ {
		late = append(late, teleportd.Event{Fields: map[string]any{
			"event": "user.login", "code": "T1000I", "uid": "late-" + string(rune('a'+i%26)) + time.Now().Format("150405.000000") + "-" + itoa(i),
			"time": yesterday.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), "cluster_name": "acc",
			"ei": 0, "user": "alice", "success": true, "method": "local",
		}})
	}
	r.auth.Add(late...)
	want := r.expected(nil)
	r.waitCount(h, len(want), 30*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
}

// The Auth Service goes away for a while: the plugin backs off, does not
// crash, and resumes when it is back.
func TestAuthServiceDown(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(5000, 2*24*time.Hour, 9)
	h := r.host(hostOpts{props: r.props()})
	r.waitCount(h, len(r.expected(nil)), 60*time.Second)

	r.auth.Stop()
	r.generate(3000, 2*time.Hour, 10) // written while we cannot see them
	time.Sleep(2 * time.Second)
	select {
	case <-h.Done():
		t.Fatal("host exited while the Auth Service was down")
	default:
	}
	require.NoError(t, r.auth.Restart())
	want := r.expected(nil)
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
	assert.Contains(t, h.Log(), "retrying with backoff")
}

// With exit_on_last_event a one-shot backfill exits 0 by itself with
// everything flushed.
func TestExitOnLastEvent(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(10000, 3*24*time.Hour, 11)
	want := r.expected(nil)
	h := r.host(hostOpts{props: r.props("exit_on_last_event=on")})
	code, err := h.WaitTimeout(90 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	exactlyOnce(t, want, r.ingested())
	assert.Contains(t, h.Log(), "exit_on_last_event")
}

// dry_run emits records but never writes the cursor.
func TestDryRun(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(2000, 24*time.Hour, 12)
	want := r.expected(nil)
	h := r.host(hostOpts{props: r.props("dry_run=true")})
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
	_, err := os.Stat(filepath.Join(r.storage, "state.json"))
	assert.True(t, os.IsNotExist(err), "no cursor written in dry_run")
}

func itoa(i int) string {
	return string([]byte{byte('0' + i/10%10), byte('0' + i%10)})
}
