package teleport

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

var quiet = logging.New(io.Discard, "teleport")

// sameItem asserts that two items are equal, their records compared as
// decoded values (map order differs between the paths).
func sameItem(t *testing.T, want, got record.Item, what ...any) {
	t.Helper()
	msg := []any{fmt.Sprint(what...)}
	if want.Data == nil {
		assert.Nil(t, got.Data, msg...)
	} else {
		wt, wb, wrest, err := record.Decode(want.Data)
		require.NoError(t, err, msg...)
		gt, gb, grest, err := record.Decode(got.Data)
		require.NoError(t, err, msg...)
		assert.Empty(t, wrest, msg...)
		assert.Empty(t, grest, msg...)
		if time.Since(wt).Abs() < time.Minute { // stamped with the current time
			assert.Less(t, wt.Sub(gt).Abs(), time.Minute, msg...)
		} else {
			assert.True(t, wt.Equal(gt), msg...)
		}
		assert.Equal(t, wb, gb, msg...)
	}
	want.Data, got.Data = nil, nil
	if want.Time.IsZero() || got.Time.IsZero() || want.Time.Sub(got.Time).Abs() > time.Minute {
		assert.Equal(t, want.Time, got.Time, msg...) // "now" stamps differ by a little
	}
	want.Time, got.Time = time.Time{}, time.Time{}
	if want.Announce != nil && got.Announce != nil && want.Announce.At.Sub(got.Announce.At).Abs() < time.Minute {
		got.Announce.At = want.Announce.At
	}
	if want.Failure != nil && got.Failure != nil && want.Failure.At.Sub(got.Failure.At).Abs() < time.Minute {
		got.Failure.At = want.Failure.At
	}
	assert.Equal(t, want, got, msg...)
}

