package teleport

import (
	"context"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

func TestEncodeRawSessionMatchesEncode(t *testing.T) {
	at := time.Date(2026, 11, 20, 3, 0, 0, 123456789, time.UTC)
	ev := func(typ string, when *timestamppb.Timestamp, fields map[string]any) *auditlogpb.EventUnstructured {
		st, err := structpb.NewStruct(fields)
		require.NoError(t, err)
		return &auditlogpb.EventUnstructured{Type: typ, Id: "id-1", Time: when, Index: 41, Unstructured: st}
	}
	print := func(extra map[string]any) map[string]any {
		m := map[string]any{"event": "print", "ei": 41.0, "ci": 40.0, "bytes": 12.0, "ms": 2300.0, "offset": 5120.0,
			"time": at.Format(time.RFC3339Nano), "data": "bHMgLWxhCg==", "nested": map[string]any{"a": []any{1.0, "x", nil}}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	ts := timestamppb.New(at)
	cases := map[string]*auditlogpb.EventUnstructured{
		"print":                 ev("print", ts, print(nil)),
		"type from body":        ev("", ts, print(nil)),
		"no type at all":        ev("", ts, map[string]any{"ei": 1.0}),
		"time from body":        ev("print", nil, print(nil)),
		"zero envelope time":    ev("print", timestamppb.New(time.Unix(0, 0)), print(nil)),
		"no usable time":        ev("print", nil, print(map[string]any{"time": "yesterday"})),
		"skipped type":          ev("resize", ts, print(map[string]any{"event": "resize"})),
		"skipped, type in body": ev("", ts, print(map[string]any{"event": "resize"})),
		"body has the sid key":  ev("print", ts, print(map[string]any{record.SessionIDField: "forged"})),
		"empty body":            {Type: "session.start", Index: 0, Time: ts},
	}
	src := &SessionSource{Skip: []string{"resize"}, Log: quiet}
	src.init()
	for name, e := range cases {
		frame, err := proto.Marshal(e)
		require.NoError(t, err)
		want := src.encode(e, "sess-1")
		var sl slab
		var re rawEvent
		idx, got, err := src.decodeRawSession(frame, "sess-1", &sl, &re)
		require.NoError(t, err, name)
		assert.Equal(t, e.GetIndex(), idx, name)
		sameItem(t, want, got, name)
	}

	// A body the library rejects fails the same way on the raw path.
	bad := []byte{0x2a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe}
	var typed auditlogpb.EventUnstructured
	require.Error(t, proto.Unmarshal(bad, &typed))
	_, _, err := src.decodeRawSession(bad, "sess-1", &slab{}, &rawEvent{})
	assert.Error(t, err)
}

// TestRawSessionMatchesTypedSession streams the same recordings through the
// real client both ways: whole, resumed, missing and broken off.
func TestRawSessionMatchesTypedSession(t *testing.T) {
	s, clt := standIn(t)
	ctx := context.Background()
	_, isRaw := SessionAPI(clt).(grpcConn)
	require.True(t, isRaw)
	_, isRaw = SessionAPI(typedOnly{clt}).(grpcConn)
	require.False(t, isRaw)

	run := func(api SessionAPI, sid string, from int64) ([]record.Item, bool, error) {
		c := &collect{}
		src := &SessionSource{API: api, Skip: []string{"resize"}, Log: quiet, Now: time.Now}
		src.init()
		_, done, err := src.stream(ctx, &job{id: sid, next: from}, c)
		return c.items, done, err
	}
	same := func(sid string, from int64) []record.Item {
		raw, rdone, rerr := run(clt, sid, from)
		typed, tdone, terr := run(typedOnly{clt}, sid, from)
		require.NoError(t, rerr)
		require.NoError(t, terr)
		require.True(t, rdone)
		require.True(t, tdone)
		require.Len(t, raw, len(typed))
		for i := range typed {
			sameItem(t, typed[i], raw[i], sid, i)
		}
		return raw
	}

	s.GenerateRecording("sess-a", 3000, 7)
	items := same("sess-a", 0)
	end := len(items) - 1
	assert.Equal(t, cursor.Pos{Kind: cursor.PosSessionDone, ID: "sess-a"}, items[end].Pos, "the end last")
	records, fromHalf := 0, 0
	for _, it := range items[:end] {
		// Skipped events are not queued: their positions ride on the
		// next record (runs shorter than skippedPositionEvery).
		require.NotNil(t, it.Data, "only records before the end")
		records++
		if it.Pos.Index > 1500 {
			fromHalf++
		}
		_, body, _, err := record.Decode(it.Data)
		require.NoError(t, err)
		require.Equal(t, "sess-a", body[record.SessionIDField])
	}
	assert.Greater(t, records, 2000, "resize events are skipped, the rest kept")
	assert.Less(t, records, 3000)

	resumed := same("sess-a", 1500)
	require.Len(t, resumed, fromHalf+1, "the records from event 1500 on, and the end")
	assert.Equal(t, items[len(items)-fromHalf-1:], resumed, "the same records as the whole stream's")

	// Errors are the typed client's: a missing recording is NotFound, a
	// broken stream a plain error after the events it delivered.
	s.GenerateRecording("sess-b", 100, 8)
	for name, api := range map[string]SessionAPI{"raw": clt, "typed": typedOnly{clt}} {
		s.SetRecordingMissingFor("sess-b", 1)
		got, done, err := run(api, "sess-b", 0)
		assert.True(t, isNotFound(err), "%s: %v", name, err)
		assert.False(t, done, name)
		assert.Empty(t, got, name)

		s.SetRecordingBreakAfter("sess-b", 30, 1)
		c := &collect{}
		src := &SessionSource{API: api, Skip: []string{"resize"}, Log: quiet, Now: time.Now}
		src.init()
		j := &job{id: "sess-b"}
		_, done, err = src.stream(ctx, j, c)
		require.Error(t, err, name)
		assert.False(t, isNotFound(err), name)
		assert.False(t, done, name)
		assert.Equal(t, int64(30), j.next, "%s: a retry resumes after the 30 events delivered", name)
		require.NotEmpty(t, c.items, name)
		assert.LessOrEqual(t, c.items[len(c.items)-1].Pos.Index, int64(30), name)

		s.SetRecordingFailing("sess-b", codes.PermissionDenied, 1)
		_, _, err = run(api, "sess-b", 0)
		assert.Error(t, err, name)
	}
}

// TestSkippedEventsQueueAPositionNowAndThen: a recording whose events are
// all skipped (a long desktop recording, say) queues its position on its
// own every skippedPositionEvery events, so a restart reads at most that
// many again, and not one item per event.
func TestSkippedEventsQueueAPositionNowAndThen(t *testing.T) {
	s, clt := standIn(t)
	s.GenerateRecording("sess-s", 5000, 3)
	c := &collect{}
	src := &SessionSource{API: clt, Log: quiet, Now: time.Now,
		Skip: []string{"session.start", "session.end", "resize", "session.leave", "print", "desktop.recording"}}
	src.init()
	_, done, err := src.stream(context.Background(), &job{id: "sess-s"}, c)
	require.NoError(t, err)
	require.True(t, done)
	require.Len(t, c.items, 5000/skippedPositionEvery+1)
	for i, it := range c.items[:len(c.items)-1] {
		assert.Nil(t, it.Data)
		assert.Equal(t, int64((i+1)*skippedPositionEvery), it.Pos.Index)
	}
	assert.Equal(t, cursor.PosSessionDone, c.items[len(c.items)-1].Pos.Kind)
}
