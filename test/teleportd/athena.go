package teleportd

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// With Options.Backend BackendAthena the stand-in serves the bulk
// export as Teleport's Athena backend does (lib/events/athena, Teleport
// 17/18; the README's "Athena bulk export" cites each rule):
//
//   - chunks are cut per consumer batch and event date (consumer.go,
//     writeToS3: one parquet file per date of a batch), listed as written,
//     not sorted (querier.go, GetEventExportChunks);
//   - rows come in receive order, not time order: here blocks of eight
//     rows are reversed;
//   - a share of events is stored twice, in a later chunk of the same date
//     (SQS at least once: a batch written but not deleted is read again);
//   - late chunks for past dates appear after a delay (SQS redelivery, a
//     dead-letter redrive, a consumer lock failover);
//   - the cursor is the row count "a1:<rows>" (athenaExportCursor); a
//     cursor of another form is InvalidArgument (trace.BadParameter), a
//     chunk removed after listing NotFound (readEventChunk);
//   - every recording stream call stores a session.recording.access event
//     (lib/auth/auth_with_roles.go, StreamSessionEvents), NotFound answers
//     included;
//   - CompleteUpload stores what UploadCompleter (lib/events/complete.go)
//     emits for an abandoned upload after its grace period: session.upload
//     now, then session.end with the session's old time.

// AthenaOptions shape the Athena mode.
type AthenaOptions struct {
	// LateChunks: of every past day of a generated run, this many of its
	// last chunks are held back (neither listed nor served) for LateDelay.
	LateChunks int
	// LateDelay is how late those chunks appear (default 2s).
	LateDelay time.Duration
	// RepeatShare of the events of every day of a generated run (0 to 1)
	// are stored again in one more chunk of that day, listed RepeatDelay
	// after the run (default LateDelay/2).
	RepeatShare float64
	RepeatDelay time.Duration
}

func (o AthenaOptions) withDefaults() AthenaOptions {
	if o.LateDelay <= 0 {
		o.LateDelay = 2 * time.Second
	}
	if o.RepeatDelay <= 0 {
		o.RepeatDelay = o.LateDelay / 2
	}
	o.RepeatShare = min(max(o.RepeatShare, 0), 1)
	return o
}

// athenaState is the Athena mode's state: the faults injected per chunk.
type athenaState struct {
	opts    AthenaOptions
	mu      sync.Mutex
	removed map[string]bool // RemoveChunk: NotFound from now on
	rejects map[string]bool // RejectCursors: every cursor is refused
	access  int64           // session.recording.access events stored
}

