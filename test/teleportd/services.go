package teleportd

import (
	"time"

	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
)

// authService implements proto.AuthService: Ping, UpsertLock (locks.go),
// and the legacy StreamSessionEvents and GetEvents (legacy.go).
type authService struct {
	proto.UnimplementedAuthServiceServer
	s *Server
}

func (a *authService) Ping(ctx context.Context, _ *proto.PingRequest) (*proto.PingResponse, error) {
	a.s.st.ping.Add(1)
	resp := &proto.PingResponse{
		ClusterName:   a.s.opts.ClusterName,
		ServerVersion: a.s.opts.ServerVersion,
		ServerFeatures: &proto.Features{
			AccessControls:          true,
			AdvancedAccessWorkflows: true,
		},
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		resp.RemoteAddr = p.Addr.String()
	}
	return resp, nil
}

// auditService implements auditlogv1.AuditLogService.
type auditService struct {
	auditlogpb.UnimplementedAuditLogServiceServer
	s *Server
}

func (a *auditService) GetEventExportChunks(req *auditlogpb.GetEventExportChunksRequest, stream grpc.ServerStreamingServer[auditlogpb.EventExportChunk]) error {
	a.s.st.chunks.Add(1)
	if a.s.exportUnimpl.Load() {
		a.s.st.unimplemented.Add(1)
		return status.Error(codes.Unimplemented, "method GetEventExportChunks not implemented")
	}
	if err := a.s.checkAccess(stream.Context(), rightListEvents); err != nil {
		return err
	}
	if req.GetDate() == nil {
		return status.Error(codes.InvalidArgument, "missing date")
	}
	names := a.s.store.chunkNames(floorDay(req.GetDate().AsTime().UnixNano()))
	for _, n := range names {
		if err := stream.Send(&auditlogpb.EventExportChunk{Chunk: n}); err != nil {
			return err
		}
		a.s.st.chunksListed.Add(1)
	}
	return nil
}

func (a *auditService) ExportUnstructuredEvents(req *auditlogpb.ExportUnstructuredEventsRequest, stream grpc.ServerStreamingServer[auditlogpb.ExportEventUnstructured]) error {
	a.s.st.export.Add(1)
	if a.s.exportUnimpl.Load() {
		a.s.st.unimplemented.Add(1)
		return status.Error(codes.Unimplemented, "method ExportUnstructuredEvents not implemented")
	}
	if err := a.s.checkAccess(stream.Context(), rightListEvents); err != nil {
		return err
	}
	if req.GetDate() == nil {
		return status.Error(codes.InvalidArgument, "missing date")
	}
	c := a.s.store.lookup(req.GetChunk())
	if c == nil || c.day != floorDay(req.GetDate().AsTime().UnixNano()) {
		return status.Errorf(codes.NotFound, "chunk %q not found for date %s", req.GetChunk(), req.GetDate().AsTime().UTC().Format("2006-01-02"))
	}
	pos := 0
	if req.GetCursor() != "" {
		if a.s.store.rejectsCursor(c.name) {
			return badCursor(req.GetCursor())
		}
		var ok bool
		if pos, ok = c.parseCursor(req.GetCursor()); !ok {
			return status.Errorf(codes.InvalidArgument, "invalid cursor %q for chunk %q", req.GetCursor(), c.name)
		}
	}
	ctx := stream.Context()
	n := c.size()
	var sent int64
	defer func() { a.s.st.exported.Add(sent) }()
	capHint := 1024
	for p := pos; p < n; p++ {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		// ExportEventUnstructured: event = 1, cursor = 2. A fresh buffer per
		// message: gRPC may still hold the previous one after SendMsg.
		w := pbw{b: make([]byte, 0, capHint)}
		m := w.begin(1)
		c.appendEvent(&w, p)
		w.end(m)
		w.str(2, c.cursor(p+1))
		capHint = len(w.b) + 64
		if err := stream.SendMsg(&rawMsg{b: w.b}); err != nil {
			return err
		}
		sent++
		if sent&1023 == 0 {
			a.s.st.exported.Add(sent)
			sent = 0
		}
	}
	return nil
}

// StreamUnstructuredSessionEvents (session recordings): see recordings.go.

