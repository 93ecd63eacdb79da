package record

import (
	"encoding/binary"
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// AppendWire is Append for a body still in its protobuf wire encoding (a
// google.protobuf.Struct as it arrives from the Auth Service): it transcodes
// the wire bytes straight into the msgpack record, without building the
// Struct's maps and Values, which is most of what an event costs a client.
// The record holds the same map (keys in wire order, where Append's follow
// Go's map order) with the same values as Append's.
//
// ok is false, and b comes back unchanged, when the body holds anything whose
// meaning this path does not reproduce exactly like the protobuf library: a
// repeated key, invalid UTF-8, nesting deeper than MaxDepth, an unexpected
// wire type or a repeated oneof, truncation. The caller then decodes the
// event the ordinary way (proto.Unmarshal and Append), which also reports
// the errors the library reports.
func AppendWire(b []byte, t time.Time, body []byte) (out []byte, ok bool) {
	n0 := len(b)
	b = msgp.AppendArrayHeader(b, 2)
	b = AppendEventTime(b, t)
	b, ok = appendWireStruct(b, body, 0, "")
	if !ok {
		return b[:n0], false
	}
	return b, true
}

// AppendWireRecording is AppendRecording for a body in its wire encoding:
// the body plus SessionIDField = sessionID. A body that already holds
// SessionIDField (AppendRecording replaces it) is left to the ordinary path.
func AppendWireRecording(b []byte, t time.Time, body []byte, sessionID string) (out []byte, ok bool) {
	if sessionID == "" {
		return b, false
	}
	n0 := len(b)
	b = msgp.AppendArrayHeader(b, 2)
	b = AppendEventTime(b, t)
	b, ok = appendWireStruct(b, body, 0, sessionID)
	if !ok {
		return b[:n0], false
	}
	return b, true
}

// maxFieldNumber is the largest valid protobuf field number; the library
// rejects a message with a larger one.
const maxFieldNumber = 1<<29 - 1

// Protobuf wire types.
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtBytes   = 2
	wtFixed32 = 5
)

// wireField reads one field of a message: its number, wire type, and either
// its varint/fixed value or its bytes. n is the number of bytes consumed, 0
// on malformed input.
func wireField(p []byte) (num uint64, wt int, v uint64, data []byte, n int) {
	tag, k := uvarint(p)
	if k <= 0 {
		return 0, 0, 0, nil, 0
	}
	num, wt = tag>>3, int(tag&7)
	if num == 0 || num > maxFieldNumber {
		return 0, 0, 0, nil, 0
	}
	switch wt {
	case wtVarint:
		x, m := uvarint(p[k:])
		if m <= 0 {
			return 0, 0, 0, nil, 0
		}
		return num, wt, x, nil, k + m
	case wtFixed64:
		if len(p) < k+8 {
			return 0, 0, 0, nil, 0
		}
		return num, wt, binary.LittleEndian.Uint64(p[k:]), nil, k + 8
	case wtFixed32:
		if len(p) < k+4 {
			return 0, 0, 0, nil, 0
		}
		return num, wt, uint64(binary.LittleEndian.Uint32(p[k:])), nil, k + 4
	case wtBytes:
		l, m := uvarint(p[k:])
		if m <= 0 || l > uint64(len(p)-k-m) {
			return 0, 0, 0, nil, 0
		}
		s := k + m
		return num, wt, 0, p[s : s+int(l)], s + int(l)
	default: // groups (3, 4) and reserved types: never in these messages
		return 0, 0, 0, nil, 0
	}
}

// uvarint is binary.Uvarint with the one- and two-byte cases (tags, and
// the lengths of keys, values and entries) inlined.
func uvarint(p []byte) (uint64, int) {
	if len(p) > 0 && p[0] < 0x80 {
		return uint64(p[0]), 1
	}
	if len(p) > 1 && p[1] < 0x80 {
		return uint64(p[0]&0x7f) | uint64(p[1])<<7, 2
	}
	return binary.Uvarint(p)
}

// WireField is wireField for the other wire readers of this module (the
// export stream's envelope).
func WireField(p []byte) (num uint64, wt int, v uint64, data []byte, n int) {
	return wireField(p)
}

// countField counts the occurrences of field 1 with wire type bytes (the
// entries of Struct.fields, the values of ListValue.values); ok is false on
// malformed input.
func countField1(p []byte) (n int, ok bool) {
	for len(p) > 0 {
		num, wt, _, _, k := wireField(p)
		if k == 0 {
			return 0, false
		}
		if num == 1 {
			if wt != wtBytes {
				return 0, false
			}
			n++
		}
		p = p[k:]
	}
	return n, true
}

// maxKeys bounds the keys of one map checked for duplicates on the stack;
// larger maps are still checked, with a heap slice.
const maxKeys = 48

