package engine

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

func item(i, size int) record.Item {
	return record.Item{Data: make([]byte, size), Pos: cursor.Pos{Kind: cursor.PosChunk, Cursor: strconv.Itoa(i)}}
}

// FIFO order, byte accounting and the budget rules, across many blocks and
// with the queue emptied and refilled.
func TestQueueOrderAcrossBlocks(t *testing.T) {
	q := NewQueue(1<<30, nil)
	ctx := context.Background()
	next, want := 0, 0
	for round := 0; round < 5; round++ {
		n := blockItems*3 + 17*round
		for i := 0; i < n; i++ {
			require.NoError(t, q.Put(ctx, item(next, 10)))
			next++
		}
		assert.Equal(t, n, q.Len())
		assert.Equal(t, n*(10+itemOverhead), q.Bytes())
		var got []record.Item
		for q.Len() > 0 {
			got = q.Take(got[:0], 10*100+5) // 100 items per take
			assert.LessOrEqual(t, len(got), 100)
			for _, it := range got {
				require.Equal(t, strconv.Itoa(want), it.Pos.Cursor)
				want++
			}
		}
		assert.Equal(t, 0, q.Bytes())
		assert.Empty(t, q.TakeUpTo(nil, 1000))
	}
	assert.Equal(t, next, want)

	// Take gives at least one item, TakeUpTo none that does not fit.
	require.NoError(t, q.Put(ctx, item(0, 500)))
	assert.Empty(t, q.TakeUpTo(nil, 100))
	assert.Len(t, q.Take(nil, 100), 1)
}

// Put blocks while the queue is full and resumes when a Take makes room; an
// item larger than the bound gets in when the queue is empty.
func TestQueueBackPressure(t *testing.T) {
	q := NewQueue(4*(100+itemOverhead), nil)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		require.NoError(t, q.Put(ctx, item(i, 100)))
	}
	put := make(chan error, 1)
	go func() { put <- q.Put(ctx, item(4, 100)) }()
	select {
	case <-put:
		t.Fatal("Put did not block on a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	assert.Len(t, q.Take(nil, 100), 1)
	require.NoError(t, <-put)

	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	assert.ErrorIs(t, q.Put(cctx, item(5, 100)), context.Canceled)

	q.Take(nil, 1<<20)
	require.NoError(t, q.Put(ctx, item(6, 1<<20)), "an oversized item gets into an empty queue")
}

// BenchmarkQueuePutTake is the queue's cost per record: five producers (the
// export's concurrency) and one consumer taking 8 MiB at a time.
func BenchmarkQueuePutTake(b *testing.B) {
	q := NewQueue(32<<20, nil)
	ctx := context.Background()
	data := make([]byte, 330) // a typical record
	const producers = 5
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / producers
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				_ = q.Put(ctx, record.Item{Data: data, Pos: cursor.Pos{Kind: cursor.PosChunk, Cursor: "c"}})
			}
		}()
	}
	var dst []record.Item
	got := 0
	for got < per*producers {
		dst = q.Take(dst[:0], 8<<20)
		got += len(dst)
		if len(dst) == 0 {
			time.Sleep(10 * time.Microsecond)
		}
	}
	wg.Wait()
}

// A held queue takes an eighth of its bound; releasing it lets the
// waiting producer in without a Take.
func TestQueueHoldLowersTheBound(t *testing.T) {
	per := 100 + itemOverhead
	q := NewQueue(16*per, nil)
	ctx := context.Background()
	q.Hold(true)
	for i := 0; i < 2; i++ {
		require.NoError(t, q.Put(ctx, item(i, 100)))
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, q.Put(short, item(2, 100)), context.DeadlineExceeded, "held: full at 2 of 16")

	done := make(chan error, 1)
	go func() { done <- q.Put(ctx, item(2, 100)) }()
	q.Hold(false)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the producer still waits after the hold ended")
	}
	for i := 3; i < 16; i++ {
		require.NoError(t, q.Put(ctx, item(i, 100)), "the whole bound again")
	}
	assert.Equal(t, 16, q.Len())
}
