package teleport

import (
	"context"
	"io"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// The raw recording path. A backlog announces a recording for every eighth
// event or so, and the client's StreamUnstructuredSessionEvents decodes each
// recording event into a structpb.Struct and hands it over a channel from a
// goroutine of its own: two thirds of the plugin's CPU in the benchmark. As
// for the export stream (export_raw.go), a teleport/api client's connection
// is read with the raw codec, on the worker's own goroutine, and each event
// body is transcoded straight into its record; anything else takes the
// library's path, so both produce the same items.

// sessionEvents yields the events of one recording stream: the event's index
// and its item, io.EOF once the recording has ended, or the stream's error.
type sessionEvents func() (index int64, it record.Item, err error)

// openSession opens the recording of sid from index from, raw when api is a
// teleport/api client.
func (s *SessionSource) openSession(ctx context.Context, sid string, from int64, sl *slab) sessionEvents {
	if raw, err := rawSessionStream(ctx, s.API, sid, from); err != nil {
		return func() (int64, record.Item, error) { return 0, record.Item{}, err }
	} else if raw != nil {
		var e rawEvent
		return func() (int64, record.Item, error) {
			if !raw.next() {
				if err := raw.done(); err != nil {
					return 0, record.Item{}, err
				}
				return 0, record.Item{}, io.EOF
			}
			idx, it, err := s.decodeRawSession(raw.frame.b, sid, sl, &e)
			if err != nil {
				raw.done()
			}
			return idx, it, err
		}
	}
	events, errs := s.API.StreamUnstructuredSessionEvents(ctx, sid, from)
	return func() (int64, record.Item, error) {
		select {
		case ev, ok := <-events:
			if !ok {
				return 0, record.Item{}, io.EOF
			}
			return ev.GetIndex(), s.encode(ev, sid), nil
		case err := <-errs:
			return 0, record.Item{}, err
		case <-ctx.Done():
			return 0, record.Item{}, ctx.Err()
		}
	}
}

// rawSessionStream returns a stream of raw EventUnstructured messages of one
// recording when api is a teleport/api client, nil otherwise.
func rawSessionStream(ctx context.Context, api SessionAPI, sid string, from int64) (*rawStream, error) {
	// int32 like the client's request: the protocol's field is int32.
	return openRawStream(ctx, api, &auditlogpb.AuditLogService_ServiceDesc.Streams[0],
		auditlogpb.AuditLogService_StreamUnstructuredSessionEvents_FullMethodName,
		&auditlogpb.StreamUnstructuredSessionEventsRequest{SessionId: sid, StartIndex: int32(from)})
}

// decodeRawSession turns one raw EventUnstructured into its index and item,
// directly when it can, else through proto.Unmarshal and encode.
func (s *SessionSource) decodeRawSession(frame []byte, sid string, sl *slab, e *rawEvent) (int64, record.Item, error) {
	if e.parseEvent(frame) {
		if it, ok := s.encodeRaw(e, sid, sl); ok {
			return e.index, it, nil
		}
	}
	var ev auditlogpb.EventUnstructured
	if err := proto.Unmarshal(frame, &ev); err != nil {
		return 0, record.Item{}, trace.Wrap(err, "decoding a recording event")
	}
	return ev.GetIndex(), s.encode(&ev, sid), nil
}

// encodeRaw is encode for an event in its wire encoding; it mirrors encode
// step by step (TestEncodeRawSessionMatchesEncode holds them together). ok
// is false when the event must take the ordinary path.
func (s *SessionSource) encodeRaw(e *rawEvent, sid string, sl *slab) (record.Item, bool) {
	var mini *structpb.Struct
	body := func() *structpb.Struct {
		if mini == nil {
			mini = e.fields()
		}
		return mini
	}
	typ := string(e.typ)
	if typ == "" {
		typ = body().GetFields()["event"].GetStringValue()
	}
	if s.skip[typ] {
		return record.Item{}, true
	}
	env := e.envelopeTime()
	t, ok := env, env.Unix() > 0
	if !ok {
		t, ok = record.Time(env, body())
	}
	if !ok {
		t = time.Now()
	}
	data, ok := sl.encode(func(b []byte) ([]byte, bool) { return record.AppendWireRecording(b, t, e.body, sid) })
	if !ok {
		return record.Item{}, false
	}
	return record.Item{Data: data, Time: t}, true
}
