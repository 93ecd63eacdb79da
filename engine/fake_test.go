package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeAuth is an in-memory Auth Service: events grouped in chunks per day,
// served by the export API and by search.
type fakeAuth struct {
	mu            sync.Mutex
	chunks        map[string][][]*auditlogpb.EventUnstructured // day -> chunks
	all           []*auditlogpb.EventUnstructured
	noExport      bool
	exportCalls   int
	failNextCalls int // fail this many export calls with Unavailable
	recordings    map[string][]*auditlogpb.EventUnstructured
	locks         []types.Lock
	lockErr       error
	// Search: calls, the most at once, a delay per call, and a page size
	// above which a response is too large.
	searchCalls, inFlight, maxInFlight int
	searchDelay                        time.Duration
	tooLargeAbove                      int
	searches                           []searchCall // every search call, in the order they began
}

// searchCall is one SearchUnstructuredEvents call: its range, and when it
// began and ended.
type searchCall struct {
	from, to   time.Time
	began, end time.Time
}

func (f *fakeAuth) UpsertLock(ctx context.Context, l types.Lock) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lockErr != nil {
		return f.lockErr
	}
	f.locks = append(f.locks, l)
	return nil
}

func (f *fakeAuth) lockCalls() []types.Lock {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]types.Lock(nil), f.locks...)
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{chunks: map[string][][]*auditlogpb.EventUnstructured{}}
}

// add stores n events of type typ spread from start by step, as one new chunk per day.
func (f *fakeAuth) add(start time.Time, step time.Duration, n int, typ string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	byDay := map[string][]*auditlogpb.EventUnstructured{}
	var ids []string
	for i := 0; i < n; i++ {
		t := start.Add(time.Duration(i) * step).UTC()
		id := fmt.Sprintf("%s-%d-%d", typ, t.UnixNano(), len(f.all))
		body, _ := structpb.NewStruct(map[string]any{
			"event": typ, "uid": id, "time": t.Format(time.RFC3339Nano), "code": "T1000I",
			"cluster_name": "acc", "ei": float64(i), "nested": map[string]any{"a": []any{"x", 1.0}},
		})
		ev := &auditlogpb.EventUnstructured{Type: typ, Id: id, Time: timestamppb.New(t), Index: int64(i), Unstructured: body}
		day := t.Format("2006-01-02")
		byDay[day] = append(byDay[day], ev)
		f.all = append(f.all, ev)
		ids = append(ids, id)
	}
	for day, evs := range byDay {
		f.chunks[day] = append(f.chunks[day], evs)
	}
	f.sortLocked()
	return ids
}

// sortLocked keeps every event in (time, id) order, the search order.
func (f *fakeAuth) sortLocked() {
	sort.SliceStable(f.all, func(i, j int) bool {
		a, b := f.all[i].Time.AsTime(), f.all[j].Time.AsTime()
		return a.Before(b) || a.Equal(b) && f.all[i].Id < f.all[j].Id
	})
}

func (f *fakeAuth) Ping(context.Context) (proto.PingResponse, error) {
	return proto.PingResponse{ClusterName: "acc", ServerVersion: "17.0.0"}, nil
}
func (f *fakeAuth) Close() error { return nil }

func (f *fakeAuth) GetEventExportChunks(ctx context.Context, req *auditlogpb.GetEventExportChunksRequest) stream.Stream[*auditlogpb.EventExportChunk] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noExport {
		return stream.Fail[*auditlogpb.EventExportChunk](trace.NotImplemented("not implemented"))
	}
	day := req.Date.AsTime().UTC().Format("2006-01-02")
	var out []*auditlogpb.EventExportChunk
	for i := range f.chunks[day] {
		out = append(out, &auditlogpb.EventExportChunk{Chunk: strconv.Itoa(i)})
	}
	return stream.Slice(out)
}

func (f *fakeAuth) ExportUnstructuredEvents(ctx context.Context, req *auditlogpb.ExportUnstructuredEventsRequest) stream.Stream[*auditlogpb.ExportEventUnstructured] {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exportCalls++
	if f.failNextCalls > 0 {
		f.failNextCalls--
		return stream.Fail[*auditlogpb.ExportEventUnstructured](trace.ConnectionProblem(nil, "down"))
	}
	day := req.Date.AsTime().UTC().Format("2006-01-02")
	ci, _ := strconv.Atoi(req.Chunk)
	evs := f.chunks[day][ci]
	from := 0
	if req.Cursor != "" {
		from, _ = strconv.Atoi(req.Cursor)
	}
	var out []*auditlogpb.ExportEventUnstructured
	for i := from; i < len(evs); i++ {
		out = append(out, &auditlogpb.ExportEventUnstructured{Event: evs[i], Cursor: strconv.Itoa(i + 1)})
	}
	return stream.Slice(out)
}

