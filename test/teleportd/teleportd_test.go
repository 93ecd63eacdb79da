package teleportd

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/breaker"
	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var base = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func connect(t testing.TB, addr string, creds client.Credentials, dialTimeout time.Duration, mods ...func(*client.Config)) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout+5*time.Second)
	defer cancel()
	cfg := client.Config{
		Addrs:       []string{addr},
		Credentials: []client.Credentials{creds},
		DialTimeout: dialTimeout,
	}
	for _, m := range mods {
		m(&cfg)
	}
	clt, err := client.New(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { clt.Close() })
	}
	return clt, err
}

func identityClient(t testing.TB, s *Server, mods ...func(*client.Config)) *client.Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentity(path, time.Hour))
	clt, err := connect(t, s.Addr(), client.LoadIdentityFile(path), 10*time.Second, mods...)
	require.NoError(t, err)
	return clt
}

func listChunks(t testing.TB, clt *client.Client, day time.Time) []string {
	t.Helper()
	st := clt.GetEventExportChunks(context.Background(), &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(day)})
	var out []string
	for st.Next() {
		out = append(out, st.Item().GetChunk())
	}
	require.NoError(t, st.Done())
	return out
}

func exportChunk(t testing.TB, clt *client.Client, day time.Time, chunk, cursor string) []*auditlogpb.ExportEventUnstructured {
	t.Helper()
	items, err := tryExportChunk(clt, day, chunk, cursor, -1)
	require.NoError(t, err)
	return items
}

// tryExportChunk reads at most max items (max < 0: all).
func tryExportChunk(clt *client.Client, day time.Time, chunk, cursor string, max int) ([]*auditlogpb.ExportEventUnstructured, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{
		Date: timestamppb.New(day), Chunk: chunk, Cursor: cursor,
	})
	var out []*auditlogpb.ExportEventUnstructured
	for (max < 0 || len(out) < max) && st.Next() {
		out = append(out, st.Item())
	}
	return out, st.Done()
}

// exportDays exports every chunk of the given days and returns all uids.
func exportDays(t testing.TB, clt *client.Client, days ...time.Time) ([]string, []*auditlogpb.EventUnstructured) {
	t.Helper()
	var uids []string
	var evs []*auditlogpb.EventUnstructured
	for _, d := range days {
		for _, c := range listChunks(t, clt, d) {
			for _, it := range exportChunk(t, clt, d, c, "") {
				ev := it.GetEvent()
				require.Equal(t, d.Format("2006-01-02"), ev.GetTime().AsTime().UTC().Format("2006-01-02"), "chunk %s holds an event of another day", c)
				require.NotEmpty(t, it.GetCursor())
				uids = append(uids, ev.GetId())
				evs = append(evs, ev)
			}
		}
	}
	return uids, evs
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func days(from time.Time, n int) []time.Time {
	var out []time.Time
	for i := 0; i < n; i++ {
		out = append(out, from.AddDate(0, 0, i))
	}
	return out
}

func TestPingIdentityFile(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ServerVersion: "17.2.1"})
	clt := identityClient(t, s)
	pong, err := clt.Ping(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "acc", pong.ClusterName)
	assert.Equal(t, "17.2.1", pong.ServerVersion)
	assert.NotNil(t, pong.ServerFeatures)

	st := s.Stats()
	assert.EqualValues(t, 1, st.Ping)
	assert.EqualValues(t, 1, st.Calls["/proto.AuthService/Ping"])
	assert.Equal(t, DefaultUser, st.LastUser)
	assert.Positive(t, st.HandshakesOK)
}

func TestDynamicIdentityFileCreds(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ClusterName: "dyn"})
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentity(path, time.Hour))
	creds, err := client.NewDynamicIdentityFileCreds(path)
	require.NoError(t, err)
	clt, err := connect(t, s.Addr(), creds, 10*time.Second)
	require.NoError(t, err)
	pong, err := clt.Ping(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "dyn", pong.ClusterName)

	// Renewal: a rewritten identity reloads fine.
	require.NoError(t, s.WriteIdentity(path, 2*time.Hour))
	require.NoError(t, creds.Reload())
	exp, ok := creds.Expiry()
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(2*time.Hour), exp, time.Minute)
	_, err = clt.Ping(context.Background())
	require.NoError(t, err)
}

