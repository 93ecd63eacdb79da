package teleportd

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultChunkSize is the maximum number of events per export chunk.
const DefaultChunkSize = 5000

const dayNanos = int64(24 * time.Hour)

// Event is an explicit audit event: the raw JSON fields as Teleport writes
// them (event, time, uid, code, cluster_name, ei, ...). Values may be any
// JSON-marshalable Go value ([]string, map[string]string, ints, ...); they are
// normalised through JSON. Type, ID and Time are derived from "event", "uid"
// and "time" (an RFC 3339 string or a time.Time); Add fills in a missing uid
// (random UUID), time (now) and cluster_name (the server's cluster).
type Event struct {
	Fields map[string]any
}

// EventMeta identifies a stored event for ground-truth queries.
type EventMeta struct {
	Type string
	UID  string
	Time time.Time
}

// GenSpec describes a run of deterministic generated events: Count events,
// event i at Start + i*Span/Count, uid and content derived from (Seed, i).
// Two specs with the same Seed produce the same uids: use distinct seeds for
// distinct runs.
type GenSpec struct {
	Start     time.Time
	Count     int
	Span      time.Duration
	Seed      int64
	ChunkSize int // default DefaultChunkSize
	// Precision, if set, truncates event times to a multiple of it (since
	// the Unix epoch). Teleport stores event times with millisecond
	// precision, so time.Millisecond makes dense runs share timestamps
	// like real ones; 0 keeps Start + i*Span/Count exactly.
	Precision time.Duration
	// StoredAt is when the events are stored (zero: each at its own time,
	// a backlog); a backend's visibility lag counts from it.
	StoredAt time.Time
}

type storedEvent struct {
	stored int64 // when Add stored it (unix ns)
	t      int64
	uid    string
	typ    string
	raw    []byte // EventUnstructured wire encoding
}

// chunk is a sealed, immutable export chunk of one UTC day: either an index
// range of a generated segment or a list of explicit events.
type chunk struct {
	name   string
	day    int64 // days since the Unix epoch (UTC)
	prefix string
	seg    *genSegment
	lo, hi int
	evs    []*storedEvent
	// Athena mode (athena.go): idx lists the segment events of a chunk
	// that repeats events of others; visibleAt (unix nanos) hides a late
	// chunk from listing and export until then; athena marks cursors
	// "a1:<rows>" and rows out of time order.
	idx       []int
	visibleAt int64
	athena    bool
}

func (c *chunk) size() int {
	if c.idx != nil {
		return len(c.idx)
	}
	if c.seg != nil {
		return c.hi - c.lo
	}
	return len(c.evs)
}

// appendEvent appends the EventUnstructured encoding of event p to w.
func (c *chunk) appendEvent(w *pbw, p int) {
	if c.athena {
		p = receiveOrder(p, c.size())
	}
	if c.idx != nil {
		c.seg.appendEvent(w, c.idx[p])
		return
	}
	if c.seg != nil {
		c.seg.appendEvent(w, c.lo+p)
		return
	}
	w.b = append(w.b, c.evs[p].raw...)
}

// Export cursor format: "<prefix><position>", prefix = "tdc1." + 16 hex digits
// of the FNV-64a hash of the chunk name + ".", position = number of events of
// the chunk already delivered (the cursor of event p resumes at p+1).
func (c *chunk) cursor(pos int) string {
	if c.athena {
		return athenaCursor(pos)
	}
	return c.prefix + strconv.Itoa(pos)
}

func (c *chunk) parseCursor(cur string) (int, bool) {
	if c.athena {
		return parseAthenaCursor(cur, c.size())
	}
	if len(cur) <= len(c.prefix) || cur[:len(c.prefix)] != c.prefix {
		return 0, false
	}
	n, err := strconv.Atoi(cur[len(c.prefix):])
	if err != nil || n < 0 || n > c.size() {
		return 0, false
	}
	return n, true
}

func floorDay(ns int64) int64 {
	d := ns / dayNanos
	if ns%dayNanos < 0 {
		d--
	}
	return d
}

