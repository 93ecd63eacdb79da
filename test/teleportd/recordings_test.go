package teleportd

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/breaker"
	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// streamRecording reads sid's recording from start with the real client.
func streamRecording(t testing.TB, clt *client.Client, sid string, start int64) ([]*auditlogpb.EventUnstructured, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, errc := clt.StreamUnstructuredSessionEvents(ctx, sid, start)
	var out []*auditlogpb.EventUnstructured
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out, nil
			}
			out = append(out, ev)
		case err := <-errc:
			return out, err
		}
	}
}

func mustStream(t testing.TB, clt *client.Client, sid string, start int64) []*auditlogpb.EventUnstructured {
	t.Helper()
	evs, err := streamRecording(t, clt, sid, start)
	require.NoError(t, err)
	return evs
}

func ids(evs []*auditlogpb.EventUnstructured) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.GetId()
	}
	return out
}

func noBreaker(c *client.Config) { c.CircuitBreakerConfig = breaker.NoopBreakerConfig() }

func TestUnmix64(t *testing.T) {
	t.Parallel()
	for i := 0; i < 10000; i++ {
		x := rand.Uint64()
		require.Equal(t, x, unmix64(mix64(x)))
	}
}

func TestRecordingExplicitAndResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	sid := "0b8e7a44-5f0e-4b8e-9a44-1c2d3e4f5a6b"
	t0 := base.Add(time.Hour)
	s.AddRecording(sid, []Event{
		{Fields: map[string]any{"event": "session.start", "code": "T2000I", "uid": "u-start", "time": t0, "sid": sid, "user": "alice"}},
		{Fields: map[string]any{"event": "resize", "code": "T2002I", "uid": "u-resize", "time": t0.Add(time.Millisecond), "size": "120:40", "sid": sid}},
		{Fields: map[string]any{"event": "print", "time": t0.Add(2 * time.Millisecond), "data": []byte("ls\r\n"), "bytes": 4, "ms": 2, "offset": 0, "ci": 0}},
		{Fields: map[string]any{"event": "print", "time": t0.Add(3 * time.Millisecond), "data": []byte("x"), "bytes": 1, "ms": 3, "offset": 4, "ci": 1}},
		{Fields: map[string]any{"event": "session.end", "code": "T2004I", "uid": "u-end", "time": t0.Add(time.Second), "sid": sid}},
	})
	require.Equal(t, 5, s.RecordingLen(sid))
	want := s.RecordingUIDs(sid)
	require.Len(t, want, 5)
	assert.Equal(t, "u-start", want[0])
	assert.Len(t, want[2], 64, "print events have no uid: Id is a SHA-256 hex")
	assert.NotEqual(t, want[2], want[3])

	all := mustStream(t, clt, sid, 0)
	require.Equal(t, want, ids(all))
	for i, ev := range all {
		assert.EqualValues(t, i, ev.GetIndex())
		f := ev.GetUnstructured().AsMap()
		assert.EqualValues(t, i, f["ei"])
		assert.Equal(t, "acc", f["cluster_name"])
		if ev.GetType() == "print" {
			assert.NotContains(t, f, "uid")
			assert.NotContains(t, f, "code")
		} else {
			assert.Equal(t, ev.GetId(), f["uid"])
		}
	}
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("ls\r\n")), all[2].GetUnstructured().AsMap()["data"])

	// Exact resume: start_index = last index received + 1.
	for k := int64(0); k <= 5; k++ {
		rest := mustStream(t, clt, sid, k)
		require.Equal(t, want[k:], ids(rest), "start_index %d", k)
	}
	assert.Empty(t, mustStream(t, clt, sid, 99))

	// Explicit indexes: sorted, and start_index compares with Index.
	sid2 := "sparse"
	s.AddRecording(sid2, []Event{
		{Fields: map[string]any{"event": "session.end", "code": "T2004I", "uid": "c", "ei": 20, "time": t0}},
		{Fields: map[string]any{"event": "session.start", "code": "T2000I", "uid": "a", "ei": 0, "time": t0}},
		{Fields: map[string]any{"event": "resize", "code": "T2002I", "uid": "b", "ei": 10, "time": t0}},
	})
	assert.Equal(t, []string{"a", "b", "c"}, ids(mustStream(t, clt, sid2, 0)))
	assert.Equal(t, []string{"b", "c"}, ids(mustStream(t, clt, sid2, 1)))
	assert.Equal(t, []string{"c"}, ids(mustStream(t, clt, sid2, 11)))
}

