package teleportd

import (
	"container/heap"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ref is one event in (time, uid) order, generated or explicit.
type ref struct {
	t   int64
	uid string
	typ string
	seg *genSegment
	idx int
	ev  *storedEvent
}

// appendEvent appends the EventUnstructured encoding of the event to w.
func (r *ref) appendEvent(w *pbw) {
	if r.seg != nil {
		r.seg.appendEvent(w, r.idx)
		return
	}
	w.b = append(w.b, r.ev.raw...)
}

func (r ref) meta() EventMeta {
	return EventMeta{Type: r.typ, UID: r.uid, Time: time.Unix(0, r.t).UTC()}
}

// query selects events with lo <= t < hi (as an inclusive [tmin, tmax]) after
// an optional key, in ascending or descending (time, uid) order.
type query struct {
	asc        bool
	tmin, tmax int64 // inclusive
	hasKey     bool
	keyT       int64
	keyUID     string
}

func newQuery(asc bool, lo, hiExcl int64, key *searchKey) *query {
	q := &query{asc: asc, tmin: lo, tmax: hiExcl - 1}
	if hiExcl == math.MinInt64 {
		q.tmax = math.MinInt64
		q.tmin = math.MaxInt64 // empty
	}
	if key != nil {
		q.hasKey, q.keyT, q.keyUID = true, key.t, key.uid
		if asc {
			q.tmin = max(q.tmin, key.t)
		} else {
			q.tmax = min(q.tmax, key.t)
		}
	}
	return q
}

func (q *query) admits(t int64, uid string) bool {
	if t < q.tmin || t > q.tmax {
		return false
	}
	if q.hasKey && t == q.keyT {
		if q.asc {
			return uid > q.keyUID
		}
		return uid < q.keyUID
	}
	return true
}

// before reports whether a comes before b in the query order.
func (q *query) before(a, b *ref) bool {
	if q.asc {
		return refLess(a.t, a.uid, b.t, b.uid)
	}
	return refLess(b.t, b.uid, a.t, a.uid)
}

type iter interface {
	// cur returns the current event; valid until next. ok=false when exhausted.
	cur() (*ref, bool)
	next()
}

// genIter walks a generated segment group by group (events sharing a time),
// sorting each group by uid.
type genIter struct {
	q   *query
	seg *genSegment
	i   int // asc: next index to visit; desc: next index (downwards) to visit
	buf []ref
	bi  int
}

func newGenIter(q *query, seg *genSegment) *genIter {
	it := &genIter{q: q, seg: seg}
	if q.asc {
		it.i = seg.firstAtOrAfter(q.tmin)
	} else {
		it.i = seg.firstAfter(q.tmax) - 1
	}
	it.fill()
	return it
}

func (it *genIter) fill() {
	g, q := it.seg, it.q
	for it.bi >= len(it.buf) {
		it.buf, it.bi = it.buf[:0], 0
		var from, to int // group [from, to)
		if q.asc {
			if it.i >= g.count {
				return
			}
			t := g.timeAt(it.i)
			if t > q.tmax {
				it.i = g.count
				return
			}
			from, to = it.i, it.i+1
			if to < g.count && g.timeAt(to) == t {
				to = g.firstAfter(t)
			}
			it.i = to
		} else {
			if it.i < 0 {
				return
			}
			t := g.timeAt(it.i)
			if t < q.tmin {
				it.i = -1
				return
			}
			from, to = it.i, it.i+1
			if from > 0 && g.timeAt(from-1) == t {
				from = g.firstAtOrAfter(t)
			}
			it.i = from - 1
		}
		for k := from; k < to; k++ {
			t := g.timeAt(k)
			uid := g.uidAt(k)
			if q.admits(t, uid) {
				it.buf = append(it.buf, ref{t: t, uid: uid, typ: g.typeAt(k), seg: g, idx: k})
			}
		}
		if len(it.buf) > 1 {
			sort.Slice(it.buf, func(a, b int) bool { return q.before(&it.buf[a], &it.buf[b]) })
		}
	}
}

func (it *genIter) cur() (*ref, bool) {
	if it.bi < len(it.buf) {
		return &it.buf[it.bi], true
	}
	return nil, false
}

func (it *genIter) next() {
	it.bi++
	it.fill()
}

// expIter walks the sorted explicit events.
type expIter struct {
	q   *query
	evs []*storedEvent
	p   int
	r   ref
	ok  bool
}

func newExpIter(q *query, evs []*storedEvent) *expIter {
	it := &expIter{q: q, evs: evs}
	if q.asc {
		it.p = sort.Search(len(evs), func(i int) bool { return evs[i].t >= q.tmin })
	} else {
		it.p = sort.Search(len(evs), func(i int) bool { return evs[i].t > q.tmax }) - 1
	}
	it.settle()
	return it
}

func (it *expIter) settle() {
	it.ok = false
	for it.p >= 0 && it.p < len(it.evs) {
		e := it.evs[it.p]
		if it.q.asc && e.t > it.q.tmax || !it.q.asc && e.t < it.q.tmin {
			return
		}
		if it.q.admits(e.t, e.uid) {
			it.r = ref{t: e.t, uid: e.uid, typ: e.typ, ev: e}
			it.ok = true
			return
		}
		it.step()
	}
}

func (it *expIter) step() {
	if it.q.asc {
		it.p++
	} else {
		it.p--
	}
}

func (it *expIter) cur() (*ref, bool) { return &it.r, it.ok }

func (it *expIter) next() {
	it.step()
	it.settle()
}

// merger merges the explicit events and all generated segments, activating
// segments lazily (in order of their first event in the query direction) so
// that thousands of small segments stay cheap.
type merger struct {
	q       *query
	h       iterHeap
	pending []*genSegment
	p       int
}

type iterHeap struct {
	q  *query
	it []iter
}

func (h *iterHeap) Len() int { return len(h.it) }
func (h *iterHeap) Less(i, j int) bool {
	a, _ := h.it[i].cur()
	b, _ := h.it[j].cur()
	return h.q.before(a, b)
}
func (h *iterHeap) Swap(i, j int) { h.it[i], h.it[j] = h.it[j], h.it[i] }
func (h *iterHeap) Push(x any)    { h.it = append(h.it, x.(iter)) }
func (h *iterHeap) Pop() any {
	n := len(h.it)
	x := h.it[n-1]
	h.it = h.it[:n-1]
	return x
}

func newMerger(q *query, snap snapshot) *merger {
	m := &merger{q: q, h: iterHeap{q: q}}
	if q.asc {
		m.pending = snap.segsAsc
	} else {
		m.pending = snap.segsDesc
	}
	if ei := newExpIter(q, snap.explicit); ei.ok {
		m.h.it = append(m.h.it, ei)
	}
	return m
}

func (m *merger) activate() {
	q := m.q
	for m.p < len(m.pending) {
		s := m.pending[m.p]
		if q.asc && s.minT > q.tmax || !q.asc && s.maxT < q.tmin {
			m.p = len(m.pending) // sorted: nothing further can match
			return
		}
		if len(m.h.it) > 0 {
			head, _ := m.h.it[0].cur()
			if q.asc && s.minT > head.t || !q.asc && s.maxT < head.t {
				return
			}
		}
		m.p++
		if s.maxT < q.tmin || s.minT > q.tmax {
			continue
		}
		it := newGenIter(q, s)
		if _, ok := it.cur(); ok {
			heap.Push(&m.h, iter(it))
		}
	}
}

// next returns the next event in query order (the ref is a copy).
func (m *merger) next() (ref, bool) {
	m.activate()
	if len(m.h.it) == 0 {
		return ref{}, false
	}
	it := m.h.it[0]
	r, _ := it.cur()
	out := *r
	it.next()
	if _, ok := it.cur(); ok {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return out, true
}

// Search key format: "tdk1.<unix nanos>.<uid>" naming the last returned event;
// the next page starts strictly after it in the requested order.
type searchKey struct {
	t   int64
	uid string
}

func (k searchKey) String() string {
	return "tdk1." + strconv.FormatInt(k.t, 10) + "." + k.uid
}

func parseSearchKey(s string) (*searchKey, bool) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 || parts[0] != "tdk1" || parts[2] == "" {
		return nil, false
	}
	t, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, false
	}
	return &searchKey{t: t, uid: parts[2]}, true
}
