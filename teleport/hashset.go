package teleport

// HashSet keeps the last Max hashes added, oldest forgotten first, and
// answers membership in constant time. Its index is an open-addressing
// table of positions in a circular queue (4 bytes a slot, at most half
// full), so a hash costs about 16 bytes where a Go map under steady
// eviction took about 50 (maps grow through their tombstones): at the
// 100,000 hashes the dedupe keeps that is 1.8 MB instead of 5.5, and the
// memory of exported recordings went from 11 MB to under 3.
//
// A HashSet is not safe for concurrent use.
type HashSet struct {
	Max int // a Max of 0 keeps DefaultDedupeEvents

	buf   []uint64 // circular: buf[head], ... the n oldest first
	head  int
	n     int
	slots []int32 // 1 + the position in buf of the hash homed here; 0 = empty
	shift uint
}

func (s *HashSet) init() {
	max := s.Max
	if max <= 0 {
		max = DefaultDedupeEvents
	}
	s.buf = make([]uint64, max)
	size, bits := 1, uint(0)
	for size < 2*max {
		size <<= 1
		bits++
	}
	s.slots = make([]int32, size)
	s.shift = 64 - bits
}

// home is h's first slot (Fibonacci hashing: the table sees every bit of h).
func (s *HashSet) home(h uint64) int { return int((h * 0x9E3779B97F4A7C15) >> s.shift) }

// find is the slot holding h, or the empty slot where it would go.
func (s *HashSet) find(h uint64) (slot int, found bool) {
	mask := len(s.slots) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		p := s.slots[i]
		if p == 0 {
			return i, false
		}
		if s.buf[p-1] == h {
			return i, true
		}
	}
}

// Index is the position of h in the queue (stable until h is forgotten),
// or -1.
func (s *HashSet) Index(h uint64) int {
	if s.slots == nil {
		return -1
	}
	if i, ok := s.find(h); ok {
		return int(s.slots[i]) - 1
	}
	return -1
}

// Has reports whether h is kept.
func (s *HashSet) Has(h uint64) bool { return s.Index(h) >= 0 }

// Add keeps h (forgetting the oldest when Max are kept) and returns its
// position; a hash kept already stays where it is.
func (s *HashSet) Add(h uint64) (pos int, added bool) {
	if s.slots == nil {
		s.init()
	}
	if p := s.Index(h); p >= 0 {
		return p, false
	}
	if s.n == len(s.buf) {
		s.DropOldest()
	}
	pos = (s.head + s.n) % len(s.buf)
	s.buf[pos] = h
	s.n++
	i, _ := s.find(h)
	s.slots[i] = int32(pos + 1)
	return pos, true
}

// Oldest is the position of the oldest hash kept, or -1.
func (s *HashSet) Oldest() int {
	if s.n == 0 {
		return -1
	}
	return s.head
}

// DropOldest forgets the oldest hash.
func (s *HashSet) DropOldest() {
	if s.n == 0 {
		return
	}
	i, ok := s.find(s.buf[s.head])
	if ok {
		s.remove(i)
	}
	s.head = (s.head + 1) % len(s.buf)
	s.n--
}

// remove empties slot i, moving back the entries after it that would
// otherwise no longer be found (linear probing without tombstones).
func (s *HashSet) remove(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		k := s.home(s.buf[s.slots[j]-1])
		// The entry at j stays if its home lies cyclically in (i, j].
		if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = 0
}

// Len is how many hashes are kept.
func (s *HashSet) Len() int { return s.n }

// At is the hash at position pos.
func (s *HashSet) At(pos int) uint64 { return s.buf[pos] }

// List returns the hashes kept, oldest first.
func (s *HashSet) List() []uint64 {
	out := make([]uint64, 0, s.n)
	for k := 0; k < s.n; k++ {
		out = append(out, s.buf[(s.head+k)%len(s.buf)])
	}
	return out
}

// Positions calls f with the position of every hash kept, oldest first.
func (s *HashSet) Positions(f func(pos int)) {
	for k := 0; k < s.n; k++ {
		f((s.head + k) % len(s.buf))
	}
}
