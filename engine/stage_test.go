package engine

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// Merging a stage's positions commits the same state as applying every
// position in order: chunks of two days fetched at once, recordings, chunk
// and day ends, announcements, in random interleavings.
func TestStageMergedPositionsCommitTheSameState(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		r := rand.New(rand.NewSource(seed))
		t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		// Streams of items, each in its source's order.
		var streams [][]record.Item
		for d := 0; d < 2; d++ {
			day := t0.AddDate(0, 0, d).Format(cursor.DayLayout)
			for c := 0; c < 3; c++ {
				var s []record.Item
				chunk := fmt.Sprintf("c%d", c)
				for i := r.Intn(30); i > 0; i-- {
					it := record.Item{Data: []byte{1}, Time: t0, Pos: cursor.Pos{Kind: cursor.PosChunk, Day: day, Chunk: chunk, Cursor: fmt.Sprint(len(s))}}
					if r.Intn(8) == 0 {
						it.Announce = &cursor.Announce{SessionID: fmt.Sprintf("new-%d-%d-%d", d, c, len(s)), At: t0}
					}
					if r.Intn(6) == 0 {
						it.Data, it.Time = nil, time.Time{} // filtered out: a position alone
					}
					s = append(s, it)
				}
				if r.Intn(4) > 0 {
					s = append(s, record.Item{Pos: cursor.Pos{Kind: cursor.PosChunkDone, Day: day, Chunk: chunk}})
				}
				streams = append(streams, s)
			}
		}
		for k := 0; k < 3; k++ {
			var s []record.Item
			id := fmt.Sprintf("sess-%d", k)
			for i := r.Intn(20); i > 0; i-- {
				s = append(s, record.Item{Data: []byte{2}, Time: t0, Pos: cursor.Pos{Kind: cursor.PosSession, ID: id, Index: int64(len(s) + 1)}})
			}
			if r.Intn(2) == 0 {
				done := record.Item{Pos: cursor.Pos{Kind: cursor.PosSessionDone, ID: id}}
				if r.Intn(3) == 0 {
					done.Pos.GivenUp = &cursor.GivenUp{Reason: "missing", At: t0, Next: int64(len(s) + 1)}
				}
				s = append(s, done)
			}
			streams = append(streams, s)
		}
		// Interleave them like the queue does.
		var all []record.Item
		for left := true; left; {
			left = false
			for i := range streams {
				if len(streams[i]) > 0 && r.Intn(2) == 0 {
					all = append(all, streams[i][0])
					streams[i] = streams[i][1:]
				}
				left = left || len(streams[i]) > 0
			}
		}
		all = append(all, record.Item{Pos: cursor.Pos{Kind: cursor.PosDayDone, Day: t0.Format(cursor.DayLayout)}})

		base := func() *cursor.State {
			st := cursor.New(t0)
			st.Sessions = map[string]*cursor.Session{}
			for k := 0; k < 3; k++ {
				st.Sessions[fmt.Sprintf("sess-%d", k)] = &cursor.Session{Announced: t0}
			}
			return st
		}
		apply := func(st *cursor.State, items []record.Item) string {
			for i := range items {
				if a := items[i].Announce; a != nil {
					st.AnnounceSession(*a)
				}
				if items[i].Pos.Kind != 0 {
					st.Apply(&items[i].Pos)
				}
			}
			b, err := json.Marshal(st)
			require.NoError(t, err)
			return string(b)
		}
		var sg stage
		records := 0
		for i := range all {
			it := all[i]
			if it.Data != nil {
				records++
			}
			sg.add(&it, it.Pos.Kind == cursor.PosSession || it.Pos.Kind == cursor.PosSessionDone)
		}
		want := apply(base(), all)
		// A commit applies the announcements first (the state's sessions
		// here are never announced: their order does not matter).
		merged := make([]record.Item, 0, len(sg.announces)+len(sg.items))
		for i := range sg.announces {
			merged = append(merged, record.Item{Announce: &sg.announces[i]})
		}
		merged = append(merged, sg.items...)
		// and the recordings' progress after the items.
		for _, p := range sg.progress {
			if p.id != "" {
				merged = append(merged, record.Item{Pos: p.pos()})
			}
		}
		got := apply(base(), merged)
		require.Equal(t, want, got, "seed %d", seed)
		assert.LessOrEqual(t, len(sg.items), len(all))
		for k := 0; k < 3; k++ {
			id := fmt.Sprintf("sess-%d", k)
			n := 0
			for i := range sg.items {
				if sg.items[i].Pos.ID == id {
					n++
				}
			}
			for _, p := range sg.progress {
				if p.id == id {
					n++
				}
			}
			assert.LessOrEqual(t, n, 1, "seed %d: a recording's positions and its end are one entry", seed)
		}
		assert.Equal(t, records, sg.count.audit+sg.count.session, "seed %d: every record counted", seed)
		for i := range sg.items {
			assert.Nil(t, sg.items[i].Data, "a staged item keeps no data")
		}
	}
}

