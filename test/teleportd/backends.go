package teleportd

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Search as Teleport's audit backends answer it (Options.Backend). Each rule
// follows the Teleport file and function named in test/teleportd/README.md
// ("Search backends"); "ideal" is the exact half-open search of search.go.
//
// A backend here is: the unit its range and keys work in (the range selects
// events whose time, floored to the unit, is within [from, to] floored, both
// ends inclusive, or the exact half-open range for ideal), the order of a
// page chain (time floored to the unit, then a tie-break), its key format,
// its page limits, a visibility lag, its faults and a cost model (a wait,
// not CPU: it stands for the database on machines of its own).

// Backend names (Options.Backend, teleportd --backend).
const (
	BackendIdeal     = "ideal"
	BackendDynamo    = "dynamo"
	BackendAthena    = "athena"
	BackendFile      = "file"
	BackendPostgres  = "postgres"
	BackendFirestore = "firestore"
)

// Backends lists the backend names.
var Backends = []string{BackendIdeal, BackendDynamo, BackendAthena, BackendFile, BackendPostgres, BackendFirestore}

type backendSpec struct {
	unit int64 // the precision of the range and the order (ns)
	// hashOrder orders the events of one unit by a hash of their id, not
	// by time (DynamoDB's index sorts by CreatedAt seconds only); a page is
	// then sorted by time.
	hashOrder bool
	// limits: a request's limit <= 0 means defLimit; above maxLimit it is
	// refused (0 = capped instead).
	defLimit, maxLimit int
	lag                time.Duration // default visibility lag
}

var backendSpecs = map[string]backendSpec{
	// Every backend sits behind events.AuditLog (lib/service/service.go,
	// initAuthService), whose SearchUnstructuredEvents (lib/events/auditlog.go)
	// makes a limit <= 0 500 and refuses one above 10,000.
	BackendDynamo:    {unit: int64(time.Second), hashOrder: true, defLimit: 500, maxLimit: MaxSearchLimit, lag: 500 * time.Millisecond},
	BackendFirestore: {unit: int64(time.Second), hashOrder: true, defLimit: 500, maxLimit: MaxSearchLimit},
	BackendAthena:    {unit: int64(time.Millisecond), defLimit: 500, maxLimit: MaxSearchLimit, lag: time.Minute},
	BackendPostgres:  {unit: int64(time.Microsecond), defLimit: 500, maxLimit: MaxSearchLimit},
	BackendFile:      {unit: 1, defLimit: 500, maxLimit: MaxSearchLimit},
}

// backendState holds what the faults and the rate limit count.
type backendState struct {
	mu      sync.Mutex
	keyed   int            // keyed requests so far (the faults count them)
	stalled map[string]int // dynamo: answers left with the same key, by key
	tokens  float64        // athena: the rate limiter's bucket
	last    time.Time

	cpusOnce sync.Once
	cpus     chan struct{} // file: the Auth Service's CPUs reading files
}

// mkey is a position in a backend's order.
type mkey struct {
	unit int64  // time floored to the unit, in units
	tie  uint64 // hashOrder: the id's hash
	uid  string
	n    int // firestore: events of the unit returned before (see keyFor)
}

