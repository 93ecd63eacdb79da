package record

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// same asserts that AppendWire(wire) and Append(proto.Unmarshal(wire)) make
// the same record (as decoded values: map order differs), or that
// AppendWire declines.
func sameAsAppend(t *testing.T, wire []byte) (ok bool) {
	t.Helper()
	ts := time.Date(2026, 11, 22, 2, 52, 41, 733000123, time.UTC)
	prefix := []byte{0xc0}
	got, ok := AppendWire(append([]byte(nil), prefix...), ts, wire)
	var st structpb.Struct
	uerr := proto.Unmarshal(wire, &st)
	if !ok {
		assert.Equal(t, prefix, got, "b comes back unchanged")
		return false
	}
	require.NoError(t, uerr, "AppendWire accepted what proto.Unmarshal rejects")
	want := Append(nil, ts, &st)
	ge, gb := decode(t, got[1:])
	we, wb := decode(t, want)
	assert.Equal(t, we, ge)
	assert.Equal(t, nanSafe(wb), nanSafe(gb))

	// The recording variant agrees with AppendRecording, or declines only
	// for a body that holds the session ID field already.
	got, rok := AppendWireRecording(append([]byte(nil), prefix...), ts, wire, "sess-1")
	if _, clash := st.GetFields()[SessionIDField]; clash {
		assert.False(t, rok, "a body with %s is left to AppendRecording", SessionIDField)
		assert.Equal(t, prefix, got, "b comes back unchanged")
		return true
	}
	require.True(t, rok, "AppendWire accepted the body but AppendWireRecording did not")
	want = AppendRecording(nil, ts, &st, "sess-1")
	ge, gb = decode(t, got[1:])
	we, wb = decode(t, want)
	assert.Equal(t, we, ge)
	assert.Equal(t, nanSafe(wb), nanSafe(gb))
	assert.Equal(t, "sess-1", gb[SessionIDField])
	return true
}

func TestAppendWireRecordingDeclines(t *testing.T) {
	ts := time.Date(2026, 11, 22, 2, 52, 41, 0, time.UTC)
	clash := wireOf(t, map[string]any{"event": "print", SessionIDField: "forged"})
	assert.True(t, sameAsAppend(t, clash))
	out, ok := AppendWireRecording([]byte{1}, ts, clash, "s")
	assert.False(t, ok)
	assert.Equal(t, []byte{1}, out)
	out, ok = AppendWireRecording([]byte{1}, ts, wireOf(t, map[string]any{"event": "print"}), "")
	assert.False(t, ok, "an empty session ID is left to AppendRecording")
	assert.Equal(t, []byte{1}, out)
}

// nanSafe replaces NaN numbers by a marker, so that equal records compare
// equal (NaN != NaN).
func nanSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "NaN (number)"
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = nanSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = nanSafe(e)
		}
		return out
	}
	return v
}

func wireOf(t *testing.T, m map[string]any) []byte {
	t.Helper()
	st, err := structpb.NewStruct(m)
	require.NoError(t, err)
	b, err := proto.Marshal(st)
	require.NoError(t, err)
	return b
}

func TestAppendWireMatchesAppend(t *testing.T) {
	assert.True(t, sameAsAppend(t, wireOf(t, sample)))
	assert.True(t, sameAsAppend(t, wireOf(t, map[string]any{})))
	assert.True(t, sameAsAppend(t, nil))
	big := map[string]any{}
	for i := 0; i < 200; i++ { // more keys than the on-stack duplicate check holds
		big[fmt.Sprintf("k%03d", i)] = float64(i)
	}
	big["long"] = strings.Repeat("é", 40000)
	big["list"] = []any{1.0, -2.5, "x", true, nil, []any{}, map[string]any{"a": []any{map[string]any{}}}}
	big["nums"] = []any{math.MaxInt64 * 1.0, -math.MaxInt64 * 1.0, 1e300, -0.0, math.Inf(1), 3.0000001}
	assert.True(t, sameAsAppend(t, wireOf(t, big)))
}

func TestAppendWireRandomStructs(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.Intn(7); {
		case k == 0:
			return nil
		case k == 1:
			return r.NormFloat64() * 1e6
		case k == 2:
			return float64(r.Int63n(1 << 40))
		case k == 3:
			return r.Intn(2) == 0
		case k == 4 && depth < 6:
			m := map[string]any{}
			for i := r.Intn(20); i > 0; i-- {
				m[fmt.Sprintf("f%d", r.Intn(40))] = gen(depth + 1)
			}
			return m
		case k == 5 && depth < 6:
			l := make([]any, r.Intn(6))
			for i := range l {
				l[i] = gen(depth + 1)
			}
			return l
		default:
			return strings.Repeat("ab😀", r.Intn(50))
		}
	}
	for i := 0; i < 2000; i++ {
		m, _ := gen(0).(map[string]any)
		if m == nil {
			m = map[string]any{"x": gen(1)}
		}
		require.True(t, sameAsAppend(t, wireOf(t, m)), "case %d", i)
	}
}