func TestKeyPairCredentials(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	dir := t.TempDir()
	crt, key, ca := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.crt")
	require.NoError(t, s.WriteKeyPair(crt, key, ca, time.Hour))
	clt, err := connect(t, s.Addr(), client.LoadKeyPair(crt, key, ca), 10*time.Second)
	require.NoError(t, err)
	pong, err := clt.Ping(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "acc", pong.ClusterName)
}

func TestExpiredIdentityRejected(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentity(path, -time.Minute))
	creds := client.LoadIdentityFile(path)
	exp, ok := creds.Expiry()
	require.True(t, ok)
	require.True(t, exp.Before(time.Now()))
	_, err := connect(t, s.Addr(), creds, 2*time.Second)
	require.Error(t, err)
	assert.Positive(t, s.Stats().HandshakesFailed)
	assert.Zero(t, s.Stats().HandshakesOK)

	// A refreshed identity connects.
	require.NoError(t, s.WriteIdentity(path, time.Hour))
	clt, err := connect(t, s.Addr(), client.LoadIdentityFile(path), 10*time.Second)
	require.NoError(t, err)
	_, err = clt.Ping(context.Background())
	require.NoError(t, err)
}

func TestForeignCARejected(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	foreign := startServer(t, Options{})
	dir := t.TempDir()
	crt, key, ca := filepath.Join(dir, "f.crt"), filepath.Join(dir, "f.key"), filepath.Join(dir, "ca.crt")
	require.NoError(t, foreign.WriteKeyPair(crt, key, "", time.Hour))
	// The client trusts the right server CA, but its certificate comes from
	// another CA: only the server-side verification can fail.
	require.NoError(t, s.WriteKeyPair(filepath.Join(dir, "ok.crt"), filepath.Join(dir, "ok.key"), ca, time.Hour))
	_, err := connect(t, s.Addr(), client.LoadKeyPair(crt, key, ca), 2*time.Second)
	require.Error(t, err)
	assert.Positive(t, s.Stats().HandshakesFailed)
	assert.Zero(t, s.Stats().Ping)
}

// genFixture: 12000 generated events over 60h across 4 UTC days plus late
// explicit events.
func genFixture(t testing.TB, s *Server) []string {
	names := s.Generate(GenSpec{Start: base.Add(-6 * time.Hour), Count: 12000, Span: 60 * time.Hour, Seed: 42, ChunkSize: 1000})
	require.NotEmpty(t, names)
	return names
}

func TestGenerateChunksAndDeterminism(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	names := genFixture(t, s)
	// 12000 events, 1000 per chunk, 4 days => >= 12 chunks, day cuts add some.
	assert.GreaterOrEqual(t, len(names), 12)
	assert.Equal(t, 12000, s.Count())
	var listed []string
	for _, d := range days(base.AddDate(0, 0, -1), 4) {
		listed = append(listed, s.Chunks(d)...)
	}
	assert.ElementsMatch(t, names, listed)

	// Same seed => same uids; different seed => different.
	s2 := startServer(t, Options{})
	genFixture(t, s2)
	assert.Equal(t, s.UIDs(nil), s2.UIDs(nil))
	s3 := startServer(t, Options{})
	s3.Generate(GenSpec{Start: base.Add(-6 * time.Hour), Count: 12000, Span: 60 * time.Hour, Seed: 43})
	assert.NotEqual(t, s.UIDs(nil)[:10], s3.UIDs(nil)[:10])
}

func TestExportStreamsEverythingOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	genFixture(t, s)
	clt := identityClient(t, s)
	all := days(base.AddDate(0, 0, -1), 4)

	uids, evs := exportDays(t, clt, all...)
	want := s.UIDs(nil)
	require.Len(t, want, 12000)
	assert.Equal(t, sorted(want), sorted(uids), "every event exactly once")
	assert.EqualValues(t, 12000, s.Stats().EventsExported)

	// Wire form: Type/Id/Time/Index derived from the raw fields, integers
	// stay integral.
	seen := map[string]int{}
	for _, ev := range evs {
		f := ev.GetUnstructured().AsMap()
		seen[ev.GetType()]++
		require.Equal(t, ev.GetType(), f["event"])
		require.Equal(t, ev.GetId(), f["uid"])
		require.Equal(t, "acc", f["cluster_name"])
		ts, err := time.Parse(time.RFC3339Nano, f["time"].(string))
		require.NoError(t, err)
		require.True(t, ts.Equal(ev.GetTime().AsTime()))
		ei := f["ei"].(float64)
		require.Equal(t, math.Trunc(ei), ei)
		require.EqualValues(t, ev.GetIndex(), ei)
		for _, k := range []string{"rx", "tx"} {
			if v, ok := f[k]; ok {
				require.Equal(t, math.Trunc(v.(float64)), v.(float64))
			}
		}
	}
	for _, typ := range GeneratedTypes {
		assert.Positive(t, seen[typ], typ)
	}

	// Late events for a past day form a new chunk of that day; chunks listed
	// before stay identical.
	day := base
	before := listChunks(t, clt, day)
	first := exportChunk(t, clt, day, before[0], "")
	s.Add(
		Event{Fields: map[string]any{"event": "user.login", "code": "T1000I", "time": day.Add(time.Hour).Format(time.RFC3339Nano), "uid": "late-1", "ei": 0, "user": "zed", "success": true}},
		Event{Fields: map[string]any{"event": "role.created", "code": "T9000I", "time": day.Add(2 * time.Hour), "uid": "late-2", "ei": 0, "name": "x"}},
	)
	after := listChunks(t, clt, day)
	require.Len(t, after, len(before)+1)
	assert.Equal(t, before, after[:len(before)])
	late := exportChunk(t, clt, day, after[len(before)], "")
	require.Len(t, late, 2)
	assert.Equal(t, "late-1", late[0].GetEvent().GetId())
	assert.Equal(t, "late-2", late[1].GetEvent().GetId())
	assert.Equal(t, "acc", late[1].GetEvent().GetUnstructured().AsMap()["cluster_name"])
	again := exportChunk(t, clt, day, before[0], "")
	require.Equal(t, len(first), len(again))
	for i := range first {
		require.Equal(t, first[i].GetEvent().GetId(), again[i].GetEvent().GetId())
		require.Equal(t, first[i].GetCursor(), again[i].GetCursor())
	}
	uids, _ = exportDays(t, clt, all...)
	assert.Equal(t, sorted(s.UIDs(nil)), sorted(uids))
	assert.Len(t, uids, 12002)
}

func TestExportResumeAndErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	genFixture(t, s)
	clt := identityClient(t, s)
	day := base
	chunks := listChunks(t, clt, day)
	require.NotEmpty(t, chunks)
	full := exportChunk(t, clt, day, chunks[1], "")
	require.Greater(t, len(full), 10)

	for _, k := range []int{1, 7, len(full) - 1} {
		part, err := tryExportChunk(clt, day, chunks[1], "", k)
		require.NoError(t, err)
		require.Len(t, part, k)
		rest := exportChunk(t, clt, day, chunks[1], part[k-1].GetCursor())
		require.Len(t, rest, len(full)-k)
		for i := range rest {
			require.Equal(t, full[k+i].GetEvent().GetId(), rest[i].GetEvent().GetId())
		}
	}
	// Cursor at the end: nothing more.
	assert.Empty(t, exportChunk(t, clt, day, chunks[1], full[len(full)-1].GetCursor()))

	_, err := tryExportChunk(clt, day, "no-such-chunk", "", -1)
	assert.True(t, trace.IsNotFound(err), "%v", err)
	_, err = tryExportChunk(clt, day.AddDate(0, 0, 1), chunks[1], "", -1)
	assert.True(t, trace.IsNotFound(err), "chunk of another day: %v", err)
	_, err = tryExportChunk(clt, day, chunks[1], "garbage", -1)
	assert.True(t, trace.IsBadParameter(err), "%v", err)
	// A cursor of another chunk is garbage too.
	other := exportChunk(t, clt, day, chunks[2], "")
	_, err = tryExportChunk(clt, day, chunks[1], other[0].GetCursor(), -1)
	assert.True(t, trace.IsBadParameter(err), "%v", err)
}

