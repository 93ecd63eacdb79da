package record

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzAppend builds an event body from fuzzed JSON (as protojson reads a
// google.protobuf.Struct), plants a fuzzed number (NaN and infinities
// included) under a fuzzed key (empty or invalid UTF-8 included), and
// checks Append and AppendRecording: never a panic, always exactly one
// Fluent Bit event [EventTime, map] that decodes to the body, numbers that
// are integers as integers, values deeper than MaxDepth as their JSON text,
// and for a recording the session id field on top. Seeds:
// testdata/fuzz/FuzzAppend.
func FuzzAppend(f *testing.F) {
	f.Add([]byte(`{"event":"user.login","uid":"u1","time":"2026-11-22T10:00:00.123Z","ei":1,"success":true,"nested":{"a":[1,2.5,"x",null]}}`), "planted", math.NaN(), "sid-1", int64(1700000000), int32(5))
	f.Add([]byte(`{}`), "", math.Inf(1), "", int64(-5), int32(0))
	f.Add([]byte(`{"a":{"a":{"a":{"a":[[[[[[{"b":1}]]]]]]}}}}`), "\xff\xfe", math.Inf(-1), "\xff", int64(0), int32(999999999))
	f.Add([]byte(`{"n":9223372036854775807,"m":-9223372036854775808,"f":1e308,"g":-0.0}`), "recording_session_id", 0.5, "s", int64(math.MaxUint32)+5, int32(-1))
	f.Add([]byte(`{"x":"`+strings.Repeat("[", 10)+`"}`), "k", 1e300, "s", int64(1), int32(1))
	f.Fuzz(func(t *testing.T, data []byte, key string, num float64, sid string, sec int64, nsec int32) {
		body := &structpb.Struct{}
		if err := protojson.Unmarshal(data, body); err != nil {
			body = &structpb.Struct{}
		}
		if body.Fields == nil {
			body.Fields = map[string]*structpb.Value{}
		}
		// Planted garbage that JSON cannot carry but the wire can.
		body.Fields[key] = structpb.NewNumberValue(num)
		body.Fields[key+"\x00null"] = nil
		body.Fields[key+"\x00list"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{nil, structpb.NewNumberValue(num), {}}})
		body.Fields[key+"\x00str"] = structpb.NewStringValue(key)
		// The same garbage past MaxDepth, where it becomes JSON text.
		deep := structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
			structpb.NewNumberValue(num), structpb.NewStringValue(key), nil,
			structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{key: structpb.NewNumberValue(num)}}),
		}})
		for i := 0; i < MaxDepth+int(uint32(nsec)%3); i++ {
			deep = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"d": deep}})
		}
		body.Fields[key+"\x00deep"] = deep
		ts := time.Unix(sec, int64(nsec))

		checkEvent(t, Append(nil, ts, body), ts, body, nil)
		checkEvent(t, AppendRecording([]byte("prefix"), ts, body, sid)[len("prefix"):], ts, body, &sid)
	})
}

// checkEvent decodes one event and compares it with body.
func checkEvent(t *testing.T, b []byte, ts time.Time, body *structpb.Struct, sid *string) {
	t.Helper()
	n, o, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		t.Fatalf("not a 2-element array: %v", err)
	}
	if len(o) < 10 || o[0] != 0xd7 || o[1] != 0 {
		t.Fatalf("no EventTime")
	}
	got, _, rest, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the event", len(rest))
	}
	if want := ts; want.Unix() >= 0 && want.Unix() <= math.MaxUint32 && !got.Equal(want) {
		t.Fatalf("time %v, want %v", got, want)
	} else if want.Unix() < 0 && got.Unix() != 0 {
		t.Fatalf("time before 1970 not clamped to 0: %v", got)
	}
	m, _, err := msgp.ReadMapStrIntfBytes(o[10:], nil)
	if err != nil {
		t.Fatal(err)
	}
	want := expectStruct(body, 0)
	if sid != nil {
		want[SessionIDField] = *sid
	}
	if !same(m, want) {
		t.Fatalf("record differs from the body\n got: %#v\nwant: %#v", m, want)
	}
}

// expectStruct is the record a body must become (see appendValue).
func expectStruct(s *structpb.Struct, depth int) map[string]any {
	out := map[string]any{}
	for k, v := range s.GetFields() {
		out[k] = expectValue(v, depth+1)
	}
	return out
}

func expectValue(v *structpb.Value, depth int) any {
	if depth > MaxDepth {
		return deepText{v}
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && f >= -(1<<63) && f < (1<<63) {
			return int64(f)
		}
		return f
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return expectStruct(k.StructValue, depth)
	case *structpb.Value_ListValue:
		out := []any{}
		for _, e := range k.ListValue.GetValues() {
			out = append(out, expectValue(e, depth+1))
		}
		return out
	}
	return nil
}

// deepText stands for a value past MaxDepth: the record holds it as JSON
// text (protojson's spacing is deliberately unstable, so it is compared as
// JSON), with NaN and infinities as strings and invalid UTF-8 replaced.
type deepText struct{ v *structpb.Value }

// same compares a decoded record value with what it must be.
func same(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, e := range w {
			if ge, found := g[k]; !found || !same(ge, e) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !same(g[i], w[i]) {
				return false
			}
		}
		return true
	case int64:
		switch g := got.(type) {
		case int64:
			return g == w
		case uint64:
			return w >= 0 && uint64(w) == g
		}
		return false
	case float64:
		g, ok := got.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w))
	case deepText:
		g, ok := got.(string)
		if !ok {
			return false
		}
		var parsed any
		if err := json.Unmarshal([]byte(g), &parsed); err != nil {
			return false
		}
		return reflect.DeepEqual(parsed, jsonModel(w.v))
	}
	return reflect.DeepEqual(got, want)
}

// jsonModel is what encoding/json reads back from the text of a deep value.
func jsonModel(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return validUTF8(k.StringValue)
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
		}
		return k.NumberValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		m := map[string]any{}
		for key, e := range k.StructValue.GetFields() {
			m[validUTF8(key)] = jsonModel(e)
		}
		return m
	case *structpb.Value_ListValue:
		l := []any{}
		for _, e := range k.ListValue.GetValues() {
			l = append(l, jsonModel(e))
		}
		return l
	}
	return nil
}

// validUTF8 replaces every invalid byte with U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}