// Hand-made encodings the protobuf library reads in its own way: AppendWire
// declines them (or agrees).
func TestAppendWireDeclinesOddEncodings(t *testing.T) {
	entry := func(key string, val []byte) []byte {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, key)
		if val != nil {
			e = protowire.AppendTag(e, 2, protowire.BytesType)
			e = protowire.AppendBytes(e, val)
		}
		var s []byte
		s = protowire.AppendTag(s, 1, protowire.BytesType)
		return protowire.AppendBytes(s, e)
	}
	str := func(v string) []byte {
		var b []byte
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		return protowire.AppendString(b, v)
	}
	num := func(v float64) []byte {
		var b []byte
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v))
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}

	// A repeated key: the library keeps the last value.
	assert.False(t, sameAsAppend(t, cat(entry("a", str("1")), entry("a", str("2")))))
	// Two kinds in one Value: the last wins in the library.
	assert.False(t, sameAsAppend(t, entry("a", cat(str("x"), num(1)))))
	// Invalid UTF-8: the library fails.
	assert.False(t, sameAsAppend(t, entry("a", str("\xff"))))
	assert.False(t, sameAsAppend(t, entry("\xff", str("a"))))
	// Truncated.
	w := wireOf(t, sample)
	assert.False(t, sameAsAppend(t, w[:len(w)-1]))
	// An entry without a value is an empty Value (null); without a key, "".
	assert.True(t, sameAsAppend(t, entry("a", nil)))
	assert.True(t, sameAsAppend(t, entry("", str("v"))))
	// Unknown fields are skipped.
	unk := protowire.AppendTag(nil, 9, protowire.VarintType)
	unk = protowire.AppendVarint(unk, 5)
	assert.True(t, sameAsAppend(t, cat(unk, entry("a", cat(unk, str("x"))))))
	// Deeper than MaxDepth: Append keeps JSON text; AppendWire declines.
	v := map[string]any{"leaf": "x"}
	for i := 0; i < MaxDepth+2; i++ {
		v = map[string]any{"n": v}
	}
	assert.False(t, sameAsAppend(t, wireOf(t, v)))
	v = map[string]any{"leaf": "x"}
	for i := 0; i < MaxDepth-2; i++ {
		v = map[string]any{"n": v}
	}
	assert.True(t, sameAsAppend(t, wireOf(t, v)))
}

func TestWireFields(t *testing.T) {
	w := wireOf(t, map[string]any{"event": "user.login", "success": false, "ei": 3.0, "nested": map[string]any{"user": "x"}, "user": "alice"})
	got := map[string]any{}
	WireFields(w, func(k string, kind int, s []byte, v uint64) bool {
		switch kind {
		case 2:
			got[k] = math.Float64frombits(v)
		case 3:
			got[k] = string(s)
		case 4:
			got[k] = v != 0
		}
		return true
	})
	assert.Equal(t, map[string]any{"event": "user.login", "success": false, "ei": 3.0, "user": "alice"}, got)
}

func FuzzAppendWire(f *testing.F) {
	st, _ := structpb.NewStruct(sample)
	w, _ := proto.Marshal(st)
	f.Add(w)
	f.Fuzz(func(t *testing.T, wire []byte) {
		sameAsAppend(t, wire)
	})
}

// BenchmarkAppendWire is the direct wire-to-msgpack path.
func BenchmarkAppendWire(b *testing.B) {
	st, _ := structpb.NewStruct(sample)
	w, _ := proto.Marshal(st)
	ts := time.Now()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = AppendWire(buf[:0], ts, w)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkUnmarshalAppend is what an event costs without AppendWire: the
// client library's decoding into a Struct (maps, Values), then Append.
func BenchmarkUnmarshalAppend(b *testing.B) {
	st, _ := structpb.NewStruct(sample)
	w, _ := proto.Marshal(st)
	ts := time.Now()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var s structpb.Struct
		if err := proto.Unmarshal(w, &s); err != nil {
			b.Fatal(err)
		}
		buf = Append(buf[:0], ts, &s)
	}
	b.SetBytes(int64(len(buf)))
}

var _ = msgp.AppendNil