// searchAll pages through [from, to) and checks the LastKey contract.
func searchAll(t testing.TB, clt *client.Client, from, to time.Time, typs []string, limit int, order types.EventOrder) ([]string, int) {
	t.Helper()
	var out []string
	key := ""
	pages := 0
	for {
		items, next, err := clt.SearchUnstructuredEvents(context.Background(), from, to, "default", typs, limit, order, key)
		require.NoError(t, err)
		pages++
		for _, it := range items {
			out = append(out, it.GetId())
		}
		eff := limit
		if eff <= 0 || eff > MaxSearchLimit {
			eff = MaxSearchLimit
		}
		if next == "" {
			require.Less(t, len(items), eff, "a full page must carry a LastKey")
			return out, pages
		}
		require.NotEmpty(t, items)
		require.NotEqual(t, key, next)
		key = next
		require.Less(t, pages, 10000)
	}
}

func TestSearchPaging(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	genFixture(t, s)
	// Explicit events interleaved, including one sharing a generated timestamp.
	s.Add(Event{Fields: map[string]any{"event": "lock.created", "time": base.Add(90 * time.Minute), "uid": "x-1", "ei": 0}})
	clt := identityClient(t, s)

	from, to := base, base.Add(48*time.Hour)
	inWindow := func(m EventMeta) bool { return !m.Time.Before(from) && m.Time.Before(to) }
	want := s.UIDs(inWindow)
	require.Greater(t, len(want), 5000)

	got, pages := searchAll(t, clt, from, to, nil, 700, types.EventOrderAscending)
	assert.Equal(t, want, got)
	assert.Equal(t, len(want)/700+1, pages)

	got, _ = searchAll(t, clt, from, to, nil, 700, types.EventOrderDescending)
	rev := slices.Clone(want)
	slices.Reverse(rev)
	assert.Equal(t, rev, got)

	// Exact multiple of the limit: the last full page has a LastKey, the
	// next one is empty.
	got, _ = searchAll(t, clt, from, to, nil, len(want), types.EventOrderAscending)
	assert.Equal(t, want, got)

	// Default limit (10000): pages are cut at ~1 MiB like Teleport.
	items, next, err := clt.SearchUnstructuredEvents(context.Background(), from, to, "", nil, 0, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.NotEmpty(t, next)
	assert.Less(t, len(items), len(want))
	got, _ = searchAll(t, clt, from, to, nil, 0, types.EventOrderAscending)
	assert.Equal(t, want, got)

	// Types filter.
	typs := []string{"session.end", "lock.created"}
	wantT := s.UIDs(func(m EventMeta) bool { return inWindow(m) && slices.Contains(typs, m.Type) })
	require.NotEmpty(t, wantT)
	got, _ = searchAll(t, clt, from, to, typs, 333, types.EventOrderAscending)
	assert.Equal(t, wantT, got)
	assert.Contains(t, got, "x-1")

	// Bad key / namespace.
	_, _, err = clt.SearchUnstructuredEvents(context.Background(), from, to, "default", nil, 10, types.EventOrderAscending, "garbage")
	assert.True(t, trace.IsBadParameter(err), "%v", err)
	_, _, err = clt.SearchUnstructuredEvents(context.Background(), from, to, "other", nil, 10, types.EventOrderAscending, "")
	assert.True(t, trace.IsBadParameter(err), "%v", err)
}

func TestSearchTiesAndDenseTime(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	// 300 events sharing 3 timestamps (Span shorter than Count ns) and a
	// zero-span run: order must be (time, uid) and paging exact.
	s.Generate(GenSpec{Start: base, Count: 300, Span: 3, Seed: 1})
	s.Generate(GenSpec{Start: base.Add(time.Nanosecond), Count: 50, Seed: 2})
	// Teleport-like millisecond precision: ~10 events per millisecond.
	s.Generate(GenSpec{Start: base.Add(time.Millisecond + 300*time.Microsecond), Count: 500, Span: 50 * time.Millisecond, Seed: 3, Precision: time.Millisecond})
	clt := identityClient(t, s)
	want := s.UIDs(nil)
	require.Len(t, want, 850)
	got, _ := searchAll(t, clt, base, base.Add(time.Second), nil, 7, types.EventOrderAscending)
	assert.Equal(t, want, got)
	got, _ = searchAll(t, clt, base, base.Add(time.Second), nil, 11, types.EventOrderDescending)
	slices.Reverse(want)
	assert.Equal(t, want, got)

	ms := s.UIDsInRange(base.Add(time.Millisecond), base.Add(time.Second), func(m EventMeta) bool { return m.Time.Nanosecond()%1e6 == 0 })
	assert.Len(t, ms, 500)
	uids, _ := exportDays(t, clt, base)
	assert.Equal(t, sorted(s.UIDs(nil)), sorted(uids))
}

func TestSessionsConsistent(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.Generate(GenSpec{Start: base, Count: 4000, Span: time.Hour, Seed: 9})
	clt := identityClient(t, s)
	_, evs := exportDays(t, clt, base)
	type sess struct{ start, end, upload, data map[string]any }
	sessions := map[string]*sess{}
	for _, ev := range evs {
		f := ev.GetUnstructured().AsMap()
		sid, _ := f["sid"].(string)
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
			x.start = f
		case "session.end":
			x.end = f
		case "session.upload":
			x.upload = f
		case "session.data":
			x.data = f
		}
	}
	require.Len(t, sessions, 4000/16*2)
	for sid, x := range sessions {
		require.NotNil(t, x.start, sid)
		require.NotNil(t, x.end, sid)
		require.NotNil(t, x.upload, sid)
		require.NotNil(t, x.data, sid)
		assert.Equal(t, x.start["time"], x.end["session_start"])
		assert.Equal(t, x.end["time"], x.end["session_stop"])
		assert.Equal(t, x.start["user"], x.end["user"])
		assert.Equal(t, []any{x.start["user"]}, x.end["participants"])
		assert.Equal(t, x.start["server_id"], x.end["server_id"])
		ts := func(f map[string]any) time.Time {
			v, err := time.Parse(time.RFC3339Nano, f["time"].(string))
			require.NoError(t, err)
			return v
		}
		assert.True(t, ts(x.start).Before(ts(x.data)))
		assert.True(t, ts(x.data).Before(ts(x.end)))
		assert.True(t, ts(x.end).Before(ts(x.upload)))
		assert.EqualValues(t, 2147483647, x.upload["ei"])
		assert.EqualValues(t, 2147483646, x.data["ei"])
	}
}