func (k mkey) less(o mkey) bool {
	if k.unit != o.unit {
		return k.unit < o.unit
	}
	if k.tie != o.tie {
		return k.tie < o.tie
	}
	return k.uid < o.uid
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// backendSearch answers GetUnstructuredEvents (and so the legacy GetEvents)
// as backend b would, ascending only (what the plugin asks), returning the
// encoded EventsUnstructured.
func (a *auditService) backendSearch(ctx context.Context, b string, req *auditlogpb.GetUnstructuredEventsRequest, lo, hi int64, typeSet map[string]bool) (*rawMsg, error) {
	s := a.s
	spec := backendSpecs[b]
	switch err := s.backendFault(b, req.GetStartKey()); err {
	case nil:
	case errFaultSame:
		w := &pbw{}
		w.str(2, req.GetStartKey())
		return &rawMsg{b: w.b}, nil
	case errFaultEmpty:
		return &rawMsg{}, nil
	default:
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = spec.defLimit
	}
	if spec.maxLimit > 0 && limit > spec.maxLimit {
		// lib/events/filelog.go, athena/querier.go, pgevents: BadParameter.
		return nil, status.Errorf(codes.InvalidArgument, "limit %d exceeds max iteration limit %d", limit, spec.maxLimit)
	}
	limit = min(limit, MaxSearchLimit)

	// The range: [from, to] floored to the unit, both ends inclusive.
	uLo, uHi := floorDiv(lo, spec.unit), floorDiv(hi, spec.unit)
	if b == BackendFile {
		uHi = hi // filelog: event.GetTime().After(toUTC) ends it: to is in
	}
	if uLo > uHi {
		return &rawMsg{}, nil
	}
	var after *mkey
	if k := req.GetStartKey(); k != "" {
		var err error
		if after, err = parseBackendKey(b, k); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if after == nil {
			// file: a key this Auth Service does not know (another's file,
			// a rotated one): every event is skipped looking for it.
			return &rawMsg{}, nil
		}
	}
	lag := s.opts.VisibilityLag
	if lag == 0 {
		lag = spec.lag
	}
	visible := time.Now().UnixNano() - int64(max(lag, 0))

	// Walk the range unit by unit in (time, uid) order, sorting each unit's
	// events into the backend's order.
	startNs := uLo * spec.unit
	if after != nil && after.unit*spec.unit > startNs {
		startNs = after.unit * spec.unit
	}
	endNs := uHi*spec.unit + spec.unit // exclusive
	if b == BackendFile {
		endNs = hi + 1
	}
	m := newMerger(newQuery(true, startNs, endNs, nil), s.store.snapshot())
	var (
		page    []ref
		scanned int
		group   []ref
		gUnit   int64
		full    bool
		size    int
		cut     bool
	)
	maxBytes := s.opts.SearchMaxBytes
	skipped := 0 // firestore: events of the key's second skipped so far
	found := after == nil || b != BackendFile
	lastUnitN := 0 // firestore: events of the last page event's second returned, counting the key's
	flush := func() {
		if len(group) == 0 {
			return
		}
		if spec.hashOrder {
			sort.Slice(group, func(i, j int) bool {
				return mkeyOf(spec, group[i]).less(mkeyOf(spec, group[j]))
			})
		}
		for _, r := range group {
			if full || cut {
				break
			}
			switch {
			case !found:
				// filelog: skip until the key's event, and it too.
				found = r.uid == after.uid
				continue
			case after != nil && b == BackendFirestore:
				if gUnit < after.unit || gUnit == after.unit && skipped < after.n {
					skipped++
					continue
				}
			case after != nil && b != BackendFile:
				if !after.less(mkeyOf(spec, r)) {
					continue
				}
			}
			w := &pbw{}
			mk := w.begin(1)
			r.appendEvent(w)
			w.end(mk)
			if maxBytes > 0 && len(page) > 0 && size+len(w.b) >= maxBytes {
				cut = true
				break
			}
			size += len(w.b)
			if len(page) > 0 && floorDiv(page[len(page)-1].t, spec.unit) == gUnit {
				lastUnitN++
			} else {
				lastUnitN = 1
				if after != nil && gUnit == after.unit {
					lastUnitN += after.n
				}
			}
			page = append(page, r)
			if len(page) == limit {
				full = true
			}
		}
		group = group[:0]
	}
	for !full && !cut {
		if scanned&4095 == 4095 && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		scanned++
		r, ok := m.next()
		if !ok {
			break
		}
		if typeSet != nil && !typeSet[r.typ] {
			continue
		}
		if r.storedAt() > visible {
			continue // not visible yet (an index or a batch behind)
		}
		u := floorDiv(r.t, spec.unit)
		if len(group) > 0 && u != gUnit {
			flush()
		}
		gUnit = u
		group = append(group, r)
	}
	flush()

	if !found {
		// filelog: the key was not among the range's events.
		return &rawMsg{}, nil
	}
	var next string
	if len(page) > 0 && (full || cut) {
		next = backendKey(b, spec, page, lastUnitN)
	}
	if spec.hashOrder {
		// searchEventsWithFilter sorts the page (events.ByTimeAndIndex).
		sort.SliceStable(page, func(i, j int) bool { return page[i].t < page[j].t })
	}
	s.backendCost(b, lo, hi, page, size)
	w := &pbw{}
	for i := range page {
		mk := w.begin(1)
		page[i].appendEvent(w)
		w.end(mk)
	}
	if next != "" {
		w.str(2, next)
	}
	s.st.searched.Add(int64(len(page)))
	return &rawMsg{b: w.b}, nil
}

func mkeyOf(spec backendSpec, r ref) mkey {
	k := mkey{unit: floorDiv(r.t, spec.unit), uid: r.uid}
	if spec.hashOrder {
		k.tie = fnv64(r.uid)
	}
	return k
}

// dynamoKey is dynamoevents' checkpointKey: the day, the DynamoDB iterator
// (LastEvaluatedKey as JSON) and the sub-page event key.
type dynamoKey struct {
	Date     string `json:"date,omitempty"`
	Iterator string `json:"iterator,omitempty"`
	EventKey string `json:"event_key,omitempty"`
}

type dynamoIter struct {
	CreatedAt     int64  `json:"CreatedAt"`
	CreatedAtDate string `json:"CreatedAtDate"`
	EventIndex    int64  `json:"EventIndex"`
	SessionID     string `json:"SessionID"`
}

// backendKey is the key of a page ending with page's last event in b's
// order (for hashOrder backends, the last before the page is sorted).
func backendKey(b string, spec backendSpec, page []ref, unitN int) string {
	last := page[len(page)-1]
	switch b {
	case BackendDynamo:
		t := time.Unix(0, last.t).UTC()
		it, _ := json.Marshal(dynamoIter{CreatedAt: t.Unix(), CreatedAtDate: t.Format("2006-01-02"), SessionID: last.uid})
		k, _ := json.Marshal(dynamoKey{Date: t.Format("2006-01-02"), Iterator: string(it)})
		return string(k)
	case BackendFirestore:
		// The real key is the last event's second alone, and the next page
		// starts after that whole second (searchEventsOnce: StartAfter); the
		// stand-in adds how many of that second were returned (README).
		return strconv.FormatInt(floorDiv(last.t, spec.unit), 10) + "." + strconv.Itoa(unitN)
	case BackendAthena, BackendPostgres:
		var buf [24]byte
		binary.LittleEndian.PutUint64(buf[:8], uint64(last.t/1000))
		id, err := uuid.Parse(last.uid)
		if err == nil {
			copy(buf[8:], id[:])
		}
		return base64.URLEncoding.EncodeToString(buf[:])
	case BackendFile:
		return last.uid
	}
	return ""
}

// parseBackendKey reads a key of backend b; a nil key without error is a
// key the backend does not know (file log).
func parseBackendKey(b, k string) (*mkey, error) {
	spec := backendSpecs[b]
	switch b {
	case BackendDynamo:
		var dk dynamoKey
		var it dynamoIter
		if err := json.Unmarshal([]byte(k), &dk); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(dk.Iterator), &it); err != nil {
			return nil, err
		}
		return &mkey{unit: it.CreatedAt, tie: fnv64(it.SessionID), uid: it.SessionID}, nil
	case BackendFirestore:
		sec, n, ok := strings.Cut(k, ".")
		u, err := strconv.ParseInt(sec, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("failed to parse startKey, expected integer but found: %q", k)
		}
		c := 0
		if ok {
			c, _ = strconv.Atoi(n)
		}
		return &mkey{unit: u, n: c}, nil
	case BackendAthena, BackendPostgres:
		raw, err := base64.URLEncoding.DecodeString(k)
		if err != nil || len(raw) != 24 {
			return nil, fmt.Errorf("unsupported keyset format: malformed pagination key")
		}
		us := int64(binary.LittleEndian.Uint64(raw[:8]))
		id, _ := uuid.FromBytes(raw[8:])
		return &mkey{unit: floorDiv(us*1000, spec.unit), uid: id.String()}, nil
	case BackendFile:
		return &mkey{uid: k}, nil
	}
	return nil, fmt.Errorf("unknown backend %q", b)
}

