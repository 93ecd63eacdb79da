package teleportd

import (
	"encoding/binary"
	"math"
	"math/bits"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/structpb"
)

// Hand-written protobuf encoding of the audit log messages. proto.Marshal of
// a map-based structpb.Struct costs several µs per event; writing the wire
// format directly is an order of magnitude cheaper, which the export
// benchmarks need. The bytes are sent through rawCodec.

// rawMsg is a pre-encoded protobuf message.
type rawMsg struct{ b []byte }

// rawCodec is the "proto" codec, except that *rawMsg is sent as is.
type rawCodec struct{ encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{encoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// pbw is an append-only protobuf writer. Nested messages are written with
// begin/end: begin reserves one length byte, end fixes it (shifting the
// content when the length needs more than one byte).
type pbw struct {
	b     []byte
	stack []int
}

const (
	wtVarint  = 0
	wtFixed64 = 1
	wtBytes   = 2
)

func (w *pbw) key(field, wt int) {
	w.b = binary.AppendUvarint(w.b, uint64(field)<<3|uint64(wt))
}

func (w *pbw) varint(field int, v uint64) {
	w.key(field, wtVarint)
	w.b = binary.AppendUvarint(w.b, v)
}

func (w *pbw) fixed64(field int, v uint64) {
	w.key(field, wtFixed64)
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
}

func (w *pbw) str(field int, s string) {
	w.key(field, wtBytes)
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *pbw) bytes(field int, p []byte) {
	w.key(field, wtBytes)
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}

func (w *pbw) begin(field int) int {
	w.key(field, wtBytes)
	w.b = append(w.b, 0)
	return len(w.b)
}

func (w *pbw) end(mark int) {
	n := len(w.b) - mark
	if n < 0x80 {
		w.b[mark-1] = byte(n)
		return
	}
	sz := (bits.Len64(uint64(n)) + 6) / 7
	extra := sz - 1
	w.b = append(w.b, make([]byte, extra)...)
	copy(w.b[mark+extra:], w.b[mark:mark+n])
	binary.PutUvarint(w.b[mark-1:], uint64(n))
}

// --- sinks: where generated event fields go ------------------------------------

// sink receives the raw JSON fields of one event.
type sink interface {
	str(k, v string)
	num(k string, v int64)
	boolean(k string, v bool)
	strList(k string, vs ...string)
	beginObj(k string)
	endObj()
}

// wireSink writes the fields as the entries of a google.protobuf.Struct
// (map<string, Value> fields = 1). Value: number_value = 2 (double),
// string_value = 3, bool_value = 4, struct_value = 5, list_value = 6
// (ListValue: repeated Value values = 1).
type wireSink struct{ w *pbw }

func (s wireSink) str(k, v string) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	w.str(3, v)
	w.end(vm)
	w.end(e)
}

func (s wireSink) num(k string, v int64) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	w.fixed64(2, math.Float64bits(float64(v)))
	w.end(vm)
	w.end(e)
}

func (s wireSink) boolean(k string, v bool) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	var b uint64
	if v {
		b = 1
	}
	w.varint(4, b)
	w.end(vm)
	w.end(e)
}

func (s wireSink) strList(k string, vs ...string) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	l := w.begin(6)
	for _, v := range vs {
		x := w.begin(1)
		w.str(3, v)
		w.end(x)
	}
	w.end(l)
	w.end(vm)
	w.end(e)
}

func (s wireSink) beginObj(k string) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	st := w.begin(5)
	w.stack = append(w.stack, e, vm, st)
}

func (s wireSink) endObj() {
	w := s.w
	n := len(w.stack)
	w.end(w.stack[n-1])
	w.end(w.stack[n-2])
	w.end(w.stack[n-3])
	w.stack = w.stack[:n-3]
}

// structSink builds a *structpb.Struct (used by tests and Lookup-style helpers).
type structSink struct {
	stack []*structpb.Struct
	keys  []string
}

func newStructSink() *structSink {
	return &structSink{stack: []*structpb.Struct{{Fields: map[string]*structpb.Value{}}}}
}

func (s *structSink) top() *structpb.Struct  { return s.stack[len(s.stack)-1] }
func (s *structSink) root() *structpb.Struct { return s.stack[0] }

func (s *structSink) str(k, v string)          { s.top().Fields[k] = structpb.NewStringValue(v) }
func (s *structSink) num(k string, v int64)    { s.top().Fields[k] = structpb.NewNumberValue(float64(v)) }
func (s *structSink) boolean(k string, v bool) { s.top().Fields[k] = structpb.NewBoolValue(v) }
func (s *structSink) strList(k string, vs ...string) {
	l := &structpb.ListValue{}
	for _, v := range vs {
		l.Values = append(l.Values, structpb.NewStringValue(v))
	}
	s.top().Fields[k] = structpb.NewListValue(l)
}
func (s *structSink) beginObj(k string) {
	st := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	s.top().Fields[k] = structpb.NewStructValue(st)
	s.stack = append(s.stack, st)
}
func (s *structSink) endObj() { s.stack = s.stack[:len(s.stack)-1] }

// appendEventHeader writes EventUnstructured fields type = 1, id = 2,
// time = 3 (Timestamp: seconds = 1, nanos = 2), index = 4.
func appendEventHeader(w *pbw, typ, id string, tns int64, index int64) {
	if typ != "" {
		w.str(1, typ)
	}
	if id != "" {
		w.str(2, id)
	}
	sec, nsec := tns/1e9, tns%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	tm := w.begin(3)
	if sec != 0 {
		w.varint(1, uint64(sec))
	}
	if nsec != 0 {
		w.varint(2, uint64(nsec))
	}
	w.end(tm)
	if index != 0 {
		w.varint(4, uint64(index))
	}
}