// Every buffer the engine allocates is either handed over by a callback or
// freed (at Stop, with records staged while paused). A record larger than
// callback_bytes goes alone in a callback of its own size.
func TestStageBuffersHandedOverOrFreed(t *testing.T) {
	h := newHarness(t)
	h.cfg.CallbackBytes = 4 << 10
	want := h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	big := h.auth.addEvent("user.login", start.Add(time.Hour+90*time.Second), map[string]any{"blob": strings.Repeat("x", 3*h.cfg.CallbackBytes)})
	want = append(want, big)
	var mu sync.Mutex
	live := map[*byte]int{}
	frees := 0
	e := h.start(func(o *Options) {
		o.Alloc = func(n int) []byte {
			b := make([]byte, n)
			mu.Lock()
			defer mu.Unlock()
			live[&b[0]] = n
			return b
		}
		o.Free = func(b []byte) {
			mu.Lock()
			defer mu.Unlock()
			_, ok := live[&b[:1][0]]
			require.True(t, ok, "Free of a buffer not from Alloc")
			delete(live, &b[:1][0])
			frees++
		}
	})
	handed := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		delete(live, &b[0])
	}
	var got []string
	sawBig := false
	// Its chunk is exported beside the other one: it may come first or last.
	for deadline := time.Now().Add(10 * time.Second); (len(got) < 100 || !sawBig) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if b := e.Collect(); len(b) > 0 {
			u := uids(t, b)
			if len(b) > h.cfg.CallbackBytes {
				require.Equal(t, []string{big}, u, "only an oversized record makes a callback larger than callback_bytes")
				sawBig = true
			}
			got = append(got, u...)
			handed(b)
			e.Handed()
		}
	}
	e.Pause()
	want = append(want, h.auth.add(h.now.Add(-time.Hour), time.Second, 50, "user.login")...) // a new chunk of today, found by the next poll
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.stage.n > 0
	}, 5*time.Second, time.Millisecond, "records are staged while paused")
	require.NoError(t, shutdown(e))
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, live, "every buffer handed over or freed")
	assert.Equal(t, 1, frees, "the buffer staged while paused")
	assert.True(t, sawBig, "the oversized record was handed over")
	assert.Subset(t, want, got)
}

// A chunk's positions merge across the recordings its events announce: a
// stage holds the announcements apart and one position, not a run of
// positions for every announcement (the Go heap of a backlog that
// announces a recording every few events).
func TestStageAnnouncementsDoNotSplitPositions(t *testing.T) {
	var sg stage
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		it := record.Item{Data: []byte{1}, Time: t0, Pos: cursor.Pos{Kind: cursor.PosChunk, Day: "2026-11-20", Chunk: "c", Cursor: fmt.Sprint(i)}}
		if i%4 == 0 {
			it.Announce = &cursor.Announce{SessionID: fmt.Sprintf("s%d", i), At: t0}
		}
		sg.add(&it, false)
	}
	require.Len(t, sg.items, 1)
	require.Len(t, sg.announces, 25, "the announcements, apart")
	var positions []string
	for _, it := range sg.items {
		if it.Pos.Kind != cursor.PosNone {
			positions = append(positions, it.Pos.Cursor)
		}
	}
	assert.Equal(t, []string{"99"}, positions, "the chunk's latest position, once")
	assert.Equal(t, 100, sg.count.audit)
}

func TestStageRoomFollowsTheRate(t *testing.T) {
	cases := []struct {
		name   string
		cb     int
		recent [stageRoomHistory]int
		want   int
	}{
		{"callback_bytes below the floor: all of it", 1000 << 10, [stageRoomHistory]int{}, 1000 << 10},
		{"no callback yet: the floor", 64 << 20, [stageRoomHistory]int{}, minStageRoom},
		{"a full callback raises it by half", 64 << 20, [stageRoomHistory]int{minStageRoom}, minStageRoom * 3 / 2},
		{"the largest of the last ones", 64 << 20, [stageRoomHistory]int{1 << 20, 20 << 20, 2 << 20, 0}, 30 << 20},
		{"small callbacks: the floor", 64 << 20, [stageRoomHistory]int{1 << 20, 2 << 20, 0, 3 << 20}, minStageRoom},
		{"never past callback_bytes", 64 << 20, [stageRoomHistory]int{60 << 20}, 64 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.CallbackBytes = c.cb
			e := &Engine{cfg: cfg, recent: c.recent}
			assert.Equal(t, c.want, e.stageRoom())
		})
	}
}

// TestFirstCallbacksOfABacklogGrow: with a large callback_bytes, the first
// callbacks of a backlog carry the floor, then half as much again, not all
// of the first seconds' burst (Fluent Bit's RSS peaks at about three
// callbacks).
func TestFirstCallbacksOfABacklogGrow(t *testing.T) {
	h := newHarness(t)
	h.cfg.CallbackBytes = 64 << 20
	h.cfg.QueueBytes = 64 << 20
	h.auth.add(start, 250*time.Millisecond, 300_000, "role.created") // ~45 MB of records
	e := h.start()
	defer func() { _ = shutdown(e) }()
	var sizes []int
	for len(sizes) < 3 {
		// Let the stage fill up to its room: Fluent Bit calls once a second.
		deadline := time.Now().Add(10 * time.Second)
		for prev := -1; ; {
			time.Sleep(100 * time.Millisecond)
			e.mu.Lock()
			n := e.stage.n
			e.mu.Unlock()
			if n == prev && n > 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the stage stays at %d bytes", n)
			prev = n
		}
		b := e.Collect()
		sizes = append(sizes, len(b))
		uids(t, b) // whole records
		e.Handed()
	}
	assert.LessOrEqual(t, sizes[0], minStageRoom)
	assert.Greater(t, sizes[0], minStageRoom*7/8, "the first callback fills its room")
	assert.LessOrEqual(t, sizes[1], sizes[0]*3/2)
	assert.Greater(t, sizes[1], minStageRoom, "a full callback raises the room")
	assert.LessOrEqual(t, sizes[2], sizes[1]*3/2)
	assert.Greater(t, sizes[2], sizes[1])
}
