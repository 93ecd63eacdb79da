package teleport

import (
	"hash/fnv"
	"sync"
)

// DefaultDedupeEvents is how many recent audit events the bulk export
// remembers to drop a second copy of: Athena's consumer reads SQS at least
// once, so an event whose batch was written but not acknowledged (a failed
// delete, a visibility timeout, a lock failover) is written again in a
// later chunk of the same date, usually within a few batches (minutes).
// Each remembered event costs about 16 bytes (HashSet).
const DefaultDedupeEvents = 100_000

// HashRing keeps the last Max hashes added (a Max of 0 keeps
// DefaultDedupeEvents), oldest overwritten first.
type HashRing struct {
	Max  int
	buf  []uint64
	next int
}

// Push adds h; when the ring was full it returns the hash h replaced.
func (r *HashRing) Push(h uint64) (evicted uint64, full bool) {
	max := r.Max
	if max <= 0 {
		max = DefaultDedupeEvents
	}
	if len(r.buf) < max {
		r.buf = append(r.buf, h)
		return 0, false
	}
	evicted = r.buf[r.next]
	r.buf[r.next] = h
	r.next = (r.next + 1) % max
	return evicted, true
}

// List returns the hashes kept, oldest first.
func (r *HashRing) List() []uint64 {
	out := make([]uint64, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Len is how many hashes are kept.
func (r *HashRing) Len() int { return len(r.buf) }

// Dedupe remembers the hashes of the last Max events handed over (or
// queued to be). Safe for concurrent use.
type Dedupe struct {
	Max int

	mu  sync.Mutex
	set HashSet
}

// EventHash is the hash Dedupe keeps for an event id (never 0: 0 means
// "no id").
func EventHash(id []byte) uint64 {
	if len(id) == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write(id)
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}

// Seen adds h and reports whether it was there already.
func (d *Dedupe) Seen(h uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set.Max = d.Max
	_, added := d.set.Add(h)
	return !added
}

// Add remembers hs (a previous run's), oldest first.
func (d *Dedupe) Add(hs []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set.Max = d.Max
	for _, h := range hs {
		d.set.Add(h)
	}
}

// Recent returns the hashes remembered, oldest first.
func (d *Dedupe) Recent() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set.List()
}

// Len is how many hashes are remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set.Len()
}
