package teleport

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// SessionAPI is the part of the Teleport client that streams recordings;
// *client.Client implements it.
type SessionAPI interface {
	StreamUnstructuredSessionEvents(ctx context.Context, sessionID string, startIndex int64) (chan *auditlogpb.EventUnstructured, chan error)
}

// maxRetryWait caps the wait between two tries of one recording failing
// (other than missing).
const maxRetryWait = 10 * time.Minute

// MissingRetryWait caps the wait between two tries of a missing recording
// given up after giveUpAfter: an eighth of it, at least maxRetryWait. Each
// try is a StreamSessionEvents call, and Teleport emits a
// session.recording.access audit event for every one, NotFound included
// (lib/auth/auth_with_roles.go): tries double from session_retry_interval
// to this cap, so a recording missing until given up costs at most
// MaxMissingTries(...) of them.
func MissingRetryWait(giveUpAfter time.Duration) time.Duration {
	return max(maxRetryWait, giveUpAfter/8)
}

// MaxMissingTries bounds the tries (so the session.recording.access events)
// of one recording missing until it is given up: the doubling waits from
// retry up to the cap, then one try per cap until giveUpAfter, plus the
// first and the last.
func MaxMissingTries(retry, giveUpAfter time.Duration) int {
	limit := MissingRetryWait(giveUpAfter)
	n, elapsed := 1, time.Duration(0)
	for d := retry; elapsed <= giveUpAfter; n++ {
		elapsed += d
		d = min(2*d, limit)
	}
	return n
}

// SessionSource exports session recordings, Concurrency at a time. A
// recording that is not there yet (NotFound) waits for its retry without
// holding a worker, and is given up GiveUpAfter after the event that
// announced it; any other failure is retried MaxAttempts times. Neither
// ever stops the audit export.
type SessionSource struct {
	API           SessionAPI
	Skip          []string // recording event types never exported (skip_session_types)
	Concurrency   int
	GiveUpAfter   time.Duration
	RetryInterval time.Duration
	MaxAttempts   int
	// EndWait delays a recording announced by session.end only, giving the
	// session.upload that normally follows the time to take it over.
	EndWait time.Duration
	// EndWithoutUpload is EndWait on a cluster that emits session.upload
	// (cursor.Session.AwaitUpload): the recording of a session.end whose
	// session.upload has not come is tried after this.
	EndWithoutUpload time.Duration
	Log              *logging.Logger
	Now              func() time.Time
	Metrics          *metrics.Metrics
	// Compat is shared by the sources of one connection (legacy.go); nil
	// gets one of its own.
	Compat *Compat

	compatOnce sync.Once
	once       sync.Once
	skip       map[string]bool
	mu         sync.Mutex
	jobs       map[string]*job // every session not finished
	// finished are sessions whose end is queued but not yet committed
	// (Forget): the state still lists them, and an Add then must not
	// export them again.
	finished map[string]bool
	sched    schedule // the jobs not running
	running  int
	retrying int // jobs waiting after a failure
	// endWaiting counts jobs announced by session.end waiting for their
	// session.upload: not work to do yet, so they must not hold back the
	// audit events that bring those uploads.
	endWaiting int
	// unimplWarned: the warning about a server without any recording RPC
	// was logged (once until a recording is exported again).
	unimplWarned bool
	wake         chan struct{}
	// slabs are carried over from one recording to the next: most
	// recordings are a few KB, and a fresh 32 KB slab each would pin
	// several times what the queue accounts for.
	slabs sync.Pool
}

type job struct {
	id        string
	next      int64     // next index to fetch
	announced time.Time // announcing event's time
	notBefore time.Time
	retrying  bool // waiting after a failure (not counted as pending work)
	endWait   bool // waiting for a session.upload (not counted either)
	byEnd     bool // announced by session.end only, so far
	running   bool
	attempts  int // failures other than NotFound and Unimplemented in a row
	missing   int // NotFound answers in a row
	unimpl    int // Unimplemented answers in a row
	idx       int // position in the schedule heap; -1 when not in it
}

// schedule is a min-heap of the jobs not running, earliest notBefore first,
// so a wake-up costs O(log n) whatever the number of known sessions.
type schedule []*job

func (h schedule) Len() int           { return len(h) }
func (h schedule) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h schedule) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *schedule) Push(x any) {
	j := x.(*job)
	j.idx = len(*h)
	*h = append(*h, j)
}
func (h *schedule) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.idx = -1
	return j
}

func (s *SessionSource) init() {
	s.once.Do(func() {
		s.skip = set(s.Skip)
		s.jobs = make(map[string]*job)
		s.finished = make(map[string]bool)
		s.wake = make(chan struct{}, 1)
		if s.Concurrency < 1 {
			s.Concurrency = 1
		}
		if s.MaxAttempts < 1 {
			s.MaxAttempts = 1
		}
	})
}

