package record

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Decode reads one Fluent Bit event [ts, body] (or [[ts, meta], body]) from
// b, for tools and tests that read what the plugin produced.
func Decode(b []byte) (t time.Time, body map[string]any, rest []byte, err error) {
	n, o, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		return t, nil, b, fmt.Errorf("not a Fluent Bit event (want a 2-element array): %v", err)
	}
	if msgp.NextType(o) == msgp.ArrayType {
		if _, o, err = msgp.ReadArrayHeaderBytes(o); err != nil {
			return t, nil, b, err
		}
		if t, o, err = decodeTime(o); err != nil {
			return t, nil, b, err
		}
		if o, err = msgp.Skip(o); err != nil { // metadata
			return t, nil, b, err
		}
	} else if t, o, err = decodeTime(o); err != nil {
		return t, nil, b, err
	}
	body, o, err = msgp.ReadMapStrIntfBytes(o, nil)
	if err != nil {
		return t, nil, b, fmt.Errorf("event body: %w", err)
	}
	return t, body, o, nil
}

func decodeTime(b []byte) (time.Time, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.ExtensionType:
		if len(b) < 10 || b[0] != 0xd7 || b[1] != 0 {
			return time.Time{}, b, fmt.Errorf("timestamp extension is not EventTime (fixext 8, type 0)")
		}
		return time.Unix(int64(binary.BigEndian.Uint32(b[2:6])), int64(binary.BigEndian.Uint32(b[6:10]))), b[10:], nil
	case msgp.Float64Type, msgp.Float32Type:
		f, o, err := msgp.ReadFloat64Bytes(b)
		return time.Unix(0, int64(f*1e9)), o, err
	default:
		i, o, err := msgp.ReadInt64Bytes(b)
		return time.Unix(i, 0), o, err
	}
}