// appendWireStruct transcodes a Struct's fields (map<string, Value>,
// field 1) as a msgpack map whose values are at depth+1. A non-empty sid
// adds SessionIDField = sid after them (a recording's top level).
func appendWireStruct(b, p []byte, depth int, sid string) ([]byte, bool) {
	n, ok := countField1(p)
	if !ok || n >= math.MaxUint32 {
		return b, false
	}
	if sid != "" {
		n++
	}
	b = msgp.AppendMapHeader(b, uint32(n))
	var stack [maxKeys]string
	keys := stack[:0]
	for len(p) > 0 {
		var entry []byte
		if l := len(p); l >= 2 && p[0] == 1<<3|wtBytes && p[1] < 0x80 && int(p[1]) <= l-2 {
			// The usual case: field 1 with a one-byte length.
			entry, p = p[2:2+int(p[1])], p[2+int(p[1]):]
		} else {
			num, _, _, e, k := wireField(p) // well-formed: countField1 checked
			p = p[k:]
			if num != 1 {
				continue // unknown field: skipped, like the library does
			}
			entry = e
		}
		key, val, hasVal, ok := mapEntry(entry)
		if !ok || !utf8.ValidString(key) {
			return b, false
		}
		// A repeated key means "last one wins" to the library: leave that
		// rare case to it.
		for _, k := range keys {
			if len(k) == len(key) && k == key {
				return b, false
			}
		}
		if sid != "" && key == SessionIDField {
			return b, false
		}
		keys = append(keys, key)
		b = msgp.AppendString(b, key)
		if !hasVal {
			b = msgp.AppendNil(b) // an entry without value: an empty Value
			continue
		}
		if b, ok = appendWireValue(b, val, depth+1); !ok {
			return b, false
		}
	}
	if sid != "" {
		b = msgp.AppendString(b, SessionIDField)
		b = msgp.AppendString(b, sid)
	}
	return b, true
}

// mapEntry splits a map entry message into key (field 1) and value
// (field 2, a Value message).
func mapEntry(p []byte) (key string, val []byte, hasVal, ok bool) {
	// The usual encoding: key then value, each with a one-byte length.
	if l := len(p); l >= 2 && p[0] == 1<<3|wtBytes && p[1] < 0x80 && int(p[1]) <= l-2 {
		k, rest := p[2:2+int(p[1])], p[2+int(p[1]):]
		if len(rest) == 0 {
			return unsafeString(k), nil, false, true
		}
		if len(rest) >= 2 && rest[0] == 2<<3|wtBytes && rest[1] < 0x80 && int(rest[1]) == len(rest)-2 {
			return unsafeString(k), rest[2:], true, true
		}
	}
	seenKey := false
	for len(p) > 0 {
		num, wt, _, data, k := wireField(p)
		if k == 0 {
			return "", nil, false, false
		}
		p = p[k:]
		switch num {
		case 1:
			if wt != wtBytes || seenKey {
				return "", nil, false, false
			}
			key, seenKey = unsafeString(data), true
		case 2:
			if wt != wtBytes || hasVal {
				return "", nil, false, false
			}
			val, hasVal = data, true
		}
	}
	return key, val, hasVal, true
}

// appendWireValue transcodes one Value (a oneof: null_value = 1,
// number_value = 2, string_value = 3, bool_value = 4, struct_value = 5,
// list_value = 6) at depth, like appendValue.
func appendWireValue(b, p []byte, depth int) ([]byte, bool) {
	if depth > MaxDepth {
		return b, false // Append keeps such values as JSON text
	}
	// The usual encodings of a string, a number and a bool.
	if l := len(p); l >= 2 {
		switch {
		case p[0] == 3<<3|wtBytes && p[1] < 0x80 && int(p[1]) == l-2:
			if !utf8.Valid(p[2:]) {
				return b, false
			}
			return msgp.AppendStringFromBytes(b, p[2:]), true
		case p[0] == 2<<3|wtFixed64 && l == 9:
			return appendNumber(b, math.Float64frombits(binary.LittleEndian.Uint64(p[1:]))), true
		case p[0] == 4<<3|wtVarint && l == 2 && p[1] < 0x80:
			return msgp.AppendBool(b, p[1] != 0), true
		}
	}
	var (
		kind uint64
		v    uint64
		data []byte
	)
	for len(p) > 0 {
		num, wt, x, d, k := wireField(p)
		if k == 0 {
			return b, false
		}
		p = p[k:]
		if num < 1 || num > 6 {
			continue
		}
		want := wtBytes
		switch num {
		case 1, 4:
			want = wtVarint
		case 2:
			want = wtFixed64
		}
		if wt != want || kind != 0 {
			return b, false
		}
		kind, v, data = num, x, d
	}
	switch kind {
	case 0, 1: // unset or null
		return msgp.AppendNil(b), true
	case 2:
		return appendNumber(b, math.Float64frombits(v)), true
	case 3:
		if !utf8.Valid(data) {
			return b, false
		}
		return msgp.AppendStringFromBytes(b, data), true
	case 4:
		return msgp.AppendBool(b, v != 0), true
	case 5:
		return appendWireStruct(b, data, depth, "")
	default: // 6: ListValue, values = 1
		n, ok := countField1(data)
		if !ok || n > math.MaxUint32 {
			return b, false
		}
		b = msgp.AppendArrayHeader(b, uint32(n))
		for len(data) > 0 {
			num, _, _, e, k := wireField(data)
			data = data[k:]
			if num != 1 {
				continue
			}
			if b, ok = appendWireValue(b, e, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	}
}

// WireFields calls fn for every top-level field of a Struct in its wire
// encoding whose value is a string, bool or number (kind 3, 4 or 2 of
// Value; nested values are skipped). It stops early when fn returns false.
// It assumes a body AppendWire accepted.
func WireFields(p []byte, fn func(key string, kind int, s []byte, v uint64) bool) {
	for len(p) > 0 {
		num, _, _, entry, k := wireField(p)
		if k == 0 {
			return
		}
		p = p[k:]
		if num != 1 {
			continue
		}
		key, val, _, ok := mapEntry(entry)
		if !ok {
			return
		}
		for len(val) > 0 {
			vn, _, x, d, vk := wireField(val)
			if vk == 0 {
				break
			}
			val = val[vk:]
			switch vn {
			case 2, 3, 4:
				if !fn(key, int(vn), d, x) {
					return
				}
			}
		}
	}
}

// unsafeString views p as a string without copying; only for strings that
// do not outlive p (keys compared and copied into the record).
func unsafeString(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(p), len(p))
}
