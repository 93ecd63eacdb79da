package teleportd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport/schema"
)

// The legacy RPCs: AuthService/StreamSessionEvents (recordings) and
// AuthService/GetEvents (search), which every Teleport serves and which carry
// typed events (events.OneOf). Servers older than the unstructured API
// (StreamUnstructuredSessionEvents, GetUnstructuredEvents) have only these;
// the switches Options.RecordingsUnimplemented and SearchUnimplemented make
// the stand-in one of them. The events are the same as on the unstructured
// RPCs: each stored event is turned into the typed event Teleport would hold
// (as lib/events/dynamic.go FromEventFields does with the JSON of an event),
// so a client converting it back with events.ToUnstructured gets what the
// unstructured RPC sends, as long as the typed event carries every field.

// typedEvents are the typed events of the types the stand-in generates and
// of every kind in the real samples; any other type becomes events.Unknown,
// like FromEventFields's default case.
var typedEvents = map[string]func() apievents.AuditEvent{
	"user.login":            func() apievents.AuditEvent { return &apievents.UserLogin{} },
	"user.create":           func() apievents.AuditEvent { return &apievents.UserCreate{} },
	"session.start":         func() apievents.AuditEvent { return &apievents.SessionStart{} },
	"session.join":          func() apievents.AuditEvent { return &apievents.SessionJoin{} },
	"session.leave":         func() apievents.AuditEvent { return &apievents.SessionLeave{} },
	"session.data":          func() apievents.AuditEvent { return &apievents.SessionData{} },
	"session.end":           func() apievents.AuditEvent { return &apievents.SessionEnd{} },
	"session.upload":        func() apievents.AuditEvent { return &apievents.SessionUpload{} },
	"resize":                func() apievents.AuditEvent { return &apievents.Resize{} },
	"print":                 func() apievents.AuditEvent { return &apievents.SessionPrint{} },
	"desktop.recording":     func() apievents.AuditEvent { return &apievents.DesktopRecording{} },
	"role.created":          func() apievents.AuditEvent { return &apievents.RoleCreate{} },
	"role.deleted":          func() apievents.AuditEvent { return &apievents.RoleDelete{} },
	"access_request.create": func() apievents.AuditEvent { return &apievents.AccessRequestCreate{} },
	"cert.create":           func() apievents.AuditEvent { return &apievents.CertificateCreate{} },
	"lock.created":          func() apievents.AuditEvent { return &apievents.LockCreate{} },
	"lock.deleted":          func() apievents.AuditEvent { return &apievents.LockDelete{} },
}

// Teleport's names for an event of a type it does not know (lib/events:
// UnknownEvent, UnknownCode).
const (
	unknownEvent = "unknown"
	unknownCode  = "TCC00E"
)

// legacyEvent turns an encoded EventUnstructured into the encoded
// events.OneOf a Teleport server would send for it. The typed event is
// that of teleport/api's schema; the message fields (package schema) whose
// keys the event lacks are left off the wire, as a server of an older
// schema leaves them off, so that converting the typed event back gives
// exactly the event's keys.
func legacyEvent(raw []byte) ([]byte, error) {
	var ev auditlogpb.EventUnstructured
	if err := gproto.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	body := ev.GetUnstructured()
	data, err := body.MarshalJSON()
	if err != nil {
		return nil, err
	}
	typ := ev.GetType()
	var out apievents.AuditEvent
	if mk := typedEvents[typ]; mk != nil {
		out = mk()
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("event %s (%s) has no typed form: %w", ev.GetId(), typ, err)
		}
	} else {
		u := &apievents.Unknown{}
		if err := json.Unmarshal(data, u); err != nil {
			return nil, fmt.Errorf("event %s (%s) has no typed form: %w", ev.GetId(), typ, err)
		}
		u.Type, u.Code = unknownEvent, unknownCode
		u.UnknownType = typ
		u.UnknownCode = body.GetFields()["code"].GetStringValue()
		u.Data = string(data)
		out = u
	}
	if p, ok := out.(*apievents.SessionPrint); ok {
		// The terminal output is a []byte outside the JSON ("data": "-");
		// events.ToUnstructured puts it back as base64.
		if p.Data, err = base64.StdEncoding.DecodeString(body.GetFields()["data"].GetStringValue()); err != nil {
			return nil, fmt.Errorf("print event %d: data is not base64: %w", ev.GetIndex(), err)
		}
	}
	one, err := apievents.ToOneOf(out)
	if err != nil {
		return nil, err
	}
	b, err := one.Marshal()
	if err != nil {
		return nil, err
	}
	var drop [][]uint64
	for _, f := range schema.MessageFields(reflect.TypeOf(out)) {
		if _, ok := body.GetFields()[f.Key]; !ok {
			drop = append(drop, f.Path)
		}
	}
	if len(drop) == 0 {
		return b, nil
	}
	// OneOf: one field, the event message.
	num, _, _, msg, k := record.WireField(b)
	if k == 0 {
		return nil, fmt.Errorf("event %s: cannot read its own encoding", ev.GetId())
	}
	w := &pbw{}
	w.bytes(int(num), dropFields(msg, drop))
	return w.b, nil
}