func TestExportUnimplementedSwitch(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ExportUnimplemented: true})
	genFixture(t, s)
	clt := identityClient(t, s)
	st := clt.GetEventExportChunks(context.Background(), &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(base)})
	require.False(t, st.Next())
	err := st.Done()
	assert.True(t, trace.IsNotImplemented(err), "%v", err)
	_, err = tryExportChunk(clt, base, s.Chunks(base)[0], "", -1)
	assert.True(t, trace.IsNotImplemented(err), "%v", err)
	// Search still works.
	items, _, err := clt.SearchUnstructuredEvents(context.Background(), base, base.Add(time.Hour), "", nil, 10, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.Len(t, items, 10)
	assert.EqualValues(t, 2, s.Stats().Unimplemented)

	s.SetExportUnimplemented(false)
	assert.NotEmpty(t, listChunks(t, clt, base))
	// Session recordings do not depend on the switch: "x" has none.
	_, errc := clt.StreamUnstructuredSessionEvents(context.Background(), "x", 0)
	assert.True(t, trace.IsNotFound(<-errc))
	assert.EqualValues(t, 1, s.Stats().StreamUnstructuredSessionEvents)
}

func TestStopRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	genFixture(t, s)
	addr := s.Addr()
	clt := identityClient(t, s)
	_, err := clt.Ping(context.Background())
	require.NoError(t, err)

	// An in-flight export is cut by Stop and resumes after Restart.
	chunk := s.Chunks(base)[0]
	part, err := tryExportChunk(clt, base, chunk, "", 10)
	require.NoError(t, err)

	s.Stop()
	assert.False(t, s.Running())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = clt.Ping(ctx)
	cancel()
	require.Error(t, err)
	assert.True(t, trace.IsConnectionProblem(err) || trace.IsLimitExceeded(err) || ctx.Err() != nil, "%v", err)

	require.NoError(t, s.Restart())
	assert.Equal(t, addr, s.Addr())
	// Poll slowly: the client's default circuit breaker trips after 10
	// calls with >= 90% failures (see TestClientCircuitBreaker).
	require.Eventually(t, func() bool {
		_, err := clt.Ping(context.Background())
		return err == nil
	}, 10*time.Second, 400*time.Millisecond)
	rest := exportChunk(t, clt, base, chunk, part[9].GetCursor())
	assert.Len(t, rest, len(exportChunk(t, clt, base, chunk, ""))-10)
	assert.EqualValues(t, 2, s.Stats().Starts)
}

