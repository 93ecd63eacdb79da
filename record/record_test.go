package record

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
	"google.golang.org/protobuf/types/known/structpb"
)

// sample is a real session.end event from ../shared/samples.
var sample = map[string]any{
	"cluster_name": "acc", "code": "T2004I", "ei": 9.0, "event": "session.end",
	"interactive": true, "participants": []any{"tester"},
	"server_labels": map[string]any{"env": "acc"},
	"sid":           "46d37817-6e30-4eb4-9dbf-cf2914d15e1c",
	"time":          "2026-11-22T02:52:41.733Z", "uid": "bf369648-6b2f-436d-87d4-070152cb81b5",
	"rx": 4842.0, "ratio": 0.5, "none": nil,
}

func decode(t *testing.T, b []byte) (ext []byte, body map[string]any) {
	t.Helper()
	n, rest, err := msgp.ReadArrayHeaderBytes(b)
	require.NoError(t, err)
	require.Equal(t, uint32(2), n)
	require.Equal(t, byte(0xd7), rest[0], "fixext 8")
	require.Equal(t, byte(0), rest[1], "ext type 0 (EventTime)")
	ext, rest = rest[2:10], rest[10:]
	v, rest, err := msgp.ReadIntfBytes(rest)
	require.NoError(t, err)
	require.Empty(t, rest)
	return ext, v.(map[string]any)
}

func TestAppendKeepsShapeAndTypes(t *testing.T) {
	body, err := structpb.NewStruct(sample)
	require.NoError(t, err)
	ts := time.Date(2026, 11, 22, 2, 52, 41, 733000123, time.UTC)

	ext, got := decode(t, Append(nil, ts, body))

	assert.Equal(t, uint32(ts.Unix()), binary.BigEndian.Uint32(ext[:4]))
	assert.Equal(t, uint32(733000123), binary.BigEndian.Uint32(ext[4:]))
	assert.Equal(t, "session.end", got["event"])
	assert.Equal(t, int64(9), got["ei"], "integers stay integers")
	assert.Equal(t, int64(4842), got["rx"])
	assert.Equal(t, 0.5, got["ratio"])
	assert.Equal(t, true, got["interactive"])
	assert.Nil(t, got["none"])
	assert.Equal(t, []any{"tester"}, got["participants"], "arrays stay arrays")
	assert.Equal(t, map[string]any{"env": "acc"}, got["server_labels"], "maps stay maps")
	assert.Len(t, got, len(sample))
}

func TestAppendDeepNestingFallsBackToJSON(t *testing.T) {
	v := map[string]any{"leaf": "x"}
	for i := 0; i < MaxDepth+5; i++ {
		v = map[string]any{"n": v}
	}
	body, err := structpb.NewStruct(v)
	require.NoError(t, err)
	_, got := decode(t, Append(nil, time.Unix(1, 0), body))
	// Walk down until the JSON string appears.
	var cur any = got
	depth := 0
	for {
		m, ok := cur.(map[string]any)
		if !ok {
			break
		}
		cur = m["n"]
		depth++
	}
	s, ok := cur.(string)
	require.True(t, ok, "deepest level is kept as JSON text, got %T", cur)
	assert.Contains(t, s, `"leaf"`)
	assert.LessOrEqual(t, depth, MaxDepth+1)
}

func TestTime(t *testing.T) {
	body, _ := structpb.NewStruct(map[string]any{"time": "2026-11-22T02:52:41.733Z"})
	env := time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)
	for _, tc := range []struct {
		name string
		env  time.Time
		body *structpb.Struct
		want time.Time
		ok   bool
	}{
		{"envelope wins", env, body, env, true},
		{"body time when no envelope", time.Unix(0, 0), body, time.Date(2026, 11, 22, 2, 52, 41, 733000000, time.UTC), true},
		{"neither", time.Time{}, &structpb.Struct{}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Time(tc.env, tc.body)
			assert.Equal(t, tc.ok, ok)
			assert.True(t, tc.want.Equal(got), "got %v", got)
		})
	}
}

func TestEventTimeClampsNegative(t *testing.T) {
	b := AppendEventTime(nil, time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC))
	assert.Equal(t, []byte{0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0}, b)
}

func BenchmarkAppend(b *testing.B) {
	body, _ := structpb.NewStruct(sample)
	ts := time.Now()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = Append(buf[:0], ts, body)
	}
	b.SetBytes(int64(len(buf)))
}

func TestDecodeRoundTrip(t *testing.T) {
	body, err := structpb.NewStruct(sample)
	require.NoError(t, err)
	ts := time.Date(2026, 11, 22, 2, 52, 41, 733000123, time.UTC)
	b := Append(nil, ts, body)
	b = Append(b, ts.Add(time.Second), body)

	got, gotBody, rest, err := Decode(b)
	require.NoError(t, err)
	assert.True(t, ts.Equal(got))
	assert.Equal(t, "session.end", gotBody["event"])
	got, _, rest, err = Decode(rest)
	require.NoError(t, err)
	assert.True(t, ts.Add(time.Second).Equal(got))
	assert.Empty(t, rest)

	_, _, _, err = Decode([]byte{0x91, 0x01})
	assert.Error(t, err)
}

func TestAppendRecordingAddsSessionID(t *testing.T) {
	body, err := structpb.NewStruct(map[string]any{"event": "print", "data": "aGk=", "bytes": 2.0, "ei": 3.0})
	require.NoError(t, err)
	_, got := decode(t, AppendRecording(nil, time.Unix(5, 0), body, "sid-1"))
	assert.Equal(t, map[string]any{"event": "print", "data": "aGk=", "bytes": int64(2), "ei": int64(3), SessionIDField: "sid-1"}, got)

	// A recording event that already has the field cannot forge another session.
	body.Fields[SessionIDField] = structpb.NewStringValue("forged")
	_, got = decode(t, AppendRecording(nil, time.Unix(5, 0), body, "sid-1"))
	assert.Equal(t, "sid-1", got[SessionIDField])
	assert.Len(t, got, 5)
}
