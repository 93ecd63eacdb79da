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
// Each remembered event costs 8 bytes in a ring and about 40 in a map.
const DefaultDedupeEvents = 100_000

// Dedupe remembers the hashes of the last Max events handed over (or
// queued to be). Safe for concurrent use.
type Dedupe struct {
	Max int

	mu   sync.Mutex
	ring []uint64
	next int
	set  map[uint64]struct{}
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
	if _, ok := d.set[h]; ok {
		return true
	}
	d.addLocked(h)
	return false
}

// Add remembers hs (a previous run's), oldest first.
func (d *Dedupe) Add(hs []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range hs {
		if _, ok := d.set[h]; !ok {
			d.addLocked(h)
		}
	}
}

func (d *Dedupe) addLocked(h uint64) {
	max := d.Max
	if max <= 0 {
		max = DefaultDedupeEvents
	}
	if d.set == nil {
		d.set = make(map[uint64]struct{})
	}
	if len(d.ring) < max {
		d.ring = append(d.ring, h)
	} else {
		delete(d.set, d.ring[d.next])
		d.ring[d.next] = h
		d.next = (d.next + 1) % max
	}
	d.set[h] = struct{}{}
}

// Recent returns the hashes remembered, oldest first.
func (d *Dedupe) Recent() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]uint64, 0, len(d.ring))
	out = append(out, d.ring[d.next:]...)
	return append(out, d.ring[:d.next]...)
}

// Len is how many hashes are remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ring)
}