func TestEncodeRawMatchesEncode(t *testing.T) {
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	at := start.Add(3*time.Hour + 123456789)
	ev := func(typ string, when *timestamppb.Timestamp, fields map[string]any) *auditlogpb.EventUnstructured {
		st, err := structpb.NewStruct(fields)
		require.NoError(t, err)
		return &auditlogpb.EventUnstructured{Type: typ, Id: "id-1", Time: when, Index: 7, Unstructured: st}
	}
	common := func(extra map[string]any) map[string]any {
		m := map[string]any{"cluster_name": "acc", "code": "T1000I", "time": at.Format(time.RFC3339Nano), "uid": "u-1",
			"labels": map[string]any{"env": "prod", "n": []any{1.0, "x", nil}}, "ei": 3.0}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	ts := timestamppb.New(at)
	cases := map[string]*auditlogpb.EventUnstructured{
		"plain":                   ev("role.created", ts, common(map[string]any{"event": "role.created", "name": "r"})),
		"type from body":          ev("", ts, common(map[string]any{"event": "cert.create"})),
		"no type at all":          ev("", ts, common(nil)),
		"time from body":          ev("role.created", nil, common(map[string]any{"event": "role.created"})),
		"zero envelope time":      ev("role.created", timestamppb.New(time.Unix(0, 0)), common(nil)),
		"no usable time":          ev("role.created", nil, map[string]any{"event": "role.created", "time": "yesterday"}),
		"no time field":           ev("role.created", nil, map[string]any{"event": "role.created"}),
		"before start":            ev("role.created", timestamppb.New(start.Add(-time.Second)), common(nil)),
		"skipped type":            ev("app.session.chunk", ts, common(nil)),
		"not in types":            ev("exec", ts, common(nil)),
		"upload":                  ev("session.upload", ts, common(map[string]any{"sid": "s-1", "url": "file:///x"})),
		"upload before start":     ev("session.upload", timestamppb.New(start.Add(-time.Hour)), common(map[string]any{"sid": "s-0"})),
		"upload without sid":      ev("session.upload", ts, common(nil)),
		"end":                     ev("session.end", ts, common(map[string]any{"sid": "s-2", "session_recording": "node"})),
		"end, recording off":      ev("session.end", ts, common(map[string]any{"sid": "s-3", "session_recording": "off"})),
		"end, sid nested only":    ev("session.end", ts, common(map[string]any{"x": map[string]any{"sid": "s-4"}})),
		"login ok":                ev("user.login", ts, common(map[string]any{"user": "alice", "success": true})),
		"login failed":            ev("user.login", ts, common(map[string]any{"user": "alice", "success": false, "error": "bad"})),
		"login failed, no user":   ev("user.login", ts, common(map[string]any{"success": false})),
		"login failed, no time":   ev("user.login", nil, map[string]any{"user": "bob", "success": false}),
		"login, success a string": ev("user.login", ts, common(map[string]any{"user": "bob", "success": "false"})),
		"empty body":              {Type: "x", Time: ts},
	}
	filters := []*Filter{
		NewFilter(nil, []string{"app.session.chunk"}, start),
		NewFilter([]string{"role.created", "session.upload", "user.login", "session.end", "cert.create", "app.session.chunk", ""}, nil, start),
		NewFilter(nil, nil, start),
	}
	filters[2].LoginFailures = true // lock_enabled
	for name, e := range cases {
		frame, err := proto.Marshal(&auditlogpb.ExportEventUnstructured{Event: e, Cursor: "cur-" + name})
		require.NoError(t, err)
		for fi, f := range filters {
			want := encode(e, f, quiet)
			var sl slab
			var re rawEvent
			got, cur, err := decodeRaw(frame, f, quiet, &sl, &re)
			require.NoError(t, err, name)
			assert.Equal(t, "cur-"+name, cur, name)
			sameItem(t, want, got, name, fi)
			if name == "login failed" {
				// Failed logins are read only for lock_enabled.
				assert.Equal(t, f.LoginFailures, got.Failure != nil, "filter %d", fi)
			}
		}
	}

	// A body the library rejects fails the same way on the raw path.
	bad := []byte{0x0a, 0x08, 0x2a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe}
	var typed auditlogpb.ExportEventUnstructured
	require.Error(t, proto.Unmarshal(bad, &typed))
	_, _, err := decodeRaw(bad, filters[0], quiet, &slab{}, &rawEvent{})
	assert.Error(t, err)
}

func TestSlabPiecesAreExactAndIndependent(t *testing.T) {
	var sl slab
	var pieces [][]byte
	for i := 0; i < 300; i++ {
		n := 1 + i*37%3000
		if i == 150 {
			n = 3 * slabSize // larger than a slab: its own buffer
		}
		p, ok := sl.encode(func(b []byte) ([]byte, bool) {
			for j := 0; j < n; j++ {
				b = append(b, byte(i))
			}
			return b, true
		})
		require.True(t, ok)
		require.Len(t, p, n)
		require.Equal(t, n, cap(p), "a piece cannot be appended to in place")
		pieces = append(pieces, p)
	}
	for i, p := range pieces {
		for _, c := range p {
			require.Equal(t, byte(i), c)
		}
	}
}

// standIn starts the Auth Service stand-in and dials it with a real
// teleport/api client; both end with the test.
func standIn(tb testing.TB) (*teleportd.Server, *client.Client) {
	dir := tb.TempDir()
	s, err := teleportd.Start(teleportd.Options{Dir: filepath.Join(dir, "auth")})
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	id := filepath.Join(dir, "identity")
	require.NoError(tb, s.WriteIdentity(id, time.Hour))
	clt, err := Dial(context.Background(), s.Addr(), client.LoadIdentityFile(id))
	require.NoError(tb, err)
	tb.Cleanup(func() { clt.Close() })
	return s, clt
}

// typedOnly hides the client's gRPC connection, so ExportSource takes the
// typed path.
type typedOnly struct{ *client.Client }

func (typedOnly) GetConnection() {}

type collect struct {
	mu    sync.Mutex
	items []record.Item
}

// waitSessionDone waits until the last item collected ends a recording.
func (c *collect) waitSessionDone(t *testing.T) {
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := len(c.items)
		return n > 0 && c.items[n-1].Pos.Kind == cursor.PosSessionDone
	}, 10*time.Second, time.Millisecond)
}

func (c *collect) Put(_ context.Context, it record.Item) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, it)
	return nil
}

