package teleport

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHashSetKeepsTheLastMax(t *testing.T) {
	s := HashSet{Max: 3}
	for _, h := range []uint64{10, 20, 30} {
		_, added := s.Add(h)
		require.True(t, added)
	}
	_, added := s.Add(20)
	assert.False(t, added, "a hash kept already")
	s.Add(40)
	assert.Equal(t, []uint64{20, 30, 40}, s.List(), "the oldest forgotten first")
	assert.False(t, s.Has(10))
	assert.True(t, s.Has(40))
	s.DropOldest()
	assert.Equal(t, []uint64{30, 40}, s.List())
	assert.Equal(t, 30, int(s.At(s.Oldest())))
}

// TestHashSetMatchesAModel checks the table against a map and a slice under
// a long run of adds, drops and lookups, with hashes that collide in the
// table on purpose (few distinct low and high bits).
func TestHashSetMatchesAModel(t *testing.T) {
	for _, max := range []int{1, 2, 7, 64, 1000} {
		s := HashSet{Max: max}
		var order []uint64
		in := map[uint64]bool{}
		r := rand.New(rand.NewPCG(1, uint64(max)))
		for step := 0; step < 200_000; step++ {
			h := uint64(r.IntN(4 * max))
			if r.IntN(2) == 0 {
				h <<= 40
			}
			switch r.IntN(10) {
			case 0:
				if len(order) > 0 {
					delete(in, order[0])
					order = order[1:]
				}
				s.DropOldest()
			case 1, 2, 3:
				require.Equal(t, in[h], s.Has(h), "step %d: has %x", step, h)
			default:
				pos, added := s.Add(h)
				require.Equal(t, !in[h], added, "step %d: add %x", step, h)
				if added {
					if len(order) == max {
						delete(in, order[0])
						order = order[1:]
					}
					order = append(order, h)
					in[h] = true
				}
				require.Equal(t, h, s.At(pos))
			}
			require.Equal(t, len(order), s.Len())
		}
		assert.Equal(t, append([]uint64{}, order...), append([]uint64{}, s.List()...), "max %d", max)
		for _, h := range order {
			assert.True(t, s.Has(h))
		}
	}
}

func TestDedupeSeen(t *testing.T) {
	d := &Dedupe{Max: 2}
	assert.False(t, d.Seen(1))
	assert.True(t, d.Seen(1))
	assert.False(t, d.Seen(2))
	assert.False(t, d.Seen(3))
	assert.False(t, d.Seen(1), "forgotten after Max others")
	assert.Equal(t, []uint64{3, 1}, d.Recent())
}

// BenchmarkDedupeHeap is the heap a full dedupe takes after a long run.
func BenchmarkDedupeHeap(b *testing.B) {
	for range b.N {
		before := heapInUse()
		d := &Dedupe{Max: DefaultDedupeEvents}
		for i := uint64(1); i <= 10*DefaultDedupeEvents; i++ {
			d.Seen(i * 0x2545F4914F6CDD1D)
		}
		b.ReportMetric(float64(heapInUse()-before)/DefaultDedupeEvents, "B/hash")
		assert.Equal(b, DefaultDedupeEvents, d.Len())
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
