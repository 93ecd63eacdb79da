package teleport

import (
	"context"
	"errors"
	"io"
	"math"
	"time"
	"unicode/utf8"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// The raw export path. Decoding an event into a structpb.Struct (a Go map
// of Values per object, a string per key and value) is most of what an
// event costs a client: ~90 allocations and ~10 µs, several times the cost
// of everything else the plugin does with it. With a teleport/api client
// (which exposes its gRPC connection) the export stream is read with a codec
// that keeps each message's wire bytes, and the event body is transcoded
// straight into the msgpack record (record.AppendWire). Anything that path
// does not reproduce exactly (see AppendWire) goes through proto.Unmarshal
// and encode, so both paths produce the same items; a message the library
// cannot decode fails the stream like it fails the typed client's.

// grpcConn is implemented by *client.Client.
type grpcConn interface {
	GetConnection() *grpc.ClientConn
}

// rawExportStream returns a stream of raw ExportEventUnstructured messages
// when api is a teleport/api client, nil otherwise.
func rawExportStream(ctx context.Context, api AuditLog, req *auditlogpb.ExportUnstructuredEventsRequest) (*rawStream, error) {
	return openRawStream(ctx, api, &auditlogpb.AuditLogService_ServiceDesc.Streams[1],
		auditlogpb.AuditLogService_ExportUnstructuredEvents_FullMethodName, req)
}

// openRawStream opens a server stream that sends req and whose responses
// are kept as wire bytes, when api is a teleport/api client (nil, nil
// otherwise).
func openRawStream(ctx context.Context, api any, desc *grpc.StreamDesc, method string, req any) (*rawStream, error) {
	gc, ok := api.(grpcConn)
	if !ok {
		return nil, nil
	}
	cc := gc.GetConnection()
	if cc == nil {
		return nil, nil
	}
	return openRawStreamOn(ctx, cc, desc, method, req)
}

// openRawStreamOn is openRawStream on the connection cc.
func openRawStreamOn(ctx context.Context, cc *grpc.ClientConn, desc *grpc.StreamDesc, method string, req any) (*rawStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	cs, err := cc.NewStream(ctx, desc, method, grpc.ForceCodecV2(rawCodec{}))
	if err == nil {
		err = cs.SendMsg(req)
	}
	if err == nil {
		err = cs.CloseSend()
	}
	if err != nil {
		cancel()
		return nil, trace.Wrap(err)
	}
	return &rawStream{cs: cs, cancel: cancel}, nil
}

// rawStream reads one raw server stream; frame holds the current message's
// bytes until the next call to next.
type rawStream struct {
	cs     grpc.ClientStream
	cancel context.CancelFunc
	frame  rawFrame
	err    error
}

// next reads the next message; false at the end of the stream or on an
// error (see done).
func (r *rawStream) next() bool {
	if r.err != nil {
		return false
	}
	if err := r.cs.RecvMsg(&r.frame); err != nil {
		r.err = err
		return false
	}
	return true
}

// done ends the stream and returns its error; nil when it ended normally.
func (r *rawStream) done() error {
	r.cancel()
	if r.err == nil || errors.Is(r.err, io.EOF) {
		return nil
	}
	return trace.Wrap(r.err)
}

// rawFrame is a message's wire bytes, reused from message to message.
type rawFrame struct{ b []byte }

// rawCodec is the proto codec, except that responses are kept as bytes.
type rawCodec struct{}

var protoCodec = encoding.GetCodecV2("proto")

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	f.b = f.b[:0]
	for _, b := range data {
		f.b = append(f.b, b.ReadOnlyData()...)
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// rawEvent is an ExportEventUnstructured split into its parts; strings
// alias the frame.
type rawEvent struct {
	cursor  []byte
	typ     []byte
	id      []byte
	index   int64
	hasTime bool
	sec     int64
	nanos   int32
	body    []byte // the Struct's wire bytes
}

// parse splits an ExportEventUnstructured. ok is false for anything but the
// plain shape (each field at most once, expected wire types, valid UTF-8).
func (e *rawEvent) parse(p []byte) bool {
	*e = rawEvent{}
	var ev []byte
	seen := 0
	for len(p) > 0 {
		num, wt, _, data, k := record.WireField(p)
		if k == 0 {
			return false
		}
		p = p[k:]
		switch num {
		case 1: // event
			if wt != 2 || seen&1 != 0 {
				return false
			}
			ev, seen = data, seen|1
		case 2: // cursor
			if wt != 2 || seen&2 != 0 || !utf8.Valid(data) {
				return false
			}
			e.cursor, seen = data, seen|2
		}
	}
	return e.parseEvent(ev)
}

// parseEvent splits an EventUnstructured, keeping what parse kept.
func (e *rawEvent) parseEvent(ev []byte) bool {
	cur := e.cursor
	*e = rawEvent{cursor: cur}
	seen := 0
	for len(ev) > 0 {
		num, wt, v, data, k := record.WireField(ev)
		if k == 0 {
			return false
		}
		ev = ev[k:]
		if num >= 1 && num <= 5 {
			if seen&(1<<num) != 0 {
				return false
			}
			seen |= 1 << num
		}
		switch num {
		case 1, 2: // type, id
			if wt != 2 || !utf8.Valid(data) {
				return false
			}
			if num == 1 {
				e.typ = data
			} else {
				e.id = data
			}
		case 3: // time: Timestamp{seconds = 1, nanos = 2}
			if wt != 2 || !e.parseTime(data) {
				return false
			}
		case 4: // index
			if wt != 0 {
				return false
			}
			e.index = int64(v)
		case 5: // unstructured
			if wt != 2 {
				return false
			}
			e.body = data
		}
	}
	return true
}

func (e *rawEvent) parseTime(p []byte) bool {
	e.hasTime = true
	seen := 0
	for len(p) > 0 {
		num, wt, v, _, k := record.WireField(p)
		if k == 0 {
			return false
		}
		p = p[k:]
		switch num {
		case 1, 2:
			if wt != 0 || seen&int(num) != 0 {
				return false
			}
			seen |= int(num)
			if num == 1 {
				e.sec = int64(v)
			} else {
				e.nanos = int32(v)
			}
		}
	}
	return true
}

// envelopeTime is ev.GetTime().AsTime().
func (e *rawEvent) envelopeTime() time.Time {
	return time.Unix(e.sec, int64(e.nanos)).UTC()
}

// fields builds a Struct of the body's top-level scalar fields that
// encode's helpers read: "event", "time" (record.Time), "sid",
// "session_recording" (announce), "user" and "success" (loginFailure).
// TestEncodeRawMatchesEncode covers each of them; a helper that starts
// reading another field must have it added here.
func (e *rawEvent) fields() *structpb.Struct {
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, 4)}
	record.WireFields(e.body, func(k string, kind int, s []byte, v uint64) bool {
		switch k {
		case "event", "time", "sid", "session_recording", "user", "success":
		default:
			return true
		}
		switch kind {
		case 2:
			st.Fields[k] = structpb.NewNumberValue(math.Float64frombits(v))
		case 3:
			st.Fields[k] = structpb.NewStringValue(string(s))
		case 4:
			st.Fields[k] = structpb.NewBoolValue(v != 0)
		}
		return true
	})
	return st
}

