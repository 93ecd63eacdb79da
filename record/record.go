// Package record turns Teleport audit events into Fluent Bit records: the
// msgpack event [EventTime, body], where the body is the raw Teleport event
// (the same fields the Event Handler sends) with nested values as msgpack maps
// and arrays, and the timestamp is the event's time with its nanoseconds.
package record

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/tinylib/msgp/msgp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// MaxDepth bounds nesting; deeper values are kept as their JSON text so a
// hostile event can neither blow the stack nor be dropped.
const MaxDepth = 64

// SessionIDField is the field added to every session recording record: the
// id of the session it belongs to. Audit events never carry it, so one
// rewrite_tag rule on it routes recordings (to session.<sid>.log, like the
// Event Handler's session-url) while audit events keep the input's tag.
const SessionIDField = "recording_session_id"

// Append appends the Fluent Bit event [t, body] to b and returns it.
func Append(b []byte, t time.Time, body *structpb.Struct) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = AppendEventTime(b, t)
	return appendStruct(b, body, 0)
}

// AppendRecording appends a session recording event: body plus
// SessionIDField = sessionID.
func AppendRecording(b []byte, t time.Time, body *structpb.Struct, sessionID string) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = AppendEventTime(b, t)
	fields := body.GetFields()
	_, clash := fields[SessionIDField]
	n := uint32(len(fields))
	if !clash {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	for k, v := range fields {
		if k == SessionIDField {
			continue
		}
		b = msgp.AppendString(b, k)
		b = appendValue(b, v, 1)
	}
	b = msgp.AppendString(b, SessionIDField)
	return msgp.AppendString(b, sessionID)
}

// AppendEventTime appends t as Fluent Bit's EventTime: msgpack ext type 0
// with 8 bytes, big-endian uint32 seconds then uint32 nanoseconds (what
// fluent-bit-go's FLBTime produces). Times before 1970 are clamped to 0,
// since Fluent Bit rejects negative timestamps.
func AppendEventTime(b []byte, t time.Time) []byte {
	sec, nsec := t.Unix(), t.Nanosecond()
	if sec < 0 {
		sec, nsec = 0, 0
	}
	if sec > math.MaxUint32 {
		sec = math.MaxUint32
	}
	s, n := uint32(sec), uint32(nsec)
	// 0xd7 = fixext 8, then the ext type (0).
	return append(b, 0xd7, 0x00,
		byte(s>>24), byte(s>>16), byte(s>>8), byte(s),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStruct(b []byte, s *structpb.Struct, depth int) []byte {
	fields := s.GetFields()
	b = msgp.AppendMapHeader(b, uint32(len(fields)))
	for k, v := range fields {
		b = msgp.AppendString(b, k)
		b = appendValue(b, v, depth+1)
	}
	return b
}

func appendValue(b []byte, v *structpb.Value, depth int) []byte {
	if depth > MaxDepth {
		return msgp.AppendString(b, deepJSON(v))
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return msgp.AppendString(b, k.StringValue)
	case *structpb.Value_NumberValue:
		return appendNumber(b, k.NumberValue)
	case *structpb.Value_BoolValue:
		return msgp.AppendBool(b, k.BoolValue)
	case *structpb.Value_StructValue:
		return appendStruct(b, k.StructValue, depth)
	case *structpb.Value_ListValue:
		vals := k.ListValue.GetValues()
		b = msgp.AppendArrayHeader(b, uint32(len(vals)))
		for _, e := range vals {
			b = appendValue(b, e, depth+1)
		}
		return b
	default: // null or unset
		return msgp.AppendNil(b)
	}
}

// appendNumber keeps integers integers: protobuf's Struct carries every number
// as a float64, but Teleport's fields such as ei, bytes, tx and rx are
// integers in the original JSON and downstream consumers expect them so.
func appendNumber(b []byte, f float64) []byte {
	if f == math.Trunc(f) && f >= -(1<<63) && f < (1<<63) {
		return msgp.AppendInt64(b, int64(f))
	}
	return msgp.AppendFloat64(b, f)
}

// Time returns the event time: the envelope's when set, else the body's
// RFC 3339 "time" field. ok is false when neither holds a usable time.
func Time(envelope time.Time, body *structpb.Struct) (t time.Time, ok bool) {
	if !envelope.IsZero() && envelope.Unix() > 0 {
		return envelope, true
	}
	if s := body.GetFields()["time"].GetStringValue(); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Item is one unit flowing from a Teleport source through the engine's queue
// to Fluent Bit: an encoded record and the position it advances the cursor
// to, or a position alone (a filtered event, the end of a chunk, a marker).
type Item struct {
	Data []byte     // encoded Fluent Bit event; nil for position-only items
	Pos  cursor.Pos // applied to the cursor once Data has been handed over
	// CaughtUp marks the moment a source has fetched everything there is.
	CaughtUp bool
	// Announce, when set, is a session recording this audit event announces;
	// it joins the durable state when the event is handed over.
	Announce *cursor.Announce
	// Failure, when set, is a failed login to count for lock_enabled.
	Failure *cursor.LoginFailure
	// Time is the event time (zero for position-only items).
	Time time.Time
	// ID is the hash of the audit event's id (bulk export only; 0 for
	// none): once committed, it is remembered so that a second copy the
	// Auth Service stored is not handed over again (teleport.Dedupe).
	ID uint64
	// IDs are the IDs of a callback's records, carried to its commit by
	// a position-less item at its end.
	IDs []uint64
}

// deepJSON is the JSON text of a value past MaxDepth. protojson refuses
// what a hostile wire can carry but JSON cannot (NaN, infinities, invalid
// UTF-8); rather than drop the whole subtree, those are written leniently:
// non-finite numbers as the strings "NaN", "+Inf" and "-Inf", invalid UTF-8
// with U+FFFD.
func deepJSON(v *structpb.Value) string {
	if j, err := protojson.Marshal(v); err == nil {
		return string(j)
	}
	j, err := json.Marshal(lenient(v))
	if err != nil { // unreachable: lenient leaves nothing json cannot write
		return "null"
	}
	return string(j)
}

// lenient converts v for encoding/json (see deepJSON).
func lenient(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
		}
		return k.NumberValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		m := make(map[string]any, len(k.StructValue.GetFields()))
		for key, e := range k.StructValue.GetFields() {
			m[key] = lenient(e)
		}
		return m
	case *structpb.Value_ListValue:
		l := make([]any, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			l = append(l, lenient(e))
		}
		return l
	}
	return nil
}