func dayString(day int64) string {
	return time.Unix(day*86400, 0).UTC().Format("20060102")
}

// store holds segments, explicit events and chunks. Everything reachable from
// a snapshot is immutable: slices are replaced (copy on write), never mutated
// in place, so readers only need the lock to take a snapshot.
type store struct {
	cluster    string
	chunkSize  int
	recEvents  int  // Options.RecordingEvents
	noSessions bool // Options.NoSessions
	athena     *athenaState

	mu       sync.RWMutex
	chunks   map[string]*chunk
	byDay    map[int64][]*chunk
	segsAsc  []*genSegment  // sorted by minT
	segsDesc []*genSegment  // sorted by maxT descending
	explicit []*storedEvent // sorted by (t, uid)
	count    int
	seq      int
	segSeq   int
}

func newStore(cluster string, chunkSize int) *store {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	return &store{
		cluster:   cluster,
		chunkSize: chunkSize,
		chunks:    map[string]*chunk{},
		byDay:     map[int64][]*chunk{},
	}
}

// newChunkLocked names and registers a chunk. Caller holds mu.
func (st *store) newChunkLocked(c *chunk) {
	st.seq++
	c.name = fmt.Sprintf("%s-%06d", dayString(c.day), st.seq)
	h := fnv.New64a()
	h.Write([]byte(c.name))
	c.prefix = fmt.Sprintf("tdc1.%016x.", h.Sum64())
	st.chunks[c.name] = c
	st.byDay[c.day] = append(st.byDay[c.day], c)
}

type snapshot struct {
	segsAsc  []*genSegment
	segsDesc []*genSegment
	explicit []*storedEvent
}

func (st *store) snapshot() snapshot {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return snapshot{segsAsc: st.segsAsc, segsDesc: st.segsDesc, explicit: st.explicit}
}

func (st *store) generate(g GenSpec) []string {
	if g.Count <= 0 {
		return nil
	}
	cs := g.ChunkSize
	if cs <= 0 {
		cs = DefaultChunkSize
	}
	span := g.Span
	if span < 0 {
		span = 0
	}
	seg := &genSegment{
		seed:       g.Seed,
		start:      g.Start.UnixNano(),
		span:       uint64(span),
		count:      g.Count,
		cluster:    st.cluster,
		chunkSize:  cs,
		prec:       int64(max(g.Precision, 0)),
		recEvents:  st.recEvents,
		noSessions: st.noSessions,
		storedNs:   storedNs(g.StoredAt),
	}
	seg.minT = seg.timeAt(0)
	seg.maxT = seg.timeAt(g.Count - 1)

	var cs2 []*chunk
	for lo := 0; lo < seg.count; {
		day := floorDay(seg.timeAt(lo))
		end := seg.firstAtOrAfter((day + 1) * dayNanos)
		hi := min(lo+cs, end)
		cs2 = append(cs2, &chunk{day: day, seg: seg, lo: lo, hi: hi, athena: st.athena != nil})
		lo = hi
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	st.segSeq++
	seg.id = st.segSeq
	names := make([]string, len(cs2))
	for i, c := range cs2 {
		st.newChunkLocked(c)
		names[i] = c.name
	}
	if st.athena != nil {
		names = append(names, st.athenaLocked(seg, cs2)...)
	}
	// Copy-on-write sorted inserts.
	i := sort.Search(len(st.segsAsc), func(i int) bool { return st.segsAsc[i].minT > seg.minT })
	st.segsAsc = insertAt(st.segsAsc, i, seg)
	j := sort.Search(len(st.segsDesc), func(j int) bool { return st.segsDesc[j].maxT < seg.maxT })
	st.segsDesc = insertAt(st.segsDesc, j, seg)
	st.count += seg.count
	return names
}

func insertAt[T any](s []T, i int, v T) []T {
	out := make([]T, 0, len(s)+1)
	out = append(out, s[:i]...)
	out = append(out, v)
	return append(out, s[i:]...)
}

// toStored normalises an explicit event.
func (st *store) toStored(e Event) (*storedEvent, error) {
	fields := make(map[string]any, len(e.Fields)+3)
	for k, v := range e.Fields {
		fields[k] = v
	}
	var t time.Time
	switch v := fields["time"].(type) {
	case nil:
		t = time.Now().UTC()
	case time.Time:
		t = v.UTC()
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("teleportd: event time %q: %w", v, err)
		}
		t = t.UTC()
	default:
		return nil, fmt.Errorf("teleportd: event time has type %T", v)
	}
	fields["time"] = t.Format(time.RFC3339Nano)
	uid, _ := fields["uid"].(string)
	if uid == "" {
		uid = uuid.NewString()
		fields["uid"] = uid
	}
	if _, ok := fields["cluster_name"]; !ok {
		fields["cluster_name"] = st.cluster
	}
	typ, _ := fields["event"].(string)

	// Normalise arbitrary Go values through JSON (integers survive as exact
	// json.Number values, then become float64 in structpb like on the wire).
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("teleportd: event fields: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("teleportd: event fields: %w", err)
	}
	var ei int64
	if n, ok := m["ei"].(float64); ok && n == math.Trunc(n) {
		ei = int64(n)
	}
	raw, err = proto.MarshalOptions{Deterministic: true}.Marshal(&auditlogpb.EventUnstructured{
		Type:         typ,
		Id:           uid,
		Time:         timestamppb.New(t),
		Index:        ei,
		Unstructured: s,
	})
	if err != nil {
		return nil, err
	}
	return &storedEvent{stored: time.Now().UnixNano(), t: t.UnixNano(), uid: uid, typ: typ, raw: raw}, nil
}

