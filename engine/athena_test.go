package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// athenaLike is a scripted server with the faults of Teleport's Athena
// backend: chunks that fail for good (NotFound after listing, a refused
// cursor).
type athenaLike struct {
	*scripted
	fail map[string]codes.Code
}

func (a *athenaLike) ExportUnstructuredEvents(ctx context.Context, req *auditlogpb.ExportUnstructuredEventsRequest) stream.Stream[*auditlogpb.ExportEventUnstructured] {
	a.smu.Lock()
	code, ok := a.fail[req.Chunk]
	a.smu.Unlock()
	if ok {
		return stream.Fail[*auditlogpb.ExportEventUnstructured](status.Errorf(code, "event chunk %q not found", req.Chunk))
	}
	return a.scripted.ExportUnstructuredEvents(ctx, req)
}

// chunkOf is n login events of day at t, uids prefix-0..n-1.
func chunkOf(prefix string, t time.Time, n int) (evs []*auditlogpb.ExportEventUnstructured, uids []string) {
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("%s-%d", prefix, i)
		evs = append(evs, ev(fmt.Sprintf("a1:%d", i+1), "user.login", u, t.Add(time.Duration(i)*time.Second), nil))
		uids = append(uids, u)
	}
	return evs, uids
}

func exactly(t *testing.T, want, got []string) {
	t.Helper()
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		assert.Equal(t, 1, seen[w], "event %s handed over once", w)
	}
	assert.Len(t, got, len(want))
}

// A chunk written days late for an old day (Athena: SQS redelivery or a
// dead-letter redrive) is exported once: the day stays open within
// export_late_horizon and its list is read again.
func TestLateChunksOfOldDays(t *testing.T) {
	h := newHarness(t)
	h.cfg.ExportLateHorizon = 15 * 24 * time.Hour
	h.cfg.ExportLatePollMax = 50 * time.Millisecond
	s := newScripted()
	old := h.now.Add(-3 * 24 * time.Hour)
	day := old.Format(cursor.DayLayout)
	first, want := chunkOf("first", old, 30)
	s.chunk(day, "c1", first...)
	e := h.startAthena(&athenaLike{scripted: s})
	got := drain(t, e, len(want), true)
	exactly(t, want, got)

	late, lateUIDs := chunkOf("late", old.Add(time.Hour), 20)
	s.chunk(day, "c2-late", late...)
	got = append(got, drain(t, e, len(want)+len(lateUIDs), true)...)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	exactly(t, append(want, lateUIDs...), got)

	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	require.Contains(t, st.Export.Days, day, "the day stays open within the horizon")
	assert.True(t, st.Export.Days[day].DoneSet.Has("c2-late"))

	// Past the horizon the day is closed.
	h.cfg.ExportLateHorizon = 2 * 24 * time.Hour
	e = h.startAthena(&athenaLike{scripted: s})
	assert.Empty(t, drainFor(t, e, 300*time.Millisecond), "nothing again")
	require.NoError(t, shutdown(e))
	st, err = cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.NotContains(t, st.Export.Days, day)
	assert.Greater(t, st.Export.NextDay, day)
}

// A chunk that fails for good (removed after listing: NotFound; a refused
// cursor: InvalidArgument) is set aside after export_chunk_max_attempts,
// logged at error with the chunk, the day and why, and listed in the
// state; the rest of the day and later days are exported.
func TestChunkFailingForGoodIsSetAside(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.InvalidArgument} {
		t.Run(code.String(), func(t *testing.T) {
			h := newHarness(t)
			h.cfg.ExportChunkMaxAttempts = 2
			s := newScripted()
			d1 := h.now.Add(-30 * time.Hour)
			a, wantA := chunkOf("a", d1, 10)
			gone, _ := chunkOf("gone", d1, 10)
			b, wantB := chunkOf("b", h.now.Add(-time.Hour), 10)
			s.chunk(d1.Format(cursor.DayLayout), "a", a...)
			s.chunk(d1.Format(cursor.DayLayout), "gone", gone...)
			s.chunk(h.now.Format(cursor.DayLayout), "b", b...)
			e := h.startAthena(&athenaLike{scripted: s, fail: map[string]codes.Code{"gone": code}})
			want := append(wantA, wantB...)
			got := drain(t, e, len(want), true)
			got = append(got, drainFor(t, e, 3*time.Second)...)
			require.NoError(t, shutdown(e))
			exactly(t, want, got)
			log := h.log.String()
			assert.Contains(t, log, "[error] [input:teleport] day "+d1.Format(cursor.DayLayout)+": setting chunk gone aside: failed 2 times in a row")
			assert.Contains(t, log, "export --chunk "+d1.Format(cursor.DayLayout)+"/gone")
			st, err := cursor.Peek(h.cfg.StorageDir)
			require.NoError(t, err)
			require.Len(t, st.SetAside, 1)
			assert.Equal(t, "gone", st.SetAside[0].Chunk)
			assert.Equal(t, d1.Format(cursor.DayLayout), st.SetAside[0].Day)
			assert.Contains(t, st.SetAside[0].Reason, map[codes.Code]string{codes.NotFound: "NotFound", codes.InvalidArgument: "BadParameter"}[code])
		})
	}
}