// slabSize is the size of the buffers records are encoded into: one
// allocation per ~100 records instead of one per record, and records take
// what they need, not a rounded-up buffer each.
const slabSize = 32 << 10

// slab hands out exact-size pieces of a shared buffer. A piece is never
// written again once handed out; the buffer is freed when the last of its
// records has been handed over.
type slab struct{ buf []byte }

// encode runs fn on the free tail of the slab and returns the record it
// appended, capped to its length. A record that outgrows the tail gets its
// own buffer (append's), and the slab is kept for the next ones.
func (s *slab) encode(fn func([]byte) ([]byte, bool)) ([]byte, bool) {
	if cap(s.buf)-len(s.buf) < 2048 {
		s.buf = make([]byte, 0, slabSize)
	}
	start := len(s.buf)
	out, ok := fn(s.buf[start:start])
	if !ok {
		return nil, false
	}
	if len(out) <= cap(s.buf)-start {
		s.buf = s.buf[:start+len(out)]
	}
	return out[:len(out):len(out)], true
}

// encodeRaw is encode for an event in its wire encoding. It mirrors
// encode step by step (TestEncodeRawMatchesEncode holds them together);
// ok is false when the event must take the ordinary path.
func encodeRaw(e *rawEvent, f *Filter, log *logging.Logger, sl *slab) (it record.Item, ok bool) {
	typ := string(e.typ)
	var mini *structpb.Struct
	body := func() *structpb.Struct {
		if mini == nil {
			mini = e.fields()
		}
		return mini
	}
	if typ == "" {
		typ = body().GetFields()["event"].GetStringValue()
	}
	env := e.envelopeTime()
	var t time.Time
	if !env.IsZero() && env.Unix() > 0 {
		t, ok = env, true
	} else {
		t, ok = record.Time(env, body())
	}
	if !f.Keep(typ, t) {
		// Dropped events are rare: let the ordinary path decide, so that a
		// body the library rejects fails the stream exactly as before.
		return it, false
	}
	if !ok {
		log.Debugf("event %s (%s) has no usable time; stamping it with the current time", e.id, typ)
		t = time.Now()
	}
	data, wok := sl.encode(func(b []byte) ([]byte, bool) { return record.AppendWire(b, t, e.body) })
	if !wok {
		return it, false
	}
	it = record.Item{Data: data, Time: t}
	switch typ {
	case sessionUpload, sessionEnd:
		it.Announce = announce(typ, t, body(), f)
	case userLogin:
		if f.LoginFailures {
			it.Failure = loginFailure(t, body())
		}
	}
	return it, true
}