// TestRawExportMatchesTypedExport exports the same generated chunks through
// the real client both ways.
func TestRawExportMatchesTypedExport(t *testing.T) {
	s, clt := standIn(t)
	ctx := context.Background()
	day := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	s.Generate(teleportd.GenSpec{Start: day.Add(time.Hour), Count: 3000, Span: time.Hour, Seed: 5, ChunkSize: 1000, Precision: time.Millisecond})

	f := NewFilter(nil, []string{"cert.create"}, day.Add(time.Hour+10*time.Minute))
	run := func(api AuditLog) []record.Item {
		c := &collect{}
		src := &ExportSource{API: api, Filter: f, Concurrency: 1, Log: quiet, Now: time.Now}
		for _, ch := range s.Chunks(day) {
			require.NoError(t, src.exportChunk(ctx, day, day.Format(cursor.DayLayout), ch, "", c))
		}
		return c.items
	}
	_, isRaw := AuditLog(clt).(grpcConn)
	require.True(t, isRaw)
	_, isRaw = AuditLog(typedOnly{clt}).(grpcConn)
	require.False(t, isRaw)

	raw, typed := run(clt), run(typedOnly{clt})
	require.Len(t, raw, len(typed))
	require.Len(t, typed, 3000+len(s.Chunks(day)))
	kept := 0
	for i := range typed {
		sameItem(t, typed[i], raw[i], i)
		if typed[i].Data != nil {
			kept++
		}
	}
	assert.Greater(t, kept, 1000)
	assert.Less(t, kept, 3000)

	// A resumed chunk starts after the cursor on both paths.
	c1, c2 := &collect{}, &collect{}
	ch := s.Chunks(day)[1]
	from := typed[1500].Pos.Cursor
	src := &ExportSource{API: clt, Filter: f, Concurrency: 1, Log: quiet, Now: time.Now}
	require.NoError(t, src.exportChunk(ctx, day, day.Format(cursor.DayLayout), ch, from, c1))
	src.API = typedOnly{clt}
	require.NoError(t, src.exportChunk(ctx, day, day.Format(cursor.DayLayout), ch, from, c2))
	require.Len(t, c1.items, len(c2.items))
	for i := range c1.items {
		sameItem(t, c2.items[i], c1.items[i], i)
	}

	// Errors are the typed client's: an unknown chunk is NotFound.
	_, err, _ := src.streamChunk(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: "nope"}, "d", "nope", new(string), &collect{}, &slab{})
	src.API = clt
	_, rerr, _ := src.streamChunk(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: "nope"}, "d", "nope", new(string), &collect{}, &slab{})
	require.Error(t, err)
	require.Error(t, rerr)
	assert.True(t, isNotFound(err))
	assert.True(t, isNotFound(rerr), "%v", rerr)
}

var _ stream.Stream[int]

// generatedFrames returns the wire messages of n generated events (every
// kind the stand-in makes), as the export stream delivers them.
func generatedFrames(b *testing.B, n int) [][]byte {
	s, clt := standIn(b)
	day := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	s.Generate(teleportd.GenSpec{Start: day.Add(time.Hour), Count: n, Span: time.Hour, Seed: 5, ChunkSize: n, Precision: time.Millisecond})
	raw, err := rawExportStream(context.Background(), clt, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: s.Chunks(day)[0]})
	require.NoError(b, err)
	var frames [][]byte
	for raw.next() {
		frames = append(frames, append([]byte(nil), raw.frame.b...))
	}
	require.NoError(b, raw.done())
	require.Len(b, frames, n)
	return frames
}

// BenchmarkEncodeEvent is the client-side cost of one exported event, from
// its wire bytes to a queue item: "raw" is the plugin's path (AppendWire),
// "typed" what the teleport/api client's stream costs (proto.Unmarshal into
// a Struct, then Append).
func BenchmarkEncodeEvent(b *testing.B) {
	frames := generatedFrames(b, 5000)
	f := NewFilter(nil, nil, time.Time{})
	b.Run("raw", func(b *testing.B) {
		var sl slab
		var e rawEvent
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := decodeRaw(frames[i%len(frames)], f, quiet, &sl, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var ev auditlogpb.ExportEventUnstructured
			if err := proto.Unmarshal(frames[i%len(frames)], &ev); err != nil {
				b.Fatal(err)
			}
			_ = encode(ev.GetEvent(), f, quiet)
		}
	})
}
