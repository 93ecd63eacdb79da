package teleportd

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/structpb"
)

// Hand-written protobuf encoding of the audit log messages. proto.Marshal of
// a map-based structpb.Struct costs several µs per event; writing the wire
// format directly is an order of magnitude cheaper, which the export
// benchmarks need. The bytes are sent through rawCodec.

// rawMsg is a pre-encoded protobuf message: b, or buf when set (Marshal
// hands buf over to gRPC, which frees it once written).
type rawMsg struct {
	b   []byte
	buf mem.Buffer
}

// rawCodec is the "proto" codec, except that *rawMsg is sent as is.
type rawCodec struct{ encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{encoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMsg); ok {
		if r.buf != nil {
			buf := r.buf
			r.buf = nil
			return mem.BufferSlice{buf}, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// msgBufPool recycles the buffers of streamed messages through gRPC's
// reference counting (mem.NewBuffer), saving an allocation per message.
// mem.NewBuffer only recycles buffers of more than 1 KiB: they are 2 KiB.
type msgBufPool struct{ p sync.Pool }

var msgBufs msgBufPool

const msgBufCap = 2 << 10

func (m *msgBufPool) Get(n int) *[]byte {
	if b, _ := m.p.Get().(*[]byte); b != nil && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, msgBufCap))
	return &b
}

func (m *msgBufPool) Put(b *[]byte) {
	if c := cap(*b); c >= msgBufCap && c <= 64<<10 {
		m.p.Put(b)
	}
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

// str, num and boolean write their entry in one go (sizes computed up front).
func (s wireSink) str(k, v string) { s.w.b = appendStrEntry(s.w.b, k, v) }

func (s wireSink) num(k string, v int64) {
	b := appendEntryHead(s.w.b, k, 9)
	b = append(b, 0x11)
	s.w.b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
}

func (s wireSink) boolean(k string, v bool) {
	var x byte
	if v {
		x = 1
	}
	s.w.b = append(appendEntryHead(s.w.b, k, 2), 0x20, x)
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

// --- appending whole entries: sizes computed up front, no nesting ---------------

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// appendEntryHead writes a Struct entry k whose Value message has n bytes,
// up to those bytes.
func appendEntryHead(b []byte, k string, n int) []byte {
	el := 1 + uvarintLen(uint64(len(k))) + len(k) + 1 + uvarintLen(uint64(n)) + n
	b = append(b, 0x0a)
	b = binary.AppendUvarint(b, uint64(el))
	b = append(b, 0x0a)
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = append(b, 0x12)
	return binary.AppendUvarint(b, uint64(n))
}

// numEntryPrefix is the encoding of a Struct entry k: number_value, up to
// the 8 bytes of the double (appendNumEntry).
func numEntryPrefix(k string) []byte { return append(appendEntryHead(nil, k, 9), 0x11) }

func appendNumEntry(b, prefix []byte, v int64) []byte {
	b = append(b, prefix...)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
}

// appendStrHead writes a Struct entry k: string_value of n bytes, up to
// those bytes.
func appendStrHead(b []byte, k string, n int) []byte {
	b = append(appendEntryHead(b, k, 1+uvarintLen(uint64(n))+n), 0x1a)
	return binary.AppendUvarint(b, uint64(n))
}

// strEntryLen is the size of the Struct entry k: string_value of n bytes.
func strEntryLen(k string, n int) int {
	vl := 1 + uvarintLen(uint64(n)) + n
	el := 1 + uvarintLen(uint64(len(k))) + len(k) + 1 + uvarintLen(uint64(vl)) + vl
	return 1 + uvarintLen(uint64(el)) + el
}

// appendObjHead writes a Struct entry k: struct_value of n bytes of
// entries, up to those entries.
func appendObjHead(b []byte, k string, n int) []byte {
	b = append(appendEntryHead(b, k, 1+uvarintLen(uint64(n))+n), 0x2a)
	return binary.AppendUvarint(b, uint64(n))
}

func appendStrEntry(b []byte, k, v string) []byte {
	return append(appendStrHead(b, k, len(v)), v...)
}

// appendTimestamp writes EventUnstructured.time (field 3) as
// appendEventHeader does.
func appendTimestamp(b []byte, tns int64) []byte {
	sec, nsec := tns/1e9, tns%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	n := 0
	if sec != 0 {
		n += 1 + uvarintLen(uint64(sec))
	}
	if nsec != 0 {
		n += 1 + uvarintLen(uint64(nsec))
	}
	b = append(b, 0x1a, byte(n)) // n <= 17
	if sec != 0 {
		b = append(b, 0x08)
		b = binary.AppendUvarint(b, uint64(sec))
	}
	if nsec != 0 {
		b = append(b, 0x10)
		b = binary.AppendUvarint(b, uint64(nsec))
	}
	return b
}

// fixLen2 writes the length of the message that starts at mark, behind 2
// bytes reserved for it, moving the message when its length takes another
// number of bytes.
func fixLen2(b []byte, mark int) []byte {
	n := len(b) - mark
	sz := uvarintLen(uint64(n))
	switch {
	case sz == 1:
		copy(b[mark-1:], b[mark:])
		b = b[:len(b)-1]
	case sz > 2:
		b = append(b, make([]byte, sz-2)...)
		copy(b[mark+sz-2:], b[mark:mark+n])
	}
	binary.PutUvarint(b[mark-2:], uint64(n))
	return b
}
