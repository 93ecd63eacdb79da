package engine

import (
	"context"
	"sync"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// itemOverhead is what a queued item costs beyond its data (the Item itself
// and its cursor strings), so that position-only items count too.
const itemOverhead = 256

// maxItems bounds the number of queued items (and so the ring's size) when
// they are mostly small, e.g. a long run of filtered events.
const maxItems = 1 << 16

// Queue is the bounded FIFO between the sources and Fluent Bit's callbacks.
// Put blocks while the queue holds maxBytes; that back-pressure is what keeps
// memory flat however large the backlog.
type Queue struct {
	mu       sync.Mutex
	notFull  chan struct{} // closed and replaced whenever room is made
	items    []record.Item // ring buffer
	head, n  int
	bytes    int
	maxBytes int
}

// NewQueue returns a queue bounded to maxBytes of queued data.
func NewQueue(maxBytes int) *Queue {
	return &Queue{maxBytes: maxBytes, notFull: make(chan struct{}), items: make([]record.Item, 1024)}
}

func size(it *record.Item) int { return len(it.Data) + itemOverhead }

// Put appends it, waiting for room; a single item larger than the bound is
// let in when the queue is empty, so an oversized event never stalls.
func (q *Queue) Put(ctx context.Context, it record.Item) error {
	sz := size(&it)
	for {
		q.mu.Lock()
		if q.n == 0 || (q.bytes+sz <= q.maxBytes && q.n < maxItems) {
			q.push(it)
			q.bytes += sz
			q.mu.Unlock()
			return nil
		}
		wait := q.notFull
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (q *Queue) push(it record.Item) {
	if q.n == len(q.items) {
		grown := make([]record.Item, 2*len(q.items))
		for i := 0; i < q.n; i++ {
			grown[i] = q.items[(q.head+i)%len(q.items)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.n)%len(q.items)] = it
	q.n++
}

// Take moves items into dst, in order, while their data fits in budget bytes
// (at least one item, whatever its size). It never blocks.
func (q *Queue) Take(dst []record.Item, budget int) []record.Item {
	return q.take(dst, budget, false)
}

// TakeUpTo is Take without the "at least one item" rule.
func (q *Queue) TakeUpTo(dst []record.Item, budget int) []record.Item {
	return q.take(dst, budget, true)
}

func (q *Queue) take(dst []record.Item, budget int, strict bool) []record.Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	used, took, moved := 0, strict, false
	for q.n > 0 {
		it := &q.items[q.head]
		if took && used+len(it.Data) > budget {
			break
		}
		used += len(it.Data)
		took = true
		moved = true
		q.bytes -= size(it)
		dst = append(dst, *it)
		*it = record.Item{}
		q.head = (q.head + 1) % len(q.items)
		q.n--
	}
	if moved {
		close(q.notFull)
		q.notFull = make(chan struct{})
	}
	return dst
}

// Len is the number of queued items.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Bytes is the accounted size of the queued items.
func (q *Queue) Bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