// served reports whether c is listed and served at now.
func (a *athenaState) served(c *chunk, now int64) bool {
	if c.visibleAt > now {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.removed[c.name]
}

// athenaLocked holds back the last LateChunks chunks of every day before
// today among cs (a generated run), and adds one chunk per day repeating
// RepeatShare of its events. Caller holds st.mu.
func (st *store) athenaLocked(seg *genSegment, cs []*chunk) []string {
	o := st.athena.opts
	now := time.Now()
	today := floorDay(now.UnixNano())
	byDay := map[int64][]*chunk{}
	var days []int64
	for _, c := range cs {
		if _, ok := byDay[c.day]; !ok {
			days = append(days, c.day)
		}
		byDay[c.day] = append(byDay[c.day], c)
	}
	var names []string
	for _, d := range days {
		list := byDay[d]
		if d < today && o.LateChunks > 0 {
			for _, c := range list[max(0, len(list)-o.LateChunks):] {
				c.visibleAt = now.Add(o.LateDelay).UnixNano()
			}
		}
		if o.RepeatShare <= 0 {
			continue
		}
		every := max(1, int(1/o.RepeatShare+0.5))
		var idx []int
		for _, c := range list {
			for i := c.lo; i < c.hi; i++ {
				if i%every == 0 {
					idx = append(idx, i)
				}
			}
		}
		if len(idx) == 0 {
			continue
		}
		r := &chunk{day: d, seg: seg, idx: idx, athena: true, visibleAt: now.Add(o.RepeatDelay).UnixNano()}
		st.newChunkLocked(r)
		names = append(names, r.name)
	}
	return names
}

// receiveOrder maps row p of a chunk of n rows to the event stored there:
// blocks of eight reversed, so rows are near, not in, time order.
func receiveOrder(p, n int) int {
	base := p &^ 7
	end := min(base+8, n)
	return end - 1 - (p - base)
}

func athenaCursor(rows int) string { return "a1:" + strconv.Itoa(rows) }

// parseAthenaCursor is athenaExportCursor.Decode: "a1:<rows>"; rows past
// the end give an empty stream, like stream.Skip.
func parseAthenaCursor(cur string, n int) (int, bool) {
	v, ok := strings.CutPrefix(cur, "a1:")
	if !ok {
		return 0, false
	}
	pos, err := strconv.ParseInt(v, 10, 64)
	if err != nil || pos < 0 {
		return 0, false
	}
	return int(min(pos, int64(n))), true
}

// RemoveChunk makes a chunk vanish (NotFound for listing and export), as
// when its file is removed after being listed; RestoreChunk brings it back.
func (s *Server) RemoveChunk(name string) {
	s.athenaFault(func(a *athenaState) { a.removed[name] = true })
}

// RestoreChunk undoes RemoveChunk.
func (s *Server) RestoreChunk(name string) {
	s.athenaFault(func(a *athenaState) { delete(a.removed, name) })
}

// RejectCursors makes every cursor of a chunk invalid (InvalidArgument, as
// Teleport's trace.BadParameter for a cursor it cannot decode); AcceptCursors
// undoes it.
func (s *Server) RejectCursors(name string) {
	s.athenaFault(func(a *athenaState) { a.rejects[name] = true })
}

// AcceptCursors undoes RejectCursors.
func (s *Server) AcceptCursors(name string) {
	s.athenaFault(func(a *athenaState) { delete(a.rejects, name) })
}

func (s *Server) athenaFault(f func(*athenaState)) {
	a := s.store.athena
	if a == nil {
		panic("teleportd: an Athena fault on a server without Backend athena")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

// rejectsCursor reports whether cursors of chunk name are refused.
func (st *store) rejectsCursor(name string) bool {
	a := st.athena
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rejects[name]
}

// badCursor is Teleport's answer to a cursor it cannot decode.
func badCursor(cur string) error {
	return status.Errorf(codes.InvalidArgument, "unsupported cursor format %q", cur)
}

// recordingAccessed stores the session.recording.access event of one
// recording stream call (Athena mode only).
func (s *Server) recordingAccessed(sid, user string) {
	a := s.store.athena
	if a == nil {
		return
	}
	a.mu.Lock()
	a.access++
	a.mu.Unlock()
	_, _ = s.store.add([]Event{{Fields: map[string]any{
		"event": "session.recording.access", "code": "T2012I", "sid": sid, "user": user, "time": time.Now().UTC(),
	}}})
}

// RecordingAccesses is the number of session.recording.access events
// stored (Athena mode).
func (s *Server) RecordingAccesses() int64 {
	a := s.store.athena
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.access
}

// CompleteUpload stores what Teleport's UploadCompleter emits for an
// upload abandoned past its grace period: a session.upload now, then a
// session.end carrying the session's old time (end), which lands in a
// late chunk of that old day. It may repeat a session.upload already
// emitted (the code says so), with a new uid. It returns the uids of the
// session.upload and the session.end.
func (s *Server) CompleteUpload(sid string, end time.Time) []string {
	now := time.Now().UTC()
	uids := []string{uuid.NewString(), uuid.NewString()}
	_, _ = s.store.add([]Event{
		{Fields: map[string]any{"event": "session.upload", "code": "T2005I", "sid": sid, "time": now, "uid": uids[0],
			"url": "s3://bucket/" + sid, "ei": int64(2147483646)}},
		{Fields: map[string]any{"event": "session.end", "code": "T2004I", "sid": sid, "time": end.UTC(), "uid": uids[1],
			"session_recording": "node"}},
	})
	return uids
}

// ChunkUIDs is the ground truth of one chunk: the uids of its events, in
// time order of generation (nil for an unknown chunk).
func (s *Server) ChunkUIDs(name string) []string {
	s.store.mu.RLock()
	c := s.store.chunks[name]
	s.store.mu.RUnlock()
	if c == nil {
		return nil
	}
	var out []string
	switch {
	case c.idx != nil:
		for _, i := range c.idx {
			out = append(out, c.seg.uidAt(i))
		}
	case c.seg != nil:
		for i := c.lo; i < c.hi; i++ {
			out = append(out, c.seg.uidAt(i))
		}
	default:
		for _, e := range c.evs {
			out = append(out, e.uid)
		}
	}
	return out
}