func (st *store) add(events []Event) ([]string, error) {
	if len(events) == 0 {
		return nil, nil
	}
	evs := make([]*storedEvent, 0, len(events))
	for _, e := range events {
		se, err := st.toStored(e)
		if err != nil {
			return nil, err
		}
		evs = append(evs, se)
	}
	// Group per UTC day, keeping the order of the call within a day.
	byDay := map[int64][]*storedEvent{}
	var days []int64
	for _, e := range evs {
		d := floorDay(e.t)
		if _, ok := byDay[d]; !ok {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], e)
	}
	sort.Slice(days, func(i, j int) bool { return days[i] < days[j] })

	merged := make([]*storedEvent, 0, len(evs))
	st.mu.Lock()
	defer st.mu.Unlock()
	var names []string
	for _, d := range days {
		list := byDay[d]
		for lo := 0; lo < len(list); lo += st.chunkSize {
			hi := min(lo+st.chunkSize, len(list))
			c := &chunk{day: d, evs: list[lo:hi:hi], athena: st.athena != nil}
			st.newChunkLocked(c)
			names = append(names, c.name)
		}
	}
	merged = append(merged, st.explicit...)
	merged = append(merged, evs...)
	sort.SliceStable(merged, func(i, j int) bool { return refLess(merged[i].t, merged[i].uid, merged[j].t, merged[j].uid) })
	st.explicit = merged
	st.count += len(evs)
	return names, nil
}

func refLess(t1 int64, u1 string, t2 int64, u2 string) bool {
	if t1 != t2 {
		return t1 < t2
	}
	return u1 < u2
}

func (st *store) chunkNames(day int64) []string {
	st.mu.RLock()
	defer st.mu.RUnlock()
	cs := st.byDay[day]
	out := make([]string, 0, len(cs))
	now := time.Now().UnixNano()
	for _, c := range cs {
		if st.athena != nil && !st.athena.served(c, now) {
			continue
		}
		out = append(out, c.name)
	}
	return out
}

func (st *store) lookup(name string) *chunk {
	st.mu.RLock()
	defer st.mu.RUnlock()
	c := st.chunks[name]
	if c != nil && st.athena != nil && !st.athena.served(c, time.Now().UnixNano()) {
		return nil
	}
	return c
}

func (st *store) total() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.count
}

func storedNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