// Add schedules the recording of session id from its durable progress. For
// a session already known it only ends the wait of one announced by
// session.end, now taken over by session.upload. It can be called before Run.
func (s *SessionSource) Add(id string, ss cursor.Session) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished[id] {
		return
	}
	if j, ok := s.jobs[id]; ok {
		if j.byEnd && !ss.ByEnd {
			j.byEnd = false
			if j.endWait {
				j.endWait = false
				s.endWaiting--
			}
			if !j.running && !j.retrying && j.idx >= 0 {
				j.notBefore = time.Time{}
				heap.Fix(&s.sched, j.idx)
				s.signal()
			}
		}
		return
	}
	j := &job{id: id, next: ss.Next, announced: ss.Announced, byEnd: ss.ByEnd, idx: -1}
	if ss.ByEnd && ss.Next == 0 {
		wait := s.EndWait
		if ss.AwaitUpload {
			wait = max(wait, s.EndWithoutUpload)
		}
		j.notBefore = s.Now().Add(wait)
		j.endWait = true
		s.endWaiting++
	}
	s.jobs[id] = j
	heap.Push(&s.sched, j)
	s.signal()
}

// Forget drops what Add remembers of a finished session, once its end is
// committed (the state no longer lists it).
func (s *SessionSource) Forget(id string) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.finished, id)
}

// Busy is the number of recordings with work to do now: Pending's active,
// less those announced by session.end that wait for their session.upload.
// Audit hand-over waits on this number, so that it never waits for the
// audit events it needs.
func (s *SessionSource) Busy() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs) - s.retrying - s.endWaiting
}

// InFlight is the number of recordings being streamed.
func (s *SessionSource) InFlight() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Pending tells how many sessions are known, and how many of them have work
// to do now (running, or due), as opposed to waiting for a retry or for the
// session.upload of a session.end.
func (s *SessionSource) Pending() (known, active int) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs), len(s.jobs) - s.retrying - s.endWaiting
}

func (s *SessionSource) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run starts due sessions until ctx ends, then waits for its workers.
func (s *SessionSource) Run(ctx context.Context, sink Sink) error {
	s.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.Now()
		next := now.Add(time.Hour)
		s.mu.Lock()
		for s.running < s.Concurrency && len(s.sched) > 0 && !s.sched[0].notBefore.After(now) {
			j := heap.Pop(&s.sched).(*job)
			if j.retrying {
				s.retrying--
			}
			if j.endWait {
				s.endWaiting--
			}
			j.running, j.retrying, j.endWait = true, false, false
			s.running++
			wg.Add(1)
			go func(j *job) {
				defer wg.Done()
				s.work(ctx, j, sink)
			}(j)
		}
		if len(s.sched) > 0 && s.running < s.Concurrency {
			next = s.sched[0].notBefore
		}
		s.mu.Unlock()
		timer.Reset(max(next.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// work streams one recording from j.next to its end, or until it fails.
func (s *SessionSource) work(ctx context.Context, j *job, sink Sink) {
	sctx, cancel := context.WithCancel(ctx)
	got, done, err := s.stream(sctx, j, sink)
	cancel() // ends the client's stream goroutine

	s.mu.Lock()
	defer func() {
		j.running = false
		s.running--
		if _, known := s.jobs[j.id]; known {
			if j.retrying {
				s.retrying++
			}
			heap.Push(&s.sched, j)
		}
		s.mu.Unlock()
		s.signal()
	}()
	if ctx.Err() != nil && !done {
		return // stopping: the session stays in the state for the next run
	}
	if done {
		s.unimplWarned = false
		delete(s.jobs, j.id)
		s.finished[j.id] = true
		s.Log.Debugf("session %s: recording exported (%d events in this run)", j.id, j.next)
		return
	}
	now := s.Now()
	if got > 0 {
		j.attempts, j.missing, j.unimpl = 0, 0, 0
	}
	if isNotFound(err) {
		j.missing++
		if now.Sub(j.announced) > s.GiveUpAfter {
			s.giveUpLocked(ctx, j, sink, "the recording is still missing %s after the event that announced it (session_give_up_after %s)",
				now.Sub(j.announced).Round(time.Second), s.GiveUpAfter)
			return
		}
		wait := min(backoffWaitUpTo(s.RetryInterval, j.missing, MissingRetryWait(s.GiveUpAfter)),
			// The last try is at the give-up time, not a cap later.
			max(j.announced.Add(s.GiveUpAfter).Sub(now)+time.Second, s.RetryInterval))
		s.Log.Debugf("session %s: recording not uploaded yet, next try in %s", j.id, wait)
		j.notBefore, j.retrying = now.Add(wait), true
		return
	}
	if IsNotImplemented(err) {
		// The server's doing, not the recording's: legacy.go has switched
		// RPCs where it could, so this server lacks both. It is never
		// given up for it; a later try may find an upgraded server.
		j.unimpl++
		wait := backoffWait(s.RetryInterval, j.unimpl)
		if !s.unimplWarned {
			s.unimplWarned = true
			s.Log.Warnf("session %s: cannot read recordings, retrying in %s (recordings wait, none is given up for this): %s", j.id, wait, logging.OneLine(err.Error()))
		}
		j.notBefore, j.retrying = now.Add(wait), true
		return
	}
	s.Metrics.Error(metrics.ErrSession)
	j.attempts++
	if j.attempts >= s.MaxAttempts {
		s.giveUpLocked(ctx, j, sink, "exporting the recording failed %d times (session_max_attempts), last: %s", j.attempts, logging.OneLine(err.Error()))
		return
	}
	wait := backoffWait(s.RetryInterval, j.attempts)
	s.Log.Warnf("session %s: exporting the recording failed (attempt %d of %d), retrying in %s: %s", j.id, j.attempts, s.MaxAttempts, wait, logging.OneLine(err.Error()))
	j.notBefore, j.retrying = now.Add(wait), true
}

// giveUpLocked drops a session with one warning naming it; once the
// warning's position is handed over, the state moves it from the sessions
// in progress to the given-up ones (cursor show lists them, export
// --session re-sends one).
func (s *SessionSource) giveUpLocked(ctx context.Context, j *job, sink Sink, format string, args ...any) {
	reason := fmt.Sprintf(format, args...)
	s.Log.Warnf("session %s: giving up on its recording: %s; `teleport-fluent-bit export --session %s` exports it once it can be read", j.id, reason, j.id)
	s.Metrics.SessionGivenUp()
	delete(s.jobs, j.id)
	s.finished[j.id] = true
	s.mu.Unlock()
	_ = sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosSessionDone, ID: j.id,
		GivenUp: &cursor.GivenUp{Reason: reason, At: s.Now().UTC(), Next: j.next}}})
	s.mu.Lock()
}

