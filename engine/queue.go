package engine

import (
	"context"
	"sync"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// itemOverhead is what a queued item costs beyond its data (the Item itself
// and its cursor strings), so that position-only items count too. It also
// bounds the number of queued items: at most maxBytes/itemOverhead.
const itemOverhead = 256

// blockItems is the number of items per block of the queue's storage.
const blockItems = 512

// maxSpare is the number of emptied blocks kept for reuse (~1.7 MB): a
// callback's take frees many blocks at once, which producers then refill.
const maxSpare = 16

// block is a piece of the queue's storage: the queue is a list of blocks, so
// that its memory follows what it holds (a ring that doubles keeps its
// largest size forever), and no item is ever moved once queued.
type block struct {
	items [blockItems]record.Item
	next  *block
}

// Queue is the bounded FIFO between the sources and Fluent Bit's callbacks.
// Put blocks while the queue holds maxBytes; that back-pressure is what keeps
// memory flat however large the backlog.
type Queue struct {
	mu       sync.Mutex
	notFull  chan struct{} // closed and replaced whenever room is made
	head     *block        // oldest items, from hi on
	tail     *block        // newest items, up to ti
	hi, ti   int
	spare    *block // emptied blocks kept for reuse (a list, up to maxSpare)
	nspare   int
	n        int
	bytes    int
	maxBytes int
	// held lowers the bound to maxBytes/heldShare while the engine holds
	// this queue's records back: what it would queue then only waits, on
	// the Go heap.
	held  bool
	onPut func() // called after every Put, outside the lock (nil: none)
}

// heldShare is the part of its bound a held queue fills (Hold).
const heldShare = 8

// NewQueue returns a queue bounded to maxBytes of queued data; onPut, if
// not nil, is called after every Put (it must not block).
func NewQueue(maxBytes int, onPut func()) *Queue {
	b := &block{}
	return &Queue{maxBytes: maxBytes, notFull: make(chan struct{}), head: b, tail: b, onPut: onPut}
}

func size(it *record.Item) int { return len(it.Data) + itemOverhead }

// Put appends it, waiting for room; a single item larger than the bound is
// let in when the queue is empty, so an oversized event never stalls.
func (q *Queue) Put(ctx context.Context, it record.Item) error {
	sz := size(&it)
	for {
		q.mu.Lock()
		if q.n == 0 || q.bytes+sz <= q.boundLocked() {
			q.push(&it)
			q.bytes += sz
			q.mu.Unlock()
			if q.onPut != nil {
				q.onPut()
			}
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

func (q *Queue) boundLocked() int {
	if q.held {
		return q.maxBytes / heldShare
	}
	return q.maxBytes
}

// Hold lowers the queue's bound while on (to an eighth): the engine holds
// these records back (too many recordings in progress), so producers wait
// with less queued. Off restores the bound and wakes them.
func (q *Queue) Hold(on bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held == on {
		return
	}
	q.held = on
	if !on {
		close(q.notFull)
		q.notFull = make(chan struct{})
	}
}

func (q *Queue) push(it *record.Item) {
	if q.ti == blockItems {
		b := q.spare
		if b != nil {
			q.spare, b.next = b.next, nil
			q.nspare--
		} else {
			b = &block{}
		}
		q.tail.next = b
		q.tail, q.ti = b, 0
	}
	q.tail.items[q.ti] = *it
	q.ti++
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
		if q.hi == blockItems {
			// The head block is used up: move to the next one.
			b := q.head
			q.head, q.hi = b.next, 0
			b.next = nil
			if q.nspare < maxSpare {
				b.next, q.spare = q.spare, b
				q.nspare++
			}
		}
		it := &q.head.items[q.hi]
		if took && used+len(it.Data) > budget {
			break
		}
		used += len(it.Data)
		took = true
		moved = true
		q.bytes -= size(it)
		dst = append(dst, *it)
		*it = record.Item{}
		q.hi++
		q.n--
	}
	if q.n == 0 && q.head == q.tail {
		q.hi, q.ti = 0, 0 // start the only block over
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
