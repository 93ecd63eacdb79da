package teleport

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/gravitational/trace"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
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

// LegacyAPI is the part of the Teleport client that reads the legacy RPCs;
// *client.Client implements it.
type LegacyAPI interface {
	// StreamSessionEvents reads proto.AuthService/StreamSessionEvents.
	StreamSessionEvents(ctx context.Context, sessionID string, startIndex int64) (chan apievents.AuditEvent, chan error)
	// SearchEvents reads proto.AuthService/GetEvents.
	SearchEvents(ctx context.Context, fromUTC, toUTC time.Time, namespace string, eventTypes []string, limit int, order types.EventOrder, startKey string) ([]apievents.AuditEvent, string, error)
}

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
func (s *SessionSource) openFallback(ctx context.Context, sid string, from int64, sl *slab) sessionEvents {
	c := s.compat()
	legacy, hasLegacy := s.API.(LegacyAPI)
	if hasLegacy && c.legacyRec.Load() {
		return s.openLegacy(ctx, legacy, sid, from)
	}
	recv := s.openSession(ctx, sid, from, sl)
	if !hasLegacy {
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
				recv = s.openLegacy(ctx, legacy, sid, from)
				return recv()
			}
		}
		return idx, it, err
	}
}

// openLegacy reads a recording with StreamSessionEvents. An Unimplemented
// answer there too is errNeitherAPI.
func (s *SessionSource) openLegacy(ctx context.Context, api LegacyAPI, sid string, from int64) sessionEvents {
	events, errs := api.StreamSessionEvents(ctx, sid, from)
	first := true
	return func() (int64, record.Item, error) {
		defer func() { first = false }()
		select {
		case ev, ok := <-events:
			if !ok {
				return 0, record.Item{}, io.EOF
			}
			un, err := apievents.ToUnstructured(ev)
			if err != nil {
				return 0, record.Item{}, trace.Wrap(err, "converting event %d of the recording", ev.GetIndex())
			}
			return un.GetIndex(), s.encode(un, sid), nil
		case err := <-errs:
			if first && IsNotImplemented(err) {
				c := s.compat()
				return 0, record.Item{}, neither(&c.legacyRec, recordingsAPI, err)
			}
			return 0, record.Item{}, err
		case <-ctx.Done():
			return 0, record.Item{}, ctx.Err()
		}
	}
}

func (s *SearchSource) compat() *Compat {
	s.compatOnce.Do(func() {
		if s.Compat == nil {
			s.Compat = &Compat{Log: s.Log}
		}
	})
	return s.Compat
}

// search reads one page with SearchUnstructuredEvents, or after its
// Unimplemented with SearchEvents, each event converted by
// events.ToUnstructured. Keys are the same on both RPCs: the server pages
// one event store either way.
func (s *SearchSource) search(ctx context.Context, from, to time.Time, key string) ([]*auditlogpb.EventUnstructured, string, error) {
	c := s.compat()
	legacy, hasLegacy := s.API.(LegacyAPI)
	if !hasLegacy || !c.legacySearch.Load() {
		events, next, err := s.API.SearchUnstructuredEvents(ctx, from, to, "default", s.Types, s.Batch, types.EventOrderAscending, key)
		if err == nil || !hasLegacy || !IsNotImplemented(err) {
			return events, next, err
		}
		c.useLegacy(&c.legacySearch, &c.searchOnce, "audit events", searchAPI)
	}
	typed, next, err := legacy.SearchEvents(ctx, from, to, "default", s.Types, s.Batch, types.EventOrderAscending, key)
	if err != nil {
		if IsNotImplemented(err) {
			return nil, "", neither(&c.legacySearch, searchAPI, err)
		}
		return nil, "", err
	}
	events := make([]*auditlogpb.EventUnstructured, 0, len(typed))
	for _, ev := range typed {
		un, err := apievents.ToUnstructured(ev)
		if err != nil {
			return nil, "", trace.Wrap(err, "converting event %s (%s)", ev.GetID(), ev.GetType())
		}
		events = append(events, un)
	}
	return events, next, nil
}