// stream fetches events from j.next on; done is true once the recording
// ended and its end was queued.
func (s *SessionSource) stream(ctx context.Context, j *job, sink Sink) (got int, done bool, err error) {
	from := j.next
	var recent [64]int64 // indices seen lately in this stream, to drop repeats
	for i := range recent {
		recent[i] = -1
	}
	seen := func(idx int64) bool {
		for _, r := range recent {
			if r == idx {
				return true
			}
		}
		recent[idx%int64(len(recent))] = idx
		return false
	}
	sl, _ := s.slabs.Get().(*slab)
	if sl == nil {
		sl = &slab{}
	}
	defer s.slabs.Put(sl)
	recv := s.openFallback(ctx, j.id, from, sl)
	skipped := 0
	for {
		idx, it, err := recv()
		if errors.Is(err, io.EOF) {
			if err := sink.Put(ctx, record.Item{Pos: cursor.Pos{Kind: cursor.PosSessionDone, ID: j.id}}); err != nil {
				return got, false, err
			}
			return got, true, nil
		}
		if err != nil {
			return got, false, err
		}
		if idx < from || seen(idx) {
			continue // a server that resends what we asked to skip, or repeats itself
		}
		// An event out of index order is exported too, but the resume
		// point never moves back.
		next := max(j.next, idx+1)
		got++
		if it.Data == nil {
			// Skipped (skip_session_types: most of a recording's events
			// are print events). Its position alone is queued only now and
			// then: the next record, or the recording's end, carries it;
			// after a restart at most skippedPositionEvery are read again.
			skipped++
			if skipped < skippedPositionEvery {
				j.next = next
				continue
			}
		}
		skipped = 0
		it.Pos = cursor.Pos{Kind: cursor.PosSession, ID: j.id, Index: next}
		if err := sink.Put(ctx, it); err != nil {
			return got, false, err
		}
		j.next = next
	}
}

// skippedPositionEvery is how many skipped recording events in a row go by
// before their position is queued on its own.
const skippedPositionEvery = 1024

func (s *SessionSource) encode(ev *auditlogpb.EventUnstructured, sid string) record.Item {
	body := ev.GetUnstructured()
	typ := ev.GetType()
	if typ == "" {
		typ = body.GetFields()["event"].GetStringValue()
	}
	if s.skip[typ] {
		return record.Item{}
	}
	t, ok := record.Time(ev.GetTime().AsTime(), body)
	if !ok {
		t = time.Now()
	}
	return record.Item{Data: record.AppendRecording(make([]byte, 0, 256), t, body, sid), Time: t}
}

func isNotFound(err error) bool {
	return err != nil && (trace.IsNotFound(err) || status.Code(trace.Unwrap(err)) == codes.NotFound)
}

// backoffWait doubles base for every failure in a row, up to maxRetryWait.
func backoffWait(base time.Duration, n int) time.Duration {
	return backoffWaitUpTo(base, n, maxRetryWait)
}

// backoffWaitUpTo doubles base for every failure in a row, up to limit.
func backoffWaitUpTo(base time.Duration, n int, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
