package teleport

import (
	"context"
	"errors"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/gravitational/trace"
	"google.golang.org/grpc"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport/schema"
)

// The legacy fallback. Teleport servers older than the unstructured audit
// API answer Unimplemented for StreamUnstructuredSessionEvents (recordings)
// and, older still, for GetUnstructuredEvents (search). teleport/api clients
// of those releases then read the legacy proto.AuthService RPCs and
// converted each typed event with events.ToUnstructured — the very function
// the server applies to build an unstructured event — so both give the same
// event (client.streamUnstructuredSessionEventsFallback and
// searchUnstructuredEventsFallback in teleport/api of Teleport 13, dropped
// from later releases). This file does the same on top of the client's
// typed StreamSessionEvents and SearchEvents.

// Compat is what one connection has learnt about the RPCs its Auth Service
// answers: whether recordings and search must take the legacy RPCs. It
// starts with the unstructured ones and switches on their Unimplemented
// answer, saying so once at info. The zero value is ready to use.
type Compat struct {
	Log *logging.Logger

	legacyRec, legacySearch atomic.Bool
	recOnce, searchOnce     sync.Once
}

// legacyRecordings is the RPC pair of recordings: unstructured, legacy.
var (
	recordingsAPI = [2]string{auditlogpb.AuditLogService_StreamUnstructuredSessionEvents_FullMethodName, "/proto.AuthService/StreamSessionEvents"}
	searchAPI     = [2]string{auditlogpb.AuditLogService_GetUnstructuredEvents_FullMethodName, "/proto.AuthService/GetEvents"}
)

// errNeitherAPI is an Auth Service that answers Unimplemented for both RPCs
// of a kind.
var errNeitherAPI = errors.New("the Auth Service implements neither")

// useLegacy switches to the legacy RPC, logging why the first time.
func (c *Compat) useLegacy(flag *atomic.Bool, once *sync.Once, what string, rpcs [2]string) {
	flag.Store(true)
	once.Do(func() {
		if c.Log != nil {
			c.Log.Infof("%s: the Auth Service answers Unimplemented for %s (a Teleport release before the unstructured audit API); reading them with %s, each event converted with teleport/api events.ToUnstructured",
				what, rpcs[0], rpcs[1])
		}
	})
}

// neither is the error of a server that lacks both RPCs of a kind. The next
// call probes the unstructured RPC again: the server behind the connection
// may be upgraded meanwhile.
func neither(flag *atomic.Bool, rpcs [2]string, err error) error {
	flag.Store(false)
	return trace.NotImplemented("%v %s nor %s: %v", errNeitherAPI, rpcs[0], rpcs[1], err)
}

func (s *SessionSource) compat() *Compat {
	s.compatOnce.Do(func() {
		if s.Compat == nil {
			s.Compat = &Compat{Log: s.Log}
		}
	})
	return s.Compat
}

// openFallback opens the recording of sid with the RPC the connection
// answers: the unstructured one, or after its Unimplemented the legacy one.
// Only a teleport/api client (its gRPC connection) has the legacy one.
func (s *SessionSource) openFallback(ctx context.Context, sid string, from int64, sl *slab) sessionEvents {
	c := s.compat()
	cc := legacyConn(s.API)
	if cc != nil && c.legacyRec.Load() {
		return s.openLegacy(ctx, cc, sid, from)
	}
	recv := s.openSession(ctx, sid, from, sl)
	if cc == nil {
		return recv
	}
	first := true
	return func() (int64, record.Item, error) {
		idx, it, err := recv()
		if first {
			first = false
			// A server without the RPC says so before any event.
			if err != nil && IsNotImplemented(err) {
				c.useLegacy(&c.legacyRec, &c.recOnce, "session recordings", recordingsAPI)
				recv = s.openLegacy(ctx, cc, sid, from)
				return recv()
			}
		}
		return idx, it, err
	}
}

// legacyConn is the gRPC connection of a teleport/api client, nil for
// anything else.
func legacyConn(api any) *grpc.ClientConn {
	if gc, ok := api.(grpcConn); ok {
		return gc.GetConnection()
	}
	return nil
}

const (
	streamSessionEventsMethod = "/proto.AuthService/StreamSessionEvents"
	getEventsMethod           = "/proto.AuthService/GetEvents"
)

var streamSessionEventsDesc = grpc.StreamDesc{StreamName: "StreamSessionEvents", ServerStreams: true}