// backendFault answers a request with the backend's fault, when
// Options.FaultEvery says this request gets it: every FaultEvery-th
// request asked with a key.
//   - dynamo: an empty page carrying the key it was asked with, three times
//     for that key (lib/events/dynamoevents, processQueryOutput: an event
//     alone above events.MaxEventBytesInResponse; teleport#61645), then the
//     page as usual, as a server that got past it;
//   - file: the key is unknown (another Auth Service's file, a rotated
//     file): an empty page without a key (filelog.go searchEventsWithFilter);
//
// and, for athena, the search rate limit (SearchEventsLimiter) when
// Options.SearchRate is set (default for athena: 5 a second, burst 10).
// It returns errFaultEmpty, errFaultSame or a gRPC error.
func (s *Server) backendFault(b, key string) error {
	st := &s.backend
	st.mu.Lock()
	defer st.mu.Unlock()
	if b == BackendAthena {
		rate, burst := s.opts.SearchRate, s.opts.SearchBurst
		if rate == 0 {
			rate, burst = 5, 10
		}
		if rate > 0 {
			now := time.Now()
			if st.last.IsZero() {
				st.tokens = float64(burst)
			} else {
				st.tokens = min(float64(burst), st.tokens+now.Sub(st.last).Seconds()*rate)
			}
			st.last = now
			if st.tokens < 1 {
				s.st.rateLimited.Add(1)
				// trace.LimitExceeded travels as ResourceExhausted (trail.ToGRPC).
				return status.Error(codes.ResourceExhausted, "rate limit exceeded for searching events")
			}
			st.tokens--
		}
	}
	if key == "" || s.opts.FaultEvery <= 0 {
		return nil
	}
	if n, ok := st.stalled[key]; ok {
		if n == 0 {
			delete(st.stalled, key)
			return nil // got past it
		}
		st.stalled[key] = n - 1
		s.st.faults.Add(1)
		return errFaultSame
	}
	st.keyed++
	if st.keyed%s.opts.FaultEvery != 0 {
		return nil
	}
	switch b {
	case BackendDynamo:
		if st.stalled == nil {
			st.stalled = map[string]int{}
		}
		st.stalled[key] = 2
		s.st.faults.Add(1)
		return errFaultSame
	case BackendFile:
		s.st.faults.Add(1)
		return errFaultEmpty
	}
	return nil
}