// Events the server stored twice (in two chunks) are handed over once,
// also when the second copy is read after a graceful restart.
func TestEventsStoredTwiceHandedOverOnce(t *testing.T) {
	h := newHarness(t)
	s := newScripted()
	day := h.now.Format(cursor.DayLayout)
	c1, want := chunkOf("e", h.now.Add(-2*time.Hour), 40)
	s.chunk(day, "c1", c1...)
	// c2 repeats every other event of c1, in another order, plus its own.
	var c2 []*auditlogpb.ExportEventUnstructured
	for i := len(c1) - 1; i >= 0; i -= 2 {
		c2 = append(c2, ev(fmt.Sprintf("a1:%d", len(c2)+1), "user.login", c1[i].Event.Id, c1[i].Event.Time.AsTime(), nil))
	}
	own, ownUIDs := chunkOf("own", h.now.Add(-time.Hour), 5)
	for _, x := range own {
		c2 = append(c2, ev(fmt.Sprintf("a1:%d", len(c2)+1), "user.login", x.Event.Id, x.Event.Time.AsTime(), nil))
	}
	s.chunk(day, "c2", c2...)
	want = append(want, ownUIDs...)
	e := h.startAthena(&athenaLike{scripted: s})
	got := drain(t, e, len(want), true)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	exactly(t, want, got)

	// After a graceful restart, a third chunk repeats events again.
	var c3 []*auditlogpb.ExportEventUnstructured
	for i := 0; i < len(c1); i += 3 {
		c3 = append(c3, ev(fmt.Sprintf("a1:%d", len(c3)+1), "user.login", c1[i].Event.Id, c1[i].Event.Time.AsTime(), nil))
	}
	s.chunk(day, "c3", c3...)
	e = h.startAthena(&athenaLike{scripted: s})
	again := drainFor(t, e, 500*time.Millisecond)
	require.NoError(t, shutdown(e))
	assert.Empty(t, again, "copies read after a restart are dropped too")
	assert.False(t, strings.Contains(h.log.String(), "[error]"), h.log.String())
}

func (h *harness) startAthena(a *athenaLike) *Engine {
	return h.start(func(o *Options) { o.Connect = func(context.Context) (Conn, error) { return a, nil } })
}

// The memory file holds only the events committed: a stop while a
// callback Fluent Bit took is not durable yet saves the ids of the
// callbacks before it and none of its own, so the next run, which reads
// that callback's events again, hands each over once (not dropped as seen),
// although another chunk repeats them all.
func TestMemoryFileHoldsOnlyCommittedEvents(t *testing.T) {
	h := newHarness(t)
	h.cfg.CommitDelay = time.Hour
	h.cfg.CallbackBytes = 4 << 10
	s := newScripted()
	day := h.now.Format(cursor.DayLayout)
	c1, all := chunkOf("e", h.now.Add(-2*time.Hour), 200)
	s.chunk(day, "c1", c1...)
	var skew atomic.Int64 // the commit delay passes when the test says
	e := h.start(func(o *Options) {
		o.Connect = func(context.Context) (Conn, error) { return &athenaLike{scripted: s}, nil }
		o.Now = func() time.Time { return h.now.Add(time.Since(h.born) + time.Duration(skew.Load())) }
	})
	committed := handOne(t, e)
	skew.Store(int64(2 * time.Hour))
	taken := handOne(t, e) // commits the first callback, is not durable itself
	require.NoError(t, e.Stop())
	require.FileExists(t, filepath.Join(h.cfg.StorageDir, "memory.bin"))
	assert.NotContains(t, committed, taken[0])

	var c2 []*auditlogpb.ExportEventUnstructured
	for i, x := range c1 {
		c2 = append(c2, ev(fmt.Sprintf("a1:%d", i+1), "user.login", x.Event.Id, x.Event.Time.AsTime(), nil))
	}
	s.chunk(day, "c2", c2...)
	h.cfg.CommitDelay = 20 * time.Millisecond
	var want []string
	for _, u := range all {
		if !slices.Contains(committed, u) {
			want = append(want, u)
		}
	}
	e = h.startAthena(&athenaLike{scripted: s})
	got := drain(t, e, len(want), true)
	got = append(got, drainFor(t, e, 200*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	exactly(t, want, got)
}