// TestClientCircuitBreaker documents a property of the real client: its
// default circuit breaker (breaker.DefaultBreakerConfig: >= 10 calls in a
// minute, >= 90% failing with Unavailable/Canceled/DeadlineExceeded/Unknown)
// trips during an outage and then refuses every call for ~60s, even after
// the server is back. breaker.NoopBreakerConfig() avoids it.
func TestClientCircuitBreaker(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	def := identityClient(t, s)
	noop := identityClient(t, s, func(c *client.Config) { c.CircuitBreakerConfig = breaker.NoopBreakerConfig() })
	s.Stop()
	for i := 0; i < 12; i++ {
		_, err := def.Ping(context.Background())
		require.Error(t, err)
		_, err = noop.Ping(context.Background())
		require.Error(t, err)
	}
	require.NoError(t, s.Restart())
	require.Eventually(t, func() bool {
		_, err := noop.Ping(context.Background())
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	_, err := def.Ping(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "breaker is tripped")
	assert.True(t, trace.IsConnectionProblem(err))
}

func TestConcurrentAddWhileStreaming(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ChunkSize: 10})
	s.Generate(GenSpec{Start: base, Count: 20000, Span: 20 * time.Hour, Seed: 5})
	clt := identityClient(t, s)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, c := range listChunks(t, clt, base) {
					if _, err := tryExportChunk(clt, base, c, "", 200); err != nil {
						t.Error(err)
						return
					}
				}
				_, _, err := clt.SearchUnstructuredEvents(context.Background(), base, base.Add(24*time.Hour), "", nil, 500, types.EventOrderDescending, "")
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		s.Add(Event{Fields: map[string]any{"event": "user.login", "time": base.Add(time.Duration(i) * time.Minute)}})
		s.Generate(GenSpec{Start: base.Add(time.Duration(i) * time.Minute), Count: 100, Span: time.Minute, Seed: int64(100 + i)})
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	assert.Equal(t, 20000+50+5000, s.Count())
	uids, _ := exportDays(t, clt, base)
	assert.Equal(t, sorted(s.UIDs(nil)), sorted(uids))
}

func TestScaleFiveMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Parallel()
	s := startServer(t, Options{})
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	end := base.Add(72 * time.Hour)
	names := s.Generate(GenSpec{Start: base, Count: 5_000_000, Span: 72 * time.Hour, Seed: 77})
	assert.InDelta(t, 1002, len(names), 2)
	assert.Equal(t, 5_000_000, s.Count())
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	assert.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(16<<20))

	clt := identityClient(t, s)
	day := base.AddDate(0, 0, 1)
	chunks := listChunks(t, clt, day)
	require.Len(t, chunks, 5_000_000/3/5000+1)
	t0 := time.Now()
	items := exportChunk(t, clt, day, chunks[len(chunks)/2], "")
	require.Len(t, items, 5000)
	t.Logf("exported one 5000-event chunk in %v", time.Since(t0))

	// Search near the end is fast (binary search) and exact.
	t0 = time.Now()
	got, _ := searchAll(t, clt, end.Add(-time.Minute), end, nil, 300, types.EventOrderAscending)
	assert.Equal(t, s.UIDsInRange(end.Add(-time.Minute), end, nil), got)
	assert.InDelta(t, 5_000_000/72/60, len(got), 2)
	assert.Less(t, time.Since(t0), 3*time.Second)
}