func TestGenerateRecordingResumeExact(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	sid := "5d1c6f0e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
	s.GenerateRecording(sid, 500, 3)
	require.Equal(t, 500, s.RecordingLen(sid))
	full := mustStream(t, clt, sid, 0)
	require.Len(t, full, 500)
	assert.Equal(t, s.RecordingUIDs(sid), ids(full))
	metas := s.RecordingEvents(sid)
	for i, ev := range full {
		require.EqualValues(t, i, ev.GetIndex())
		require.Equal(t, metas[i].Type, ev.GetType())
		require.True(t, metas[i].Time.Equal(ev.GetTime().AsTime()), "event %d", i)
	}
	assert.Equal(t, "session.start", full[0].GetType())
	assert.Equal(t, "resize", full[1].GetType())
	assert.Equal(t, "session.leave", full[498].GetType())
	assert.Equal(t, "session.end", full[499].GetType())
	assert.EqualValues(t, 499, full[499].GetUnstructured().AsMap()["ei"])

	// Resuming anywhere gives exactly the same events (print ci/offset
	// included).
	for _, k := range []int64{1, 2, 137, 498, 499} {
		rest := mustStream(t, clt, sid, k)
		require.Len(t, rest, 500-int(k))
		for i := range rest {
			require.True(t, proto.Equal(full[int(k)+i], rest[i]), "start %d event %d", k, i)
		}
	}
	// Same (sid, seed): same recording; another seed: another.
	s.GenerateRecording("other", 500, 3)
	s.GenerateRecording("again", 10, 4)
	s2 := startServer(t, Options{})
	s2.GenerateRecording(sid, 500, 3)
	assert.Equal(t, s.RecordingUIDs(sid), s2.RecordingUIDs(sid))
	assert.NotEqual(t, s.RecordingUIDs(sid)[0], s.RecordingUIDs("other")[0])
	assert.Len(t, mustStream(t, clt, "again", 0), 10)
	s.GenerateRecording("empty", 0, 1)
	assert.Empty(t, mustStream(t, clt, "empty", 0))
	assert.True(t, s.HasRecording("empty"))
}

func TestRecordingLargeStreamsFully(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	const n = 200_000
	sid := "big-session"
	s.GenerateRecording(sid, n, 11)
	t0 := time.Now()
	evs := mustStream(t, clt, sid, 0)
	el := time.Since(t0)
	t.Logf("streamed %d recording events in %v (%.0f/s)", len(evs), el, float64(len(evs))/el.Seconds())
	require.Len(t, evs, n)
	assert.Equal(t, s.RecordingUIDs(sid), ids(evs))
	var off, ci int64
	var prevMS float64
	prints := 0
	for i, ev := range evs {
		require.EqualValues(t, i, ev.GetIndex())
		if ev.GetType() != "print" {
			continue
		}
		prints++
		f := ev.GetUnstructured().AsMap()
		require.EqualValues(t, off, f["offset"], "event %d", i)
		require.EqualValues(t, ci, f["ci"], "event %d", i)
		data, err := base64.StdEncoding.DecodeString(f["data"].(string))
		require.NoError(t, err)
		require.EqualValues(t, len(data), f["bytes"])
		require.GreaterOrEqual(t, f["ms"].(float64), prevMS)
		prevMS = f["ms"].(float64)
		off += int64(len(data))
		ci++
	}
	assert.Greater(t, prints, n*9/10)
	rs := s.RecordingStats()
	assert.EqualValues(t, n, rs.EventsPerSession[sid])
	assert.EqualValues(t, 1, rs.CallsPerSession[sid])
}

