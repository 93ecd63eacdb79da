package teleportd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// RecordingEventMeta identifies one event of a recording (ground truth).
// UID is the EventUnstructured.Id the client receives: the event's uid, or
// for print and desktop.recording events (which have no uid, as in
// Teleport) a 64-hex-digit content hash.
type RecordingEventMeta struct {
	Index int64
	Type  string
	UID   string
	Time  time.Time
}

// RecordingStats are the counters of StreamUnstructuredSessionEvents.
type RecordingStats struct {
	Calls    int64 // requests, every answer included
	NotFound int64 // answered codes.NotFound (no recording, or SetRecordingMissing*)
	Failed   int64 // failed by SetRecordingFailing or SetRecordingBreakAfter
	Events   int64 // events streamed, all sessions

	CallsPerSession  map[string]int64 // requests per session id
	EventsPerSession map[string]int64 // events streamed per session id
}

// recSource is a recording: explicit (AddRecording) or generated.
type recSource interface {
	size() int
	// iter streams the events with Index >= start, in index order.
	iter(start int64) recIter
	metas() []RecordingEventMeta
}

type recIter interface {
	// next appends the EventUnstructured encoding of the next event to b;
	// false when there is none.
	next(b []byte) ([]byte, bool)
}

type recFault struct {
	missingUntil time.Time
	missingFor   int
	failCode     codes.Code
	failN        int // < 0: always
	breakK       int
	breakN       int // < 0: always
}

// recState is the server's recording state (zero value ready).
type recState struct {
	mu       sync.Mutex
	recs     map[string]recSource // AddRecording, GenerateRecording, AddSession
	faults   map[string]*recFault
	callsSid map[string]int64
	evsSid   map[string]int64

	calls, notFound, failed, events atomic.Int64
}

func (r *recState) fault(sid string) *recFault {
	if r.faults == nil {
		r.faults = map[string]*recFault{}
	}
	f := r.faults[sid]
	if f == nil {
		f = &recFault{}
		r.faults[sid] = f
	}
	return f
}

func (r *recState) set(sid string, src recSource, replace bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recs == nil {
		r.recs = map[string]recSource{}
	}
	if _, ok := r.recs[sid]; ok && !replace {
		return
	}
	r.recs[sid] = src
}

// recording returns the recording of sid: explicit or registered first,
// then the generated sessions; nil if there is none.
func (s *Server) recording(sid string) recSource {
	s.rec.mu.Lock()
	src := s.rec.recs[sid]
	s.rec.mu.Unlock()
	if src != nil {
		return src
	}
	if g := s.store.genSessionRecording(sid); g != nil {
		return g
	}
	return nil
}

// --- API ------------------------------------------------------------------------

// AddRecording stores an explicit recording for sid, replacing any other.
// Events are normalised like Add's, except that print and desktop.recording
// events without a uid keep none (their Id is the SHA-256 hex of their JSON,
// like Teleport's). An event without "ei" gets its position in events as
// index; the recording is streamed in index order. It panics on events that
// cannot be encoded.
func (s *Server) AddRecording(sid string, events []Event) {
	rec := &expRec{}
	for i, e := range events {
		se, idx, err := s.store.toStoredRecording(e, i)
		if err != nil {
			panic(err)
		}
		rec.evs = append(rec.evs, se)
		rec.idx = append(rec.idx, idx)
	}
	sort.Stable(rec)
	s.rec.set(sid, rec, true)
}

// GenerateRecording makes sid's recording n generated events (produced on
// demand, never stored), deterministic from (sid, seed), replacing any
// other: session.start, resize, print events (one recording in eight also
// has desktop.recording events), session.leave, session.end. Event times
// are 20-100ms apart from a day of 2026-11-20 picked by the hash.
func (s *Server) GenerateRecording(sid string, n int, seed int64) {
	h := hash3(seed, saltRecSID, fnvString(sid))
	t0 := base2026.Add(time.Duration(h%86_400_000) * time.Millisecond)
	step := time.Duration(20+h>>32%81) * time.Millisecond
	t1 := t0.Add(time.Duration(max(n-1, 0)) * step)
	s.rec.set(sid, s.sessionRec(sid, h, max(n, 0), t0, t1), true)
}