// openLegacy reads a recording with StreamSessionEvents, the events kept
// in their wire encoding for legacyEvent. An Unimplemented answer there too
// is errNeitherAPI.
func (s *SessionSource) openLegacy(ctx context.Context, cc *grpc.ClientConn, sid string, from int64) sessionEvents {
	raw, err := openRawStreamOn(ctx, cc, &streamSessionEventsDesc, streamSessionEventsMethod,
		&proto.StreamSessionEventsRequest{SessionID: sid, StartIndex: int32(from)})
	first := true
	return func() (int64, record.Item, error) {
		defer func() { first = false }()
		if err == nil && raw.next() {
			un, err := legacyEvent(raw.frame.b)
			if err != nil {
				raw.done()
				return 0, record.Item{}, err
			}
			return un.GetIndex(), s.encode(un, sid), nil
		}
		if err == nil {
			if err = raw.done(); err == nil {
				return 0, record.Item{}, io.EOF
			}
		}
		if first && IsNotImplemented(err) {
			c := s.compat()
			return 0, record.Item{}, neither(&c.legacyRec, recordingsAPI, err)
		}
		return 0, record.Item{}, err
	}
}

// legacyEvent turns one events.OneOf in its wire encoding into the event
// the sender's own events.ToUnstructured gives: the library's conversion,
// less the keys of message fields the sender's schema lacks (package
// schema).
func legacyEvent(frame []byte) (*auditlogpb.EventUnstructured, error) {
	var one apievents.OneOf
	if err := one.Unmarshal(frame); err != nil {
		return nil, trace.Wrap(err, "decoding a legacy event")
	}
	ev, err := apievents.FromOneOf(one)
	if err != nil {
		return nil, trace.Wrap(err, "decoding a legacy event")
	}
	un, err := apievents.ToUnstructured(ev)
	if err != nil {
		return nil, trace.Wrap(err, "converting event %s (%s)", ev.GetID(), ev.GetType())
	}
	msg := schema.Event(frame)
	fields := un.GetUnstructured().GetFields()
	for _, f := range schema.MessageFields(reflect.TypeOf(ev)) {
		if !schema.Present(msg, f.Path) {
			delete(fields, f.Key)
		}
	}
	return un, nil
}

func (s *SearchSource) compat() *Compat {
	s.compatOnce.Do(func() {
		if s.Compat == nil {
			s.Compat = &Compat{Log: s.Log}
		}
	})
	return s.Compat
}

// search reads one page of at most limit events with SearchUnstructuredEvents, or after its
// Unimplemented with GetEvents (legacyEvent for each event). Keys are the
// same on both RPCs: the server pages one event store either way.
func (s *SearchSource) search(ctx context.Context, from, to time.Time, limit int, key string) ([]*auditlogpb.EventUnstructured, string, error) {
	c := s.compat()
	cc := legacyConn(s.API)
	if cc == nil || !c.legacySearch.Load() {
		events, next, err := s.API.SearchUnstructuredEvents(ctx, from, to, "default", s.Types, limit, types.EventOrderAscending, key)
		if err == nil || cc == nil || !IsNotImplemented(err) {
			return events, next, err
		}
		c.useLegacy(&c.legacySearch, &c.searchOnce, "audit events", searchAPI)
	}
	// As client.SearchEvents sends it.
	req := &proto.GetEventsRequest{Namespace: "default", StartDate: from, EndDate: to, EventTypes: s.Types,
		Limit: int32(limit), StartKey: key, Order: proto.Order(types.EventOrderAscending)}
	var page rawFrame
	if err := cc.Invoke(ctx, getEventsMethod, req, &page, grpc.ForceCodecV2(rawCodec{})); err != nil {
		if IsNotImplemented(err) {
			return nil, "", neither(&c.legacySearch, searchAPI, err)
		}
		return nil, "", trace.Wrap(err)
	}
	// proto.Events: items = 1 (events.OneOf), last_key = 2.
	var events []*auditlogpb.EventUnstructured
	var next string
	for p := page.b; len(p) > 0; {
		num, wt, _, data, k := record.WireField(p)
		if k == 0 || wt != 2 {
			return nil, "", trace.BadParameter("malformed GetEvents response")
		}
		p = p[k:]
		switch num {
		case 1:
			un, err := legacyEvent(data)
			if err != nil {
				return nil, "", err
			}
			events = append(events, un)
		case 2:
			next = string(data)
		}
	}
	return events, next, nil
}

// ExportRecording streams the whole recording of sid once, as the plugin
// would export it (skip types honoured, the legacy RPC where the server
// lacks the unstructured one), calling put for each item with a record. It
// is for re-sending a recording given up (`export --session`).
func (s *SessionSource) ExportRecording(ctx context.Context, sid string, put func(record.Item) error) error {
	s.init()
	_, done, err := s.stream(ctx, &job{id: sid}, sinkFunc(func(_ context.Context, it record.Item) error {
		if it.Data == nil {
			return nil
		}
		return put(it)
	}))
	if err == nil && !done {
		err = errors.New("the recording did not end")
	}
	return err
}

type sinkFunc func(context.Context, record.Item) error

func (f sinkFunc) Put(ctx context.Context, it record.Item) error { return f(ctx, it) }