// SearchUnstructuredEvents pages by keyset like Teleport: the key names the
// (time, id) of the page's last event, the next page starts after it.
func (f *fakeAuth) SearchUnstructuredEvents(ctx context.Context, from, to time.Time, ns string, typs []string, limit int, order types.EventOrder, startKey string) ([]*auditlogpb.EventUnstructured, string, error) {
	f.mu.Lock()
	f.searchCalls++
	call := len(f.searches)
	f.searches = append(f.searches, searchCall{from: from, to: to, began: time.Now()})
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	delay := f.searchDelay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.searches[call].end = time.Now()
		f.mu.Unlock()
	}()
	if delay > 0 {
		time.Sleep(delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tooLargeAbove > 0 && limit > f.tooLargeAbove {
		return nil, "", status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d events)", limit)
	}
	var keyT int64
	var keyID string
	if startKey != "" {
		ts, id, _ := strings.Cut(startKey, "/")
		keyT, _ = strconv.ParseInt(ts, 10, 64)
		keyID = id
	}
	var out []*auditlogpb.EventUnstructured
	for _, ev := range f.all {
		t := ev.Time.AsTime()
		if t.Before(from) || !t.Before(to) {
			continue
		}
		if startKey != "" && (t.UnixNano() < keyT || t.UnixNano() == keyT && ev.Id <= keyID) {
			continue
		}
		out = append(out, ev)
		if len(out) == limit {
			last := out[len(out)-1]
			return out, fmt.Sprintf("%d/%s", last.Time.AsTime().UnixNano(), last.Id), nil
		}
	}
	return out, "", nil
}

// StreamUnstructuredSessionEvents serves recordings added with addRecording.
func (f *fakeAuth) StreamUnstructuredSessionEvents(ctx context.Context, sid string, start int64) (chan *auditlogpb.EventUnstructured, chan error) {
	f.mu.Lock()
	evs, ok := f.recordings[sid]
	f.mu.Unlock()
	ok = ok && evs != nil
	ch := make(chan *auditlogpb.EventUnstructured)
	errc := make(chan error, 1)
	if !ok {
		errc <- trace.NotFound("session %q not found", sid)
		return ch, errc
	}
	go func() {
		for _, ev := range evs {
			if ev.Index < start {
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
		close(ch)
	}()
	return ch, errc
}

// addSession adds the audit events announcing session sid (session.end and
// session.upload) and, with n > 0, its recording of n events.
func (f *fakeAuth) addSession(sid string, at time.Time, n int) (recording []string) {
	f.mu.Lock()
	if f.recordings == nil {
		f.recordings = map[string][]*auditlogpb.EventUnstructured{}
	}
	var evs []*auditlogpb.EventUnstructured
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-rec-%d", sid, i)
		typ := "print"
		if i == 0 {
			typ = "session.start"
		}
		body, _ := structpb.NewStruct(map[string]any{"event": typ, "uid": id, "ei": float64(i), "sid": sid,
			"time": at.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)})
		evs = append(evs, &auditlogpb.EventUnstructured{Type: typ, Id: id, Index: int64(i), Time: timestamppb.New(at.Add(time.Duration(i) * time.Millisecond)), Unstructured: body})
		recording = append(recording, id)
	}
	if n > 0 {
		f.recordings[sid] = evs
	}
	f.mu.Unlock()
	f.addEvent("session.end", at, map[string]any{"sid": sid, "session_recording": "node"})
	f.addEvent("session.upload", at.Add(time.Second), map[string]any{"sid": sid})
	return recording
}

func (f *fakeAuth) addEvent(typ string, t time.Time, fields map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("%s-%d-%d", typ, t.UnixNano(), len(f.all))
	m := map[string]any{"event": typ, "uid": id, "time": t.UTC().Format(time.RFC3339Nano), "ei": 0.0}
	for k, v := range fields {
		m[k] = v
	}
	body, _ := structpb.NewStruct(m)
	ev := &auditlogpb.EventUnstructured{Type: typ, Id: id, Time: timestamppb.New(t), Unstructured: body}
	day := t.UTC().Format("2006-01-02")
	f.chunks[day] = append(f.chunks[day], []*auditlogpb.EventUnstructured{ev})
	f.all = append(f.all, ev)
	f.sortLocked()
	return id
}

// addRecordingEvents makes the recording of sid exist with n events.
func (f *fakeAuth) addRecordingEvents(sid string, n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	var evs []*auditlogpb.EventUnstructured
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-rec-%d", sid, i)
		body, _ := structpb.NewStruct(map[string]any{"event": "session.data", "uid": id, "ei": float64(i), "time": at.Format(time.RFC3339Nano)})
		evs = append(evs, &auditlogpb.EventUnstructured{Type: "session.data", Id: id, Index: int64(i), Time: timestamppb.New(at), Unstructured: body})
		ids = append(ids, id)
	}
	f.recordings[sid] = evs
	return ids
}