// AddSession adds the audit events of an SSH session sid: session.start,
// session.end and, with withUpload, session.upload (older servers only emit
// session.end). The upload is at `at`, the end 500ms before it and the
// start 2-60s before the end; content and uids are deterministic from
// (sid, at). The session gets a recording (if it has none yet) whose first
// and last events are that session.start and session.end, of the default
// generated size (or Options.RecordingEvents). It returns the uids of the
// audit events added, in time order.
func (s *Server) AddSession(sid string, at time.Time, withUpload bool) []string {
	h := hash3(int64(at.UnixNano()), saltRecSID, fnvString(sid))
	end := at.Add(-500 * time.Millisecond)
	start := end.Add(-time.Duration(2000+h>>20%58000) * time.Millisecond)
	n := defaultRecordingLen(h)
	if s.opts.RecordingEvents > 0 {
		n = max(s.opts.RecordingEvents, 2)
	}
	rec := s.sessionRec(sid, h, n, start, end)
	evs := []Event{{Fields: rec.fields(rkStart, start)}, {Fields: rec.fields(rkEnd, end)}}
	if withUpload {
		evs = append(evs, Event{Fields: map[string]any{
			"cluster_name": s.opts.ClusterName,
			"code":         "T2005I",
			"ei":           2147483647,
			"event":        "session.upload",
			"sid":          sid,
			"time":         at,
			"uid":          uuidString(hash3(int64(h), saltRecUIDs, 3), hash3(int64(h), saltRecUIDs, 4)),
			"url":          "file:///var/lib/teleport/log/records/multi/" + sid,
		}})
	}
	s.Add(evs...)
	s.rec.set(sid, rec, false)
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Fields["uid"].(string)
	}
	return out
}

// SetRecordingMissing makes requests for sid's recording answer
// codes.NotFound ("not uploaded yet") until the given time; afterwards the
// recording exists (if sid has one).
func (s *Server) SetRecordingMissing(sid string, until time.Time) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.fault(sid).missingUntil = until
}

// SetRecordingMissingFor makes the next n requests for sid's recording
// answer codes.NotFound.
func (s *Server) SetRecordingMissingFor(sid string, n int) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.fault(sid).missingFor = n
}

// SetRecordingFailing makes the next n requests for sid's recording (n < 0:
// all) fail with code before streaming anything; codes.OK or n = 0 clears.
func (s *Server) SetRecordingFailing(sid string, code codes.Code, n int) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	f := s.rec.fault(sid)
	if code == codes.OK {
		n = 0
	}
	f.failCode, f.failN = code, n
}

// SetRecordingBreakAfter makes the next n requests for sid's recording (n <
// 0: all) stream k events (or all that remain, if fewer) and then fail
// with codes.Unavailable, like a connection lost mid-stream. n = 0 clears.
func (s *Server) SetRecordingBreakAfter(sid string, k, n int) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	f := s.rec.fault(sid)
	f.breakK, f.breakN = max(k, 0), n
}

// HasRecording reports whether sid has a recording (faults aside).
func (s *Server) HasRecording(sid string) bool { return s.recording(sid) != nil }

// RecordingLen returns the number of events of sid's recording (0 if none).
func (s *Server) RecordingLen(sid string) int {
	if src := s.recording(sid); src != nil {
		return src.size()
	}
	return 0
}

// RecordingUIDs returns the Ids of the events of sid's recording in index
// order (nil if none): what StreamUnstructuredSessionEvents sends as
// EventUnstructured.Id.
func (s *Server) RecordingUIDs(sid string) []string {
	ms := s.RecordingEvents(sid)
	if ms == nil {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UID
	}
	return out
}