func TestRecordingMissingThenAppears(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	_, err := streamRecording(t, clt, "no-such-session", 0)
	require.True(t, trace.IsNotFound(err), "%v", err)

	sid := "late-upload"
	s.GenerateRecording(sid, 20, 1)
	until := time.Now().Add(1500 * time.Millisecond)
	s.SetRecordingMissing(sid, until)
	_, err = streamRecording(t, clt, sid, 0)
	require.True(t, trace.IsNotFound(err), "%v", err)
	assert.Contains(t, err.Error(), "not found")
	time.Sleep(time.Until(until) + 10*time.Millisecond)
	assert.Len(t, mustStream(t, clt, sid, 0), 20)

	s.SetRecordingMissingFor(sid, 2)
	for i := 0; i < 2; i++ {
		_, err = streamRecording(t, clt, sid, 0)
		require.True(t, trace.IsNotFound(err), "%v", err)
	}
	assert.Len(t, mustStream(t, clt, sid, 0), 20)

	rs := s.RecordingStats()
	assert.EqualValues(t, 6, rs.Calls)
	assert.EqualValues(t, 4, rs.NotFound)
	assert.EqualValues(t, 40, rs.EventsPerSession[sid])
	assert.EqualValues(t, 5, rs.CallsPerSession[sid])
	assert.EqualValues(t, 6, s.Stats().StreamUnstructuredSessionEvents)
}

func TestRecordingFailingAndBreakAfter(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s, noBreaker)
	sid := "flaky"
	s.GenerateRecording(sid, 35, 2)
	want := s.RecordingUIDs(sid)

	s.SetRecordingFailing(sid, codes.Internal, 2)
	for i := 0; i < 2; i++ {
		evs, err := streamRecording(t, clt, sid, 0)
		require.Error(t, err)
		assert.Empty(t, evs)
		assert.Contains(t, err.Error(), "injected")
	}
	assert.Equal(t, want, ids(mustStream(t, clt, sid, 0)))

	s.SetRecordingFailing(sid, codes.Unavailable, -1)
	for i := 0; i < 3; i++ {
		_, err := streamRecording(t, clt, sid, 0)
		require.True(t, trace.IsConnectionProblem(err), "%v", err)
	}
	s.SetRecordingFailing(sid, codes.OK, 0)

	// Break after 10 events, twice: resuming each time at last index + 1
	// yields the whole recording exactly once.
	s.SetRecordingBreakAfter(sid, 10, 2)
	var got []string
	next := int64(0)
	breaks := 0
	for {
		evs, err := streamRecording(t, clt, sid, next)
		got = append(got, ids(evs)...)
		if len(evs) > 0 {
			next = evs[len(evs)-1].GetIndex() + 1
		}
		if err == nil {
			break
		}
		require.True(t, trace.IsConnectionProblem(err), "%v", err)
		require.Len(t, evs, 10)
		breaks++
		require.Less(t, breaks, 5)
	}
	assert.Equal(t, 2, breaks)
	assert.Equal(t, want, got)
	assert.EqualValues(t, 7, s.RecordingStats().Failed)
}