// GetUnstructuredEvents is the typed form of search (the server registers
// searchRaw instead, see auditLogServiceDesc).
func (a *auditService) GetUnstructuredEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (*auditlogpb.EventsUnstructured, error) {
	raw, err := a.search(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &auditlogpb.EventsUnstructured{}
	if err := gproto.Unmarshal(raw.b, out); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return out, nil
}

// search is GetUnstructuredEvents, or codes.Unimplemented under
// Options.SearchUnimplemented.
func (a *auditService) search(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (*rawMsg, error) {
	a.s.st.search.Add(1)
	if a.s.searchUnimpl.Load() {
		a.s.st.unimplemented.Add(1)
		return nil, status.Error(codes.Unimplemented, "unknown method GetUnstructuredEvents for service teleport.auditlog.v1.AuditLogService")
	}
	return a.searchRaw(ctx, req)
}

// searchRaw implements GetUnstructuredEvents (and the legacy GetEvents) and
// returns the encoded EventsUnstructured (items = 1, last_key = 2).
func (a *auditService) searchRaw(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (*rawMsg, error) {
	if err := a.s.checkAccess(ctx, rightListEvents); err != nil {
		return nil, err
	}
	if d := a.s.opts.SearchPageDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if ns := req.GetNamespace(); ns != "" && ns != "default" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid namespace %q", ns)
	}
	lo, hi := minTime, maxTimeExcl
	if req.GetStartDate() != nil {
		lo = req.GetStartDate().AsTime().UnixNano()
	}
	if req.GetEndDate() != nil {
		hi = req.GetEndDate().AsTime().UnixNano()
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > MaxSearchLimit {
		limit = MaxSearchLimit
	}
	var typeSet map[string]bool
	if len(req.GetEventTypes()) > 0 {
		typeSet = make(map[string]bool, len(req.GetEventTypes()))
		for _, t := range req.GetEventTypes() {
			typeSet[t] = true
		}
	}
	// The wire value is types.EventOrder cast to auditlogpb.Order by the
	// client (client.SearchUnstructuredEvents: auditlogpb.Order(order)), and
	// Teleport casts it back: 0 (types.EventOrderAscending, although the
	// proto calls it ORDER_DESCENDING_UNSPECIFIED) is ascending, 1 is
	// descending.
	var asc bool
	switch types.EventOrder(req.GetOrder()) {
	case types.EventOrderAscending:
		asc = true
	case types.EventOrderDescending:
		asc = false
	default:
		return nil, status.Errorf(codes.InvalidArgument, "invalid order %d", req.GetOrder())
	}
	if b := a.s.opts.Backend; b != BackendIdeal {
		if !asc {
			return nil, status.Error(codes.Unimplemented, "the stand-in's backends answer ascending searches only")
		}
		return a.backendSearch(ctx, b, req, lo, hi, typeSet)
	}
	var key *searchKey
	if req.GetStartKey() != "" {
		var ok bool
		if key, ok = parseSearchKey(req.GetStartKey()); !ok {
			return nil, status.Errorf(codes.InvalidArgument, "invalid start_key %q", req.GetStartKey())
		}
	}
	w := &pbw{}
	if lo >= hi {
		return &rawMsg{b: w.b}, nil
	}
	m := newMerger(newQuery(asc, lo, hi, key), a.s.store.snapshot())
	maxBytes := a.s.opts.SearchMaxBytes
	count, truncated := 0, false
	var last ref
	for scanned := 0; count < limit; scanned++ {
		if scanned&4095 == 4095 && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		r, ok := m.next()
		if !ok {
			break
		}
		if typeSet != nil && !typeSet[r.typ] {
			continue
		}
		before := len(w.b)
		mk := w.begin(1)
		r.appendEvent(w)
		w.end(mk)
		// Like Teleport (events.MaxEventBytesInResponse): stop before the
		// event that would exceed the budget; never return an empty page.
		if maxBytes > 0 && count > 0 && len(w.b) > maxBytes {
			w.b = w.b[:before]
			truncated = true
			break
		}
		count++
		last = r
	}
	if count > 0 && (count == limit || truncated) {
		w.str(2, searchKey{t: last.t, uid: last.uid}.String())
	}
	a.s.st.searched.Add(int64(count))
	return &rawMsg{b: w.b}, nil
}

// auditLogServiceDesc is auditlogpb.AuditLogService_ServiceDesc with the
// GetUnstructuredEvents handler replaced by one returning the pre-encoded
// response (sent as is by rawCodec).
func auditLogServiceDesc() *grpc.ServiceDesc {
	d := auditlogpb.AuditLogService_ServiceDesc
	d.Methods = append([]grpc.MethodDesc(nil), d.Methods...)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "GetUnstructuredEvents" {
			d.Methods[i].Handler = searchHandler
		}
	}
	return &d
}

func searchHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(auditlogpb.GetUnstructuredEventsRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	h := func(ctx context.Context, req any) (any, error) {
		out, err := srv.(*auditService).search(ctx, req.(*auditlogpb.GetUnstructuredEventsRequest))
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	if interceptor == nil {
		return h(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: auditlogpb.AuditLogService_GetUnstructuredEvents_FullMethodName}, h)
}