// dropFields re-encodes msg without the fields at paths (field numbers
// from msg down).
func dropFields(msg []byte, paths [][]uint64) []byte {
	out := make([]byte, 0, len(msg))
	for p := msg; len(p) > 0; {
		num, wt, _, data, k := record.WireField(p)
		if k == 0 {
			return append(out, p...)
		}
		field := p[:k]
		p = p[k:]
		var sub [][]uint64
		dropped := false
		for _, path := range paths {
			if path[0] != num {
				continue
			}
			if len(path) == 1 {
				dropped = true
			} else {
				sub = append(sub, path[1:])
			}
		}
		switch {
		case dropped:
		case len(sub) > 0 && wt == 2:
			w := &pbw{b: out}
			w.bytes(int(num), dropFields(data, sub))
			out = w.b
		default:
			out = append(out, field...)
		}
	}
	return out
}

// StreamSessionEvents is the legacy recording RPC: the recording's events
// as typed events, with the faults and counters of
// StreamUnstructuredSessionEvents (recordings.go).
func (a *authService) StreamSessionEvents(req *proto.StreamSessionEventsRequest, stream proto.AuthService_StreamSessionEventsServer) error {
	s := a.s
	s.st.streamSessionEvents.Add(1)
	return s.serveRecording(stream.Context(), req.SessionID, int64(req.StartIndex), func(bp *[]byte) error {
		b, err := legacyEvent(*bp)
		msgBufs.Put(bp)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		return stream.SendMsg(&rawMsg{b: b})
	})
}

// getEventsMethod is answered by getEvents, through unaryInterceptor: its
// pre-encoded reply cannot pass through the typed AuthServiceServer method.
const getEventsMethod = "/proto.AuthService/GetEvents"

// getEvents is the legacy search RPC: GetUnstructuredEvents's page (same
// window, order, limit, size cap and keys) as typed events, in an encoded
// proto.Events (items = 1, last_key = 2).
func (s *Server) getEvents(ctx context.Context, req *proto.GetEventsRequest) (*rawMsg, error) {
	s.st.getEvents.Add(1)
	page, err := (&auditService{s: s}).searchRaw(ctx, &auditlogpb.GetUnstructuredEventsRequest{
		Namespace:  req.Namespace,
		StartDate:  timestamppb.New(req.StartDate),
		EndDate:    timestamppb.New(req.EndDate),
		EventTypes: req.EventTypes,
		Limit:      req.Limit,
		StartKey:   req.StartKey,
		Order:      auditlogpb.Order(req.Order),
	})
	if err != nil {
		return nil, err
	}
	w := &pbw{}
	for p := page.b; len(p) > 0; {
		num, _, _, data, k := record.WireField(p)
		if k == 0 {
			return nil, status.Error(codes.Internal, "malformed search page")
		}
		p = p[k:]
		switch num {
		case 1:
			b, err := legacyEvent(data)
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			w.bytes(1, b)
		case 2:
			w.str(2, string(data))
		}
	}
	return &rawMsg{b: w.b}, nil
}