// decodeRaw turns one raw message into an item and its cursor, through the
// direct path when it can, else through proto.Unmarshal and encode.
func decodeRaw(frame []byte, f *Filter, log *logging.Logger, sl *slab, e *rawEvent) (record.Item, string, error) {
	if e.parse(frame) {
		if it, ok := encodeRaw(e, f, log, sl); ok {
			return it, string(e.cursor), nil
		}
	}
	var ev auditlogpb.ExportEventUnstructured
	if err := proto.Unmarshal(frame, &ev); err != nil {
		return record.Item{}, "", trace.Wrap(err, "decoding an exported event")
	}
	e.id = []byte(ev.GetEvent().GetId()) // for the caller's dedupe
	return encode(ev.GetEvent(), f, log), ev.GetCursor(), nil
}

// streamChunk reads one export stream of chunk from req.Cursor on, queueing
// an item per event and moving *from past it. putErr is the sink's error
// (ctx ended); err is the stream's. The raw path is taken when the API is a
// teleport/api client.
func (s *ExportSource) streamChunk(ctx context.Context, req *auditlogpb.ExportUnstructuredEventsRequest, day, chunk string, from *string, sink Sink, sl *slab) (n int, err, putErr error) {
	raw, err := rawExportStream(ctx, s.API, req)
	if err != nil {
		return 0, err, nil
	}
	if raw == nil {
		str := s.API.ExportUnstructuredEvents(ctx, req)
		for str.Next() {
			ev := str.Item()
			it := encode(ev.GetEvent(), s.Filter, s.Log)
			s.dedupe(&it, []byte(ev.GetEvent().GetId()))
			it.Pos = cursor.Pos{Kind: cursor.PosChunk, Day: day, Chunk: chunk, Cursor: ev.GetCursor()}
			if err := sink.Put(ctx, it); err != nil {
				str.Done()
				return n, nil, err
			}
			*from = ev.GetCursor()
			n++
		}
		return n, str.Done(), nil
	}
	var ev rawEvent
	for raw.next() {
		it, cur, err := decodeRaw(raw.frame.b, s.Filter, s.Log, sl, &ev)
		if err != nil {
			raw.done()
			return n, err, nil
		}
		s.dedupe(&it, ev.id)
		it.Pos = cursor.Pos{Kind: cursor.PosChunk, Day: day, Chunk: chunk, Cursor: cur}
		if err := sink.Put(ctx, it); err != nil {
			raw.done()
			return n, nil, err
		}
		*from = cur
		n++
	}
	return n, raw.done(), nil
}

// dedupe drops the record of an event read before (stored twice by the
// Auth Service) while Dedupe remembers it: its position stays, so the
// chunk's cursor moves past it. The first copy's record was queued before,
// and the queue commits in order, so this position never commits ahead of
// it; if the first copy is lost in a crash, its own chunk's cursor is still
// before it and reads it again.
func (s *ExportSource) dedupe(it *record.Item, id []byte) {
	if s.Dedupe == nil || it.Data == nil {
		return
	}
	h := EventHash(id)
	if h == 0 {
		return
	}
	if s.Dedupe.Seen(h) {
		s.Metrics.DuplicatesDropped(1)
		*it = record.Item{}
		return
	}
	it.ID = h
}
