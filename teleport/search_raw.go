package teleport

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gravitational/teleport/api/types"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// A backlog window's pages are read one after another: each asks from the
// last key of the one before. teleport/api's SearchUnstructuredEvents
// decodes a whole page into structpb values (~11 µs an event) before it
// returns that key, so the decoding sits between every two calls. On a
// teleport/api client the backlog reads the response raw instead and
// transcodes each event's wire bytes straight into its record
// (record.AppendWire, as the bulk export): a few ms a page instead of ~25.

// searchRaw is one GetUnstructuredEvents call as client.SearchUnstructuredEvents
// makes it, its events kept in their wire encoding. ok is false when the
// raw path does not apply (not a teleport/api client, a server on the
// legacy RPC, or one answering Unimplemented: search then decides).
func (s *SearchSource) searchRaw(ctx context.Context, from, to time.Time, limit int, key string) (frames [][]byte, next string, ok bool, err error) {
	cc := legacyConn(s.API)
	if cc == nil || s.compat().legacySearch.Load() {
		return nil, "", false, nil
	}
	req := &auditlogpb.GetUnstructuredEventsRequest{Namespace: "default", StartDate: timestamppb.New(from), EndDate: timestamppb.New(to),
		EventTypes: s.Types, Limit: int32(limit), StartKey: key, Order: auditlogpb.Order(types.EventOrderAscending)}
	var page rawFrame
	if err := cc.Invoke(ctx, auditlogpb.AuditLogService_GetUnstructuredEvents_FullMethodName, req, &page, grpc.ForceCodecV2(rawCodec{})); err != nil {
		if IsNotImplemented(err) {
			return nil, "", false, nil
		}
		return nil, "", true, trace.Wrap(err)
	}
	// GetUnstructuredEventsResponse: items = 1, last_key = 2.
	for p := page.b; len(p) > 0; {
		num, wt, _, data, k := record.WireField(p)
		if k == 0 || (num == 1 || num == 2) && wt != 2 {
			return nil, "", true, trace.BadParameter("malformed GetUnstructuredEvents response")
		}
		p = p[k:]
		switch num {
		case 1:
			frames = append(frames, data)
		case 2:
			next = string(data)
		}
	}
	return frames, next, true, nil
}

// pageItem is one event of a backlog page, ready to queue.
type pageItem struct {
	key seenKey
	id  string
	it  record.Item
}

// rawItems turns a raw page's events into items: straight from the wire
// when the event has the plain shape (encodeRaw), else through
// proto.Unmarshal and encode. An event neither can read fails the page,
// as it fails SearchUnstructuredEvents.
func (s *SearchSource) rawItems(frames [][]byte, sl *slab) ([]pageItem, error) {
	out := make([]pageItem, 0, len(frames))
	var e rawEvent
	for _, fr := range frames {
		if e.parseEvent(fr) && len(e.id) > 0 {
			if it, ok := encodeRaw(&e, s.Filter, s.Log, sl); ok {
				id := string(e.id)
				out = append(out, pageItem{key: seenKeyOf(id, e.envelopeTime().UnixNano()), id: id, it: it})
				continue
			}
		}
		var ev auditlogpb.EventUnstructured
		if err := proto.Unmarshal(fr, &ev); err != nil {
			return nil, trace.Wrap(err, "decoding a searched event")
		}
		out = append(out, typedItem(&ev, s.Filter, s.Log))
	}
	return out, nil
}

// typedItems is rawItems for a page the client decoded.
func (s *SearchSource) typedItems(events []*auditlogpb.EventUnstructured) []pageItem {
	out := make([]pageItem, 0, len(events))
	for _, ev := range events {
		out = append(out, typedItem(ev, s.Filter, s.Log))
	}
	return out
}

func typedItem(ev *auditlogpb.EventUnstructured, f *Filter, log *logging.Logger) pageItem {
	return pageItem{key: keyOf(ev), id: ev.GetId(), it: encode(ev, f, log)}
}
