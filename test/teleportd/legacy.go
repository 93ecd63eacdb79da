package teleportd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// typedEvent turns an encoded EventUnstructured into the typed event a
// Teleport server would hold for it.
func typedEvent(raw []byte) (*apievents.OneOf, error) {
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
	return apievents.ToOneOf(out)
}

// StreamSessionEvents is the legacy recording RPC: the recording's events
// as typed events, with the faults and counters of
// StreamUnstructuredSessionEvents (recordings.go).
func (a *authService) StreamSessionEvents(req *proto.StreamSessionEventsRequest, stream proto.AuthService_StreamSessionEventsServer) error {
	s := a.s
	s.st.streamSessionEvents.Add(1)
	return s.serveRecording(stream.Context(), req.SessionID, int64(req.StartIndex), func(bp *[]byte) error {
		ev, err := typedEvent(*bp)
		msgBufs.Put(bp)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		return stream.Send(ev)
	})
}

// GetEvents is the legacy search RPC: GetUnstructuredEvents's page (same
// window, order, limit, size cap and keys) as typed events.
func (a *authService) GetEvents(ctx context.Context, req *proto.GetEventsRequest) (*proto.Events, error) {
	a.s.st.getEvents.Add(1)
	page, err := (&auditService{s: a.s}).searchRaw(ctx, &auditlogpb.GetUnstructuredEventsRequest{
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
	var un auditlogpb.EventsUnstructured
	if err := gproto.Unmarshal(page.b, &un); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	out := &proto.Events{LastKey: un.GetLastKey(), Items: make([]*apievents.OneOf, 0, len(un.GetItems()))}
	for _, ev := range un.GetItems() {
		raw, err := gproto.Marshal(ev)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		one, err := typedEvent(raw)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		out.Items = append(out.Items, one)
	}
	return out, nil
}