// TestGeneratedSessionsHaveRecordings: every generated session.upload's sid
// has a recording whose first and last events are the audit log's
// session.start and session.end; sessions whose upload was not generated
// have none.
func TestGeneratedSessionsHaveRecordings(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.Generate(GenSpec{Start: base, Count: 4000 + 7, Span: time.Hour, Seed: 9})
	s.Generate(GenSpec{Start: base.Add(2 * time.Hour), Count: 300, Span: time.Minute, Seed: 10, Precision: time.Millisecond})
	clt := identityClient(t, s)
	_, evs := exportDays(t, clt, base)
	type sess struct{ start, end, upload *auditlogpb.EventUnstructured }
	sessions := map[string]*sess{}
	for _, ev := range evs {
		sid, _ := ev.GetUnstructured().AsMap()["sid"].(string)
		if sid == "" {
			continue
		}
		x := sessions[sid]
		if x == nil {
			x = &sess{}
			sessions[sid] = x
		}
		switch ev.GetType() {
		case "session.start":
			x.start = ev
		case "session.end":
			x.end = ev
		case "session.upload":
			x.upload = ev
		}
	}
	types := map[string]int{}
	uploads, desktop := 0, 0
	for sid, x := range sessions {
		if x.upload == nil {
			assert.False(t, s.HasRecording(sid), sid)
			_, err := streamRecording(t, clt, sid, 0)
			assert.True(t, trace.IsNotFound(err), "%v", err)
			continue
		}
		uploads++
		rec := mustStream(t, clt, sid, 0)
		require.Len(t, rec, int(x.end.GetIndex())+1, sid)
		require.True(t, proto.Equal(x.start, rec[0]), sid)
		require.True(t, proto.Equal(x.end, rec[len(rec)-1]), sid)
		assert.Equal(t, s.RecordingUIDs(sid), ids(rec))
		hasDesktop := false
		for i, ev := range rec {
			require.EqualValues(t, i, ev.GetIndex())
			require.False(t, ev.GetTime().AsTime().Before(x.start.GetTime().AsTime()))
			require.False(t, ev.GetTime().AsTime().After(x.end.GetTime().AsTime()))
			types[ev.GetType()]++
			hasDesktop = hasDesktop || ev.GetType() == "desktop.recording"
			f := ev.GetUnstructured().AsMap()
			if ev.GetType() == "resize" || ev.GetType() == "session.leave" {
				assert.Equal(t, sid, f["sid"])
				assert.Equal(t, x.start.GetUnstructured().AsMap()["user"], f["user"])
			}
		}
		if hasDesktop {
			desktop++
		}
		k := 1 + int(mix64(uint64(len(rec)))%uint64(len(rec)-1))
		rest := mustStream(t, clt, sid, int64(k))
		require.Len(t, rest, len(rec)-k)
		for i := range rest {
			require.True(t, proto.Equal(rec[k+i], rest[i]))
		}
	}
	n := 0
	for _, ev := range evs {
		if ev.GetType() == "session.upload" {
			n++
		}
	}
	assert.Equal(t, n, uploads)
	assert.Greater(t, n, 500)
	assert.Less(t, uploads, len(sessions), "the partial last block has sessions without upload")
	for _, typ := range []string{"session.start", "resize", "print", "session.leave", "session.end", "desktop.recording"} {
		assert.Positive(t, types[typ], typ)
	}
	assert.Positive(t, desktop)
	assert.Less(t, desktop, uploads/3)
	t.Logf("%d recordings, %d with desktop.recording events, types %v", uploads, desktop, types)
}

func TestRecordingEventsOption(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{RecordingEvents: 7})
	s.Generate(GenSpec{Start: base, Count: 160, Span: time.Minute, Seed: 1})
	clt := identityClient(t, s)
	_, evs := exportDays(t, clt, base)
	n := 0
	for _, ev := range evs {
		if ev.GetType() != "session.end" {
			continue
		}
		n++
		assert.EqualValues(t, 6, ev.GetIndex())
		sid := ev.GetUnstructured().AsMap()["sid"].(string)
		assert.Equal(t, 7, s.RecordingLen(sid))
		assert.Len(t, mustStream(t, clt, sid, 0), 7)
	}
	assert.Equal(t, 20, n)
	uids := s.AddSession("added", base.Add(time.Hour), true)
	assert.Equal(t, 7, s.RecordingLen("added"))
	assert.Equal(t, uids[1], s.RecordingUIDs("added")[6])
}

func TestAddSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	at := base.Add(3 * time.Hour)
	sid := "8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f"
	uids := s.AddSession(sid, at, true)
	require.Len(t, uids, 3)
	items, _, err := clt.SearchUnstructuredEvents(context.Background(), base, at.Add(time.Second), "", nil, 100, types.EventOrderAscending, "")
	require.NoError(t, err)
	require.Len(t, items, 3)
	assert.Equal(t, uids, ids(items))
	assert.Equal(t, []string{"session.start", "session.end", "session.upload"}, []string{items[0].GetType(), items[1].GetType(), items[2].GetType()})
	assert.True(t, items[2].GetTime().AsTime().Equal(at))
	end := items[1].GetUnstructured().AsMap()
	assert.Equal(t, items[0].GetUnstructured().AsMap()["time"], end["session_start"])
	assert.Equal(t, end["time"], end["session_stop"])
	assert.Equal(t, sid, items[2].GetUnstructured().AsMap()["sid"])

	rec := mustStream(t, clt, sid, 0)
	require.Len(t, rec, int(items[1].GetIndex())+1)
	assert.True(t, proto.Equal(items[0], rec[0]))
	assert.True(t, proto.Equal(items[1], rec[len(rec)-1]))

	// Older servers: no session.upload; the recording is there all the same.
	old := s.AddSession("older", at, false)
	require.Len(t, old, 2)
	assert.Equal(t, old[0], s.RecordingUIDs("older")[0])
	// An explicit recording is not replaced by AddSession.
	s.AddRecording("explicit", []Event{{Fields: map[string]any{"event": "session.start", "code": "T2000I", "uid": "e0", "time": at}}})
	s.AddSession("explicit", at, true)
	assert.Equal(t, []string{"e0"}, s.RecordingUIDs("explicit"))
}

