package teleport

import (
	"context"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// countingRecordings serves one empty recording per session and counts the
// streams opened.
type countingRecordings struct {
	mu      sync.Mutex
	streams map[string]int
}

func (c *countingRecordings) StreamUnstructuredSessionEvents(ctx context.Context, sid string, _ int64) (chan *auditlogpb.EventUnstructured, chan error) {
	c.mu.Lock()
	c.streams[sid]++
	c.mu.Unlock()
	ch := make(chan *auditlogpb.EventUnstructured)
	close(ch)
	return ch, make(chan error, 1)
}

func (c *countingRecordings) count(sid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[sid]
}

// A session exported while the state still lists it (its end not committed
// yet) is not exported again when announced again, e.g. by the
// session.upload that follows its session.end; once its end is committed
// (Forget), a new announcement is a new recording.
func TestFinishedSessionIsNotExportedAgainUntilForgotten(t *testing.T) {
	api := &countingRecordings{streams: map[string]int{}}
	s := &SessionSource{API: api, Concurrency: 2, Log: quiet, Now: time.Now, MaxAttempts: 1, GiveUpAfter: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &collect{}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, sink) }()

	finished := func(n int) func() bool {
		return func() bool {
			sink.mu.Lock()
			defer sink.mu.Unlock()
			ends := 0
			for _, it := range sink.items {
				if it.Pos.Kind == cursor.PosSessionDone && it.Pos.ID == "s-1" {
					ends++
				}
			}
			return ends == n
		}
	}
	s.Add("s-1", cursor.Session{Announced: time.Now()})
	require.Eventually(t, finished(1), 5*time.Second, time.Millisecond)
	s.Add("s-1", cursor.Session{Announced: time.Now()})
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 1, api.count("s-1"), "exported once while its end is not committed")
	known, _ := s.Pending()
	assert.Zero(t, known)

	s.Forget("s-1")
	s.Add("s-1", cursor.Session{Announced: time.Now()})
	require.Eventually(t, finished(2), 5*time.Second, time.Millisecond)
	assert.Equal(t, 2, api.count("s-1"))
	cancel()
	<-done
}

// missingRecordings answers NotFound for every recording and counts the
// calls: each is a session.recording.access event in the cluster.
type missingRecordings struct{ countingRecordings }

func (m *missingRecordings) StreamUnstructuredSessionEvents(ctx context.Context, sid string, _ int64) (chan *auditlogpb.EventUnstructured, chan error) {
	m.mu.Lock()
	m.streams[sid]++
	m.mu.Unlock()
	ch := make(chan *auditlogpb.EventUnstructured) // never closed: the error ends it
	errc := make(chan error, 1)
	errc <- trace.NotFound("session %q not found", sid)
	return ch, errc
}

// A recording missing until it is given up is asked for at most
// MaxMissingTries times (each ask costs the cluster a
// session.recording.access audit event), and at least until the give-up.
func TestMissingRecordingTriesStayFew(t *testing.T) {
	const retry, giveUp = 20 * time.Millisecond, 3 * time.Second
	api := &missingRecordings{countingRecordings{streams: map[string]int{}}}
	s := &SessionSource{API: api, Concurrency: 1, Log: quiet, Now: time.Now, MaxAttempts: 1, GiveUpAfter: giveUp, RetryInterval: retry}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &collect{}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, sink) }()
	t0 := time.Now()
	s.Add("s-missing", cursor.Session{Announced: t0})
	require.Eventually(t, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, it := range sink.items {
			if it.Pos.Kind == cursor.PosSessionDone && it.Pos.GivenUp != nil {
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	assert.GreaterOrEqual(t, time.Since(t0), giveUp, "given up only after session_give_up_after")
	n := api.count("s-missing")
	assert.LessOrEqual(t, n, MaxMissingTries(retry, giveUp))
	assert.GreaterOrEqual(t, n, 5, "retried meanwhile")
	// With the defaults (10 s, 48 h): waits double to 6 h.
	assert.Equal(t, 6*time.Hour, MissingRetryWait(48*time.Hour))
	assert.LessOrEqual(t, MaxMissingTries(10*time.Second, 48*time.Hour), 25)
}