var (
	errFaultSame  = status.Error(codes.Internal, "fault: same key")
	errFaultEmpty = status.Error(codes.Internal, "fault: empty")
)

// backendCost waits what backend b would take for a page: a model of the
// database's time on machines of its own (Options.BackendCost scales it;
// < 0 = none).
//   - file: every page reads and parses every file of the range's days and
//     the day on each side (filelog.go matchingFiles, findInFile): about 10 µs
//     an event of those days, CPU of the Auth Service: Options.BackendCPUs
//     pages at a time (default 2);
//   - dynamo: one Query per day touched and per MB read, ~5 ms each;
//   - athena: a query's first status check after 600 ms
//     (getQueryResultsInitialDelay), then GetQueryResults per 1000 rows, ~50 ms;
//   - postgres: ~2 ms, then ~1 ms per FETCH of 500 rows;
//   - firestore: ~10 ms a query, ~5 ms per 1000 documents.
func (s *Server) backendCost(b string, lo, hi int64, page []ref, size int) {
	scale := s.opts.BackendCost
	if scale < 0 {
		return
	}
	if scale == 0 {
		scale = 1
	}
	var d time.Duration
	switch b {
	case BackendFile:
		dLo, dHi := floorDay(lo)-1, floorDay(hi)+1
		n := s.store.countBetween(dLo*dayNanos, (dHi+1)*dayNanos)
		d = time.Duration(n) * 10 * time.Microsecond
	case BackendDynamo:
		days := floorDay(hi) - floorDay(lo) + 1
		d = time.Duration(days+int64(size>>20)) * 5 * time.Millisecond
	case BackendAthena:
		d = 600*time.Millisecond + time.Duration(len(page)/1000+1)*50*time.Millisecond
	case BackendPostgres:
		d = 2*time.Millisecond + time.Duration(len(page)/500+1)*time.Millisecond
	case BackendFirestore:
		d = 10*time.Millisecond + time.Duration(len(page)/1000)*5*time.Millisecond
	}
	if b == BackendFile {
		// Reading and parsing the files is CPU on the Auth Service: at most
		// BackendCPUs pages at a time (default 2).
		s.backend.cpusOnce.Do(func() {
			n := s.opts.BackendCPUs
			if n <= 0 {
				n = 2
			}
			s.backend.cpus = make(chan struct{}, n)
		})
		s.backend.cpus <- struct{}{}
		defer func() { <-s.backend.cpus }()
	}
	time.Sleep(time.Duration(float64(d) * scale))
}

// countBetween counts the stored events with lo <= t < hi.
func (st *store) countBetween(lo, hi int64) int {
	snap := st.snapshot()
	n := 0
	for _, g := range snap.segsAsc {
		if g.maxT < lo || g.minT >= hi {
			continue
		}
		n += g.firstAtOrAfter(hi) - g.firstAtOrAfter(lo)
	}
	n += sort.Search(len(snap.explicit), func(i int) bool { return snap.explicit[i].t >= hi }) -
		sort.Search(len(snap.explicit), func(i int) bool { return snap.explicit[i].t >= lo })
	return n
}

// storedAt is when the event was stored (unix ns): at its own time for a
// generated backlog, when Live or Add stored it otherwise.
func (r *ref) storedAt() int64 {
	if r.seg != nil {
		return max(r.t, r.seg.storedNs)
	}
	return max(r.t, r.ev.stored)
}