func TestRecordingAccessDenied(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.GenerateRecording("s1", 5, 1)
	clt := identityClient(t, s)
	s.SetAccess(DefaultUser, Access{ListEvents: true, UpsertLocks: true})
	_, err := streamRecording(t, clt, "s1", 0)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	assert.Contains(t, err.Error(), `access denied to perform action "read" on "session"`)
	// Another user is not concerned.
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentityFor(path, "auditor", []string{"auditor"}, time.Hour))
	other, err := connect(t, s.Addr(), client.LoadIdentityFile(path), 10*time.Second)
	require.NoError(t, err)
	assert.Len(t, mustStream(t, other, "s1", 0), 5)
	s.SetAccess(DefaultUser, FullAccess)
	assert.Len(t, mustStream(t, clt, "s1", 0), 5)
}

// BenchmarkRecordingStream streams a 1,000,000-event generated recording
// through the real client.
func BenchmarkRecordingStream(b *testing.B) {
	s := startServer(b, Options{})
	clt := identityClient(b, s)
	s.GenerateRecording("bench", 1_000_000, 1)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		evs, err := streamRecording(b, clt, "bench", 0)
		if err != nil {
			b.Fatal(err)
		}
		n += len(evs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncodeRecordingEvent measures the server-side cost of one
// generated recording event.
func BenchmarkEncodeRecordingEvent(b *testing.B) {
	s := startServer(b, Options{})
	s.GenerateRecording("bench", 1_000_000, 1)
	src := s.recording("bench")
	it := src.iter(0)
	n := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, ok := it.next(make([]byte, 0, 512))
		if !ok {
			it = src.iter(0)
		}
		n += len(out)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/event")
}

func TestRecordingsConcurrent(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.Generate(GenSpec{Start: base, Count: 1600, Span: time.Hour, Seed: 21})
	clt := identityClient(t, s, noBreaker)
	_, evs := exportDays(t, clt, base)
	var sids []string
	for _, ev := range evs {
		if ev.GetType() == "session.upload" {
			sids = append(sids, ev.GetUnstructured().AsMap()["sid"].(string))
		}
	}
	require.Len(t, sids, 200)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			var err error
			defer func() { errs <- err }()
			for i := g; i < len(sids); i += 4 {
				var rec []*auditlogpb.EventUnstructured
				rec, err = streamRecording(t, clt, sids[i], 0)
				if err != nil && !trace.IsConnectionProblem(err) {
					return
				}
				if err == nil && len(rec) != s.RecordingLen(sids[i]) {
					t.Errorf("%s: %d events, want %d", sids[i], len(rec), s.RecordingLen(sids[i]))
				}
				err = nil
			}
		}(g)
	}
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			s.Generate(GenSpec{Start: base.Add(time.Duration(i) * time.Minute), Count: 32, Span: time.Minute, Seed: int64(1000 + i)})
			s.GenerateRecording("x"+sids[i], 10, int64(i))
			s.SetRecordingBreakAfter(sids[(i*7)%len(sids)], 3, 1)
			_ = s.RecordingStats()
		}
	}()
	for g := 0; g < 4; g++ {
		require.NoError(t, <-errs)
	}
	<-done
	assert.EqualValues(t, 200, len(s.RecordingStats().CallsPerSession))
}