// RecordingEvents returns index, type, Id and time of every event of sid's
// recording in index order (nil if none).
func (s *Server) RecordingEvents(sid string) []RecordingEventMeta {
	if src := s.recording(sid); src != nil {
		return src.metas()
	}
	return nil
}

// RecordingTotals is RecordingStats without the per-session maps, and the
// number of sessions requested: cheap enough to poll (copying the maps holds
// every recording stream up while a backlog has hundreds of thousands).
func (s *Server) RecordingTotals() (RecordingStats, int) {
	r := &s.rec
	r.mu.Lock()
	n := len(r.callsSid)
	r.mu.Unlock()
	return RecordingStats{Calls: r.calls.Load(), NotFound: r.notFound.Load(), Failed: r.failed.Load(), Events: r.events.Load()}, n
}

// RecordingStats returns a snapshot of the recording counters.
func (s *Server) RecordingStats() RecordingStats {
	r := &s.rec
	out := RecordingStats{
		Calls:            r.calls.Load(),
		NotFound:         r.notFound.Load(),
		Failed:           r.failed.Load(),
		Events:           r.events.Load(),
		CallsPerSession:  map[string]int64{},
		EventsPerSession: map[string]int64{},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.callsSid {
		out.CallsPerSession[k] = v
	}
	for k, v := range r.evsSid {
		out.EventsPerSession[k] = v
	}
	return out
}

// --- the RPC --------------------------------------------------------------------

// StreamUnstructuredSessionEvents streams the recording of one session, like
// Teleport: every event with Index >= start_index, in index order (so a
// client resumes with start_index = last index received + 1; 0 streams
// everything; a negative start_index counts as 0, one past the end streams
// nothing and ends cleanly). A session without a recording (not uploaded
// yet) answers codes.NotFound, which the client turns into trace.NotFound.
// Order of the checks: Options.RecordingsUnimplemented (codes.Unimplemented,
// a server without the method), access (ReadSessions,
// codes.PermissionDenied), then SetRecordingMissing, SetRecordingMissingFor,
// SetRecordingFailing, the recording's existence, SetRecordingBreakAfter.
// Only the fault that answers a request consumes a count.
func (a *auditService) StreamUnstructuredSessionEvents(req *auditlogpb.StreamUnstructuredSessionEventsRequest, stream grpc.ServerStreamingServer[auditlogpb.EventUnstructured]) error {
	a.s.st.sessionEvents.Add(1)
	if a.s.recUnimpl.Load() {
		a.s.st.unimplemented.Add(1)
		return status.Error(codes.Unimplemented, "unknown method StreamUnstructuredSessionEvents for service teleport.auditlog.v1.AuditLogService")
	}
	// One rawMsg for the stream (the codec is done with it when SendMsg
	// returns), a buffer per message from msgBufs: gRPC holds it until
	// written, then gives it back.
	var msg rawMsg
	return a.s.serveRecording(stream.Context(), req.GetSessionId(), int64(req.GetStartIndex()), func(bp *[]byte) error {
		msg.buf = mem.NewBuffer(bp, &msgBufs)
		return stream.SendMsg(&msg)
	})
}

// serveRecording streams the recording of sid from index start, each event
// an encoded EventUnstructured in a buffer from msgBufs that send owns:
// what both recording RPCs share (faults, counters, ground truth).
func (s *Server) serveRecording(ctx context.Context, sid string, start int64, send func(bp *[]byte) error) error {
	r := &s.rec
	r.calls.Add(1)
	r.mu.Lock()
	if r.callsSid == nil {
		r.callsSid = map[string]int64{}
	}
	r.callsSid[sid]++
	r.mu.Unlock()
	if err := s.checkAccess(ctx, rightReadSessions); err != nil {
		return err
	}
	// After the access check, as ServerWithRoles.StreamSessionEvents
	// (lib/auth/auth_with_roles.go) emits it; NotFound answers included.
	s.recordingAccessed(sid, callerUser(ctx))
	notFound := func() error {
		r.notFound.Add(1)
		return status.Errorf(codes.NotFound, "session recording %q is not found", sid)
	}
	if s.opts.NoRecordings {
		return notFound()
	}

	r.mu.Lock()
	if f := r.faults[sid]; f != nil {
		switch {
		case time.Now().Before(f.missingUntil):
			r.mu.Unlock()
			return notFound()
		case f.missingFor > 0:
			f.missingFor--
			r.mu.Unlock()
			return notFound()
		case f.failN != 0:
			if f.failN > 0 {
				f.failN--
			}
			code := f.failCode
			r.mu.Unlock()
			r.failed.Add(1)
			return status.Errorf(code, "streaming session %q failed (injected %s)", sid, code)
		}
	}
	r.mu.Unlock()

	src := s.recording(sid)
	if src == nil {
		return notFound()
	}
	brk := -1
	r.mu.Lock()
	if f := r.faults[sid]; f != nil && f.breakN != 0 {
		if f.breakN > 0 {
			f.breakN--
		}
		brk = f.breakK
	}
	r.mu.Unlock()

	var sent, unrep int64
	flush := func() {
		r.events.Add(unrep)
		r.mu.Lock()
		if r.evsSid == nil {
			r.evsSid = map[string]int64{}
		}
		r.evsSid[sid] += unrep
		r.mu.Unlock()
		unrep = 0
	}
	defer flush()
	it := src.iter(start)
	for brk < 0 || sent < int64(brk) {
		if sent&255 == 255 {
			if err := ctx.Err(); err != nil {
				return status.FromContextError(err).Err()
			}
		}
		bp := msgBufs.Get(0)
		b, ok := it.next(*bp)
		if !ok {
			msgBufs.Put(bp)
			break
		}
		*bp = b
		if err := send(bp); err != nil {
			return err
		}
		sent++
		unrep++
		if unrep == 4096 {
			flush()
		}
	}
	if brk >= 0 {
		r.failed.Add(1)
		return status.Errorf(codes.Unavailable, "connection to the Auth Service lost while streaming session %q (injected after %d events)", sid, sent)
	}
	return nil
}

// --- explicit recordings ----------------------------------------------------------

type expRec struct {
	evs []*storedEvent
	idx []int64
}

func (e *expRec) Len() int           { return len(e.evs) }
func (e *expRec) Less(i, j int) bool { return e.idx[i] < e.idx[j] }
func (e *expRec) Swap(i, j int) {
	e.evs[i], e.evs[j] = e.evs[j], e.evs[i]
	e.idx[i], e.idx[j] = e.idx[j], e.idx[i]
}

func (e *expRec) size() int { return len(e.evs) }

func (e *expRec) iter(start int64) recIter {
	p := sort.Search(len(e.idx), func(i int) bool { return e.idx[i] >= start })
	return &expRecIter{e: e, p: p}
}

func (e *expRec) metas() []RecordingEventMeta {
	out := make([]RecordingEventMeta, len(e.evs))
	for i, se := range e.evs {
		out[i] = RecordingEventMeta{Index: e.idx[i], Type: se.typ, UID: se.uid, Time: time.Unix(0, se.t).UTC()}
	}
	return out
}

type expRecIter struct {
	e *expRec
	p int
}

func (it *expRecIter) next(b []byte) ([]byte, bool) {
	if it.p >= len(it.e.evs) {
		return b, false
	}
	b = append(b, it.e.evs[it.p].raw...)
	it.p++
	return b, true
}

// noUIDTypes are the recording event types Teleport never gives a uid.
var noUIDTypes = map[string]bool{"print": true, "desktop.recording": true}

// toStoredRecording normalises an explicit recording event (pos is its
// position in the AddRecording call). It returns the event and its index.
func (st *store) toStoredRecording(e Event, pos int) (*storedEvent, int64, error) {
	fields := make(map[string]any, len(e.Fields)+2)
	for k, v := range e.Fields {
		fields[k] = v
	}
	if _, ok := fields["ei"]; !ok {
		fields["ei"] = pos
	}
	typ, _ := fields["event"].(string)
	uid, _ := fields["uid"].(string)
	noUID := uid == "" && noUIDTypes[typ]
	if noUID {
		// Teleport's ToUnstructured: Id = SHA-256 hex of the event JSON.
		if _, ok := fields["cluster_name"]; !ok {
			fields["cluster_name"] = st.cluster
		}
		if t, ok := fields["time"].(time.Time); ok {
			fields["time"] = t.UTC().Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(fields)
		if err != nil {
			return nil, 0, fmt.Errorf("teleportd: recording event fields: %w", err)
		}
		sum := sha256.Sum256(b)
		fields["uid"] = hex.EncodeToString(sum[:])
	}
	se, err := st.toStored(Event{Fields: fields})
	if err != nil {
		return nil, 0, err
	}
	m := &auditlogpb.EventUnstructured{}
	if err := proto.Unmarshal(se.raw, m); err != nil {
		return nil, 0, err
	}
	if noUID {
		delete(m.GetUnstructured().GetFields(), "uid")
		if se.raw, err = (proto.MarshalOptions{Deterministic: true}).Marshal(m); err != nil {
			return nil, 0, err
		}
	}
	return se, m.GetIndex(), nil
}

// --- synthesized sessions -----------------------------------------------------------

// base2026 anchors the times of GenerateRecording.
var base2026 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func fnvString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// sessionRec builds the recording of a synthesized SSH session of n events
// from start to end, content hashed from h.
func (s *Server) sessionRec(sid string, h uint64, n int, start, end time.Time) *genRec {
	cs := mix64(h ^ saltRecSeed)
	r := &genRec{
		sid:     sid,
		seed:    int64(cs),
		n:       n,
		cluster: s.opts.ClusterName,
		desktop: cs%8 == 0,
		info:    sessInfoFromHash(h),
	}
	// fields reads r.n, r.info and the uids hashed from r.seed.
	var err error
	if r.first, err = s.store.toStored(Event{Fields: r.fields(rkStart, start)}); err != nil {
		panic(err)
	}
	if r.last, err = s.store.toStored(Event{Fields: r.fields(rkEnd, end)}); err != nil {
		panic(err)
	}
	return r
}

// fields returns the raw fields of the session.start or session.end of a
// synthesized session (as Generate writes them).
func (r *genRec) fields(k recKind, t time.Time) map[string]any {
	si := r.info
	f := map[string]any{
		"addr.remote":       si.remote,
		"cluster_name":      r.cluster,
		"login":             si.login,
		"namespace":         "default",
		"proto":             "ssh",
		"server_addr":       si.host.addr,
		"server_hostname":   si.host.hostname,
		"server_id":         si.host.id,
		"server_labels":     map[string]string{"env": si.host.env, "region": "eu-west-1"},
		"session_recording": "node",
		"sid":               r.sid,
		"time":              t,
		"user":              si.user,
	}
	switch k {
	case rkStart:
		f["addr.local"] = si.host.addr
		f["code"] = "T2000I"
		f["ei"] = 0
		f["event"] = "session.start"
		f["initial_command"] = []string{""}
		f["size"] = "80:25"
		f["uid"] = uuidString(hash3(r.seed, saltRecUIDs, 1), hash3(r.seed, saltRecUIDs, 11))
	case rkEnd:
		f["code"] = "T2004I"
		f["ei"] = max(r.n-1, 0)
		f["enhanced_recording"] = false
		f["event"] = "session.end"
		f["interactive"] = true
		f["participants"] = []string{si.user}
		f["session_start"] = r.startTime()
		f["session_stop"] = t.UTC().Format(time.RFC3339Nano)
		f["uid"] = uuidString(hash3(r.seed, saltRecUIDs, 2), hash3(r.seed, saltRecUIDs, 12))
	}
	return f
}

func (r *genRec) startTime() string {
	if r.first == nil {
		return ""
	}
	return time.Unix(0, r.first.t).UTC().Format(time.RFC3339Nano)
}