func BenchmarkExportThroughput(b *testing.B) {
	s := startServer(b, Options{})
	s.Generate(GenSpec{Start: base, Count: 1_000_000, Span: 24 * time.Hour, Seed: 3})
	clt := identityClient(b, s)
	chunks := listChunks(b, clt, base)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		c := chunks[i%len(chunks)]
		st := clt.ExportUnstructuredEvents(context.Background(), &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(base), Chunk: c})
		for st.Next() {
			n++
		}
		if err := st.Done(); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func TestWireEncodingMatchesProto(t *testing.T) {
	t.Parallel()
	st := newStore("acc", 0)
	st.generate(GenSpec{Start: base.Add(-time.Hour), Count: 5000, Span: 3 * time.Hour, Seed: 11})
	seg := st.segsAsc[0]
	for i := 0; i < seg.count; i++ {
		var w pbw
		seg.appendEvent(&w, i)
		got := &auditlogpb.EventUnstructured{}
		require.NoError(t, proto.Unmarshal(w.b, got))
		require.True(t, proto.Equal(seg.event(i), got), "event %d", i)
	}
	// Long values force multi-byte lengths.
	long := strings.Repeat("x", 70000)
	names, err := st.add([]Event{{Fields: map[string]any{"event": "x", "time": base, "uid": "u", "big": long, "n": []string{"a", long}, "m": map[string]any{"k": long, "i": 7}}}})
	require.NoError(t, err)
	c := st.chunks[names[0]]
	var w pbw
	m := w.begin(1)
	c.appendEvent(&w, 0)
	w.end(m)
	w.str(2, "cursor")
	got := &auditlogpb.ExportEventUnstructured{}
	require.NoError(t, proto.Unmarshal(w.b, got))
	assert.Equal(t, "cursor", got.GetCursor())
	f := got.GetEvent().GetUnstructured().AsMap()
	assert.Equal(t, long, f["big"])
	assert.Equal(t, []any{"a", long}, f["n"])
	assert.Equal(t, map[string]any{"k": long, "i": 7.0}, f["m"])
}

// BenchmarkEncodeEvent measures the server-side cost of one generated event.
func BenchmarkEncodeEvent(b *testing.B) {
	st := newStore("acc", 0)
	st.generate(GenSpec{Start: base, Count: 1_000_000, Span: 24 * time.Hour, Seed: 1})
	seg := st.segsAsc[0]
	n := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w := pbw{b: make([]byte, 0, 600)}
		seg.appendEvent(&w, i%1_000_000)
		n += len(w.b)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/event")
}

// NoSessions generates the same number of events, none of them part of a
// session (no sid, no session kinds), for benchmarks of the search alone.
func TestNoSessions(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{NoSessions: true})
	genFixture(t, s)
	clt := identityClient(t, s)
	kinds, n := map[string]int{}, 0
	for key := ""; ; {
		evs, next, err := clt.SearchUnstructuredEvents(context.Background(), base.Add(-24*time.Hour), base.Add(96*time.Hour), "default", nil, 1000, types.EventOrderAscending, key)
		require.NoError(t, err)
		for _, ev := range evs {
			kinds[ev.GetType()]++
			assert.NotContains(t, ev.GetUnstructured().GetFields(), "sid", ev.GetType())
		}
		n += len(evs)
		if key = next; key == "" {
			break
		}
	}
	assert.Equal(t, 12000, n)
	assert.NotContains(t, kinds, "session.start")
	assert.NotContains(t, kinds, "session.end")
	assert.Greater(t, kinds["user.login"], 3000)
}
