package engine

// Hostile server replies (issue 7), through the in-memory Auth Service: every
// case ends in the correct pass-through or one clear log line, never a
// panic, a stall, a loss or a skip ahead.

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// scripted is an Auth Service whose export chunks are given event by event,
// each with the cursor the server hands out for it. ExportUnstructuredEvents
// with a cursor resumes after the first event that carried it (so
// duplicate cursors re-send, never skip); "" starts the chunk over. Search,
// recordings, locks and Ping are fakeAuth's.
type scripted struct {
	*fakeAuth
	smu    sync.Mutex
	days   map[string][]scriptChunk
	calls  map[string]int // ExportUnstructuredEvents calls per chunk
	breakc map[string]int // break the stream of a chunk after this many events, once
}

type scriptChunk struct {
	name   string
	events []*auditlogpb.ExportEventUnstructured
}

func newScripted() *scripted {
	return &scripted{fakeAuth: newFakeAuth(), days: map[string][]scriptChunk{}, calls: map[string]int{}, breakc: map[string]int{}}
}

func (s *scripted) chunk(day, name string, evs ...*auditlogpb.ExportEventUnstructured) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.days[day] = append(s.days[day], scriptChunk{name: name, events: evs})
}

func (s *scripted) GetEventExportChunks(ctx context.Context, req *auditlogpb.GetEventExportChunksRequest) stream.Stream[*auditlogpb.EventExportChunk] {
	s.smu.Lock()
	defer s.smu.Unlock()
	var out []*auditlogpb.EventExportChunk
	for _, c := range s.days[req.Date.AsTime().UTC().Format(cursor.DayLayout)] {
		out = append(out, &auditlogpb.EventExportChunk{Chunk: c.name})
	}
	return stream.Slice(out)
}

func (s *scripted) ExportUnstructuredEvents(ctx context.Context, req *auditlogpb.ExportUnstructuredEventsRequest) stream.Stream[*auditlogpb.ExportEventUnstructured] {
	s.smu.Lock()
	defer s.smu.Unlock()
	day := req.Date.AsTime().UTC().Format(cursor.DayLayout)
	s.calls[req.Chunk]++
	for _, c := range s.days[day] {
		if c.name != req.Chunk {
			continue
		}
		from := 0
		if req.Cursor != "" {
			from = -1
			for i, ev := range c.events {
				if ev.Cursor == req.Cursor {
					from = i + 1
					break
				}
			}
			if from < 0 {
				return stream.Fail[*auditlogpb.ExportEventUnstructured](fmt.Errorf("unknown cursor %q", req.Cursor))
			}
		}
		out := c.events[from:]
		if n, ok := s.breakc[req.Chunk]; ok && n < len(out) {
			delete(s.breakc, req.Chunk)
			out = out[:n]
			return stream.Chain(stream.Slice(out), stream.Fail[*auditlogpb.ExportEventUnstructured](fmt.Errorf("connection reset")))
		}
		return stream.Slice(out)
	}
	return stream.Fail[*auditlogpb.ExportEventUnstructured](fmt.Errorf("no chunk %q", req.Chunk))
}

// ev is an export event with body fields and a cursor.
func ev(cur string, typ, uid string, t time.Time, fields map[string]*structpb.Value) *auditlogpb.ExportEventUnstructured {
	body := &structpb.Struct{Fields: map[string]*structpb.Value{
		"event": structpb.NewStringValue(typ), "uid": structpb.NewStringValue(uid),
		"time": structpb.NewStringValue(t.UTC().Format(time.RFC3339Nano)),
	}}
	for k, v := range fields {
		body.Fields[k] = v
	}
	return &auditlogpb.ExportEventUnstructured{Cursor: cur,
		Event: &auditlogpb.EventUnstructured{Type: typ, Id: uid, Time: timestamppb.New(t), Unstructured: body}}
}

func (h *harness) startScripted(s *scripted) *Engine {
	return h.start(func(o *Options) { o.Connect = func(context.Context) (Conn, error) { return s, nil } })
}

// records decodes a callback's buffer into the bodies of its records.
func records(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for len(b) > 0 {
		_, body, rest, err := record.Decode(b)
		require.NoError(t, err)
		out = append(out, body)
		b = rest
	}
	return out
}

// collect runs callbacks until want records arrived (or 10 s passed) and
// then for settle more, returning every record body.
func collect(t *testing.T, e *Engine, want int, settle time.Duration) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		if b := e.Collect(); len(b) > 0 {
			got = append(got, records(t, b)...)
			e.Handed()
		} else {
			time.Sleep(2 * time.Millisecond)
		}
	}
	for end := time.Now().Add(settle); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b := e.Collect(); len(b) > 0 {
			got = append(got, records(t, b)...)
			e.Handed()
		}
	}
	return got
}

// collectUntil runs callbacks until done says so (or 10 s passed), then
// 100 ms more.
func collectUntil(t *testing.T, e *Engine, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for !done(got) && time.Now().Before(deadline) {
		if b := e.Collect(); len(b) > 0 {
			got = append(got, records(t, b)...)
			e.Handed()
		} else {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return append(got, collect(t, e, 0, 100*time.Millisecond)...)
}

func uidsOf(recs []map[string]any) []string {
	var out []string
	for _, r := range recs {
		u, _ := r["uid"].(string)
		out = append(out, u)
	}
	return out
}

func byUID(recs []map[string]any) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, r := range recs {
		if u, ok := r["uid"].(string); ok {
			m[u] = r
		}
	}
	return m
}

// nest wraps v in n levels of {"d": ...}.
func nest(n int, v *structpb.Value) *structpb.Value {
	for i := 0; i < n; i++ {
		v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"d": v}})
	}
	return v
}

// Garbage in the Struct of events: every event is exported as it came, with
// the right oddities, and nothing stalls behind a 3 MiB event.
func TestHostileEventsPassThrough(t *testing.T) {
	h := newHarness(t)
	s := newScripted()
	at := start.Add(time.Hour)
	day := at.Format(cursor.DayLayout)
	big := strings.Repeat("x", 3<<20)
	list := structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{nil, {}, structpb.NewNullValue(), structpb.NewNumberValue(math.NaN())}})
	s.chunk(day, "c1",
		ev("1", "x.unknown.v99", "unknown-type", at, map[string]*structpb.Value{"payload": structpb.NewStringValue("raw")}),
		ev("2", "user.login", "big", at, map[string]*structpb.Value{"blob": structpb.NewStringValue(big)}),
		ev("3", "user.login", "after-big", at, nil),
		ev("4", "user.login", "deep", at, map[string]*structpb.Value{"deep": nest(200, structpb.NewStringValue("bottom"))}),
		ev("5", "user.login", "deep-garbage", at, map[string]*structpb.Value{"deep": nest(80, structpb.NewNumberValue(math.Inf(1)))}),
		ev("6", "user.login", "non-utf8", at, map[string]*structpb.Value{"bad\xff": structpb.NewStringValue("v\xc3\x28")}),
		ev("7", "user.login", "numbers", at, map[string]*structpb.Value{
			"nan": structpb.NewNumberValue(math.NaN()), "inf": structpb.NewNumberValue(math.Inf(1)),
			"ninf": structpb.NewNumberValue(math.Inf(-1)), "big": structpb.NewNumberValue(1 << 63),
			"negzero": structpb.NewNumberValue(math.Copysign(0, -1)), "int": structpb.NewNumberValue(42),
		}),
		ev("8", "user.login", "empty-and-null", at, map[string]*structpb.Value{"": structpb.NewStringValue("empty key"),
			"null": structpb.NewNullValue(), "unset": {}, "nilvalue": nil, "list": list}),
		ev("9", "user.login", "bad-time", at, map[string]*structpb.Value{"time": structpb.NewStringValue("not a time")}),
	)
	// Envelopes a server could also get wrong: no type (taken from the
	// body), no time at all, no body, no event at all.
	noType := ev("10", "", "no-type", at, map[string]*structpb.Value{"event": structpb.NewStringValue("session.start")})
	noTime := ev("11", "user.login", "no-time", at, nil)
	noTime.Event.Time = nil
	delete(noTime.Event.Unstructured.Fields, "time")
	noBody := ev("12", "user.login", "no-body", at, nil)
	noBody.Event.Unstructured = nil
	noEvent := &auditlogpb.ExportEventUnstructured{Cursor: "13"}
	s.chunk(day, "c2", noType, noTime, noBody, noEvent, ev("14", "user.login", "last", at, nil))

	e := h.startScripted(s)
	got := collect(t, e, 14, 200*time.Millisecond)
	require.NoError(t, shutdown(e))
	require.Len(t, got, 14, "every event exactly once, the 3 MiB one included")

	m := byUID(got)
	assert.Equal(t, "raw", m["unknown-type"]["payload"], "an unknown event type passes through raw")
	assert.Equal(t, "x.unknown.v99", m["unknown-type"]["event"])
	assert.Len(t, m["big"]["blob"], len(big), "the 3 MiB event is exported whole")
	assert.Contains(t, m, "after-big", "nothing stalls behind it")

	d := m["deep"]["deep"]
	for i := 0; i < record.MaxDepth; i++ {
		d = d.(map[string]any)["d"]
	}
	assert.IsType(t, "", d, "past MaxDepth a value is kept as JSON text")
	assert.Contains(t, d, `"bottom"`)
	g := m["deep-garbage"]["deep"]
	for i := 0; i < record.MaxDepth; i++ {
		g = g.(map[string]any)["d"]
	}
	assert.Contains(t, g, `"+Inf"`, "garbage past MaxDepth is kept, not dropped")

	assert.Equal(t, "v\xc3\x28", m["non-utf8"]["bad\xff"], "invalid UTF-8 passes through byte for byte")
	nums := m["numbers"]
	assert.True(t, math.IsNaN(nums["nan"].(float64)))
	assert.True(t, math.IsInf(nums["inf"].(float64), 1))
	assert.True(t, math.IsInf(nums["ninf"].(float64), -1))
	assert.Equal(t, float64(1<<63), nums["big"], "2^63 does not fit an int64: stays a float")
	assert.EqualValues(t, 42, nums["int"])
	assert.EqualValues(t, 0, nums["negzero"])
	en := m["empty-and-null"]
	assert.Equal(t, "empty key", en[""])
	assert.Nil(t, en["null"])
	assert.Nil(t, en["unset"])
	assert.Contains(t, en, "nilvalue")
	assert.Len(t, en["list"], 4)
	assert.Equal(t, "not a time", m["bad-time"]["time"], "the body is never rewritten")
	assert.Equal(t, "session.start", m["no-type"]["event"])
	assert.Contains(t, m, "no-time")
	assert.Contains(t, got, map[string]any{}, "an event without a body is an empty record, not lost")
	assert.Contains(t, m, "last")

	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Greater(t, st.Export.NextDay, day, "the day is exported and closed")
}

// Duplicate, out-of-order and empty cursors from the server, with a stream
// that breaks and a crash in the middle: no event is lost, none is skipped;
// what comes twice is what the server's own cursors make it send again.
func TestHostileDuplicateAndOutOfOrderCursors(t *testing.T) {
	h := newHarness(t)
	s := newScripted()
	at := start.Add(time.Hour)
	day := at.Format(cursor.DayLayout)
	curs := []string{"c5", "c3", "c3", "c9", "", "c1", "c1", "c7", "c2", "c8"}
	var evs []*auditlogpb.ExportEventUnstructured
	var want []string
	for i := 0; i < 300; i++ {
		uid := fmt.Sprintf("ev-%03d", i)
		want = append(want, uid)
		cur := curs[i%len(curs)]
		if cur != "" {
			cur = fmt.Sprintf("%s-%d", cur, i/len(curs))
		}
		evs = append(evs, ev(cur, "user.login", uid, at.Add(time.Duration(i)*time.Second),
			map[string]*structpb.Value{"pad": structpb.NewStringValue(strings.Repeat("p", 1024))}))
	}
	s.chunk(day, "dup", evs...)
	s.breakc["dup"] = 37 // the first stream breaks after 37 events

	h.cfg.CallbackBytes = conf64K // ~60 of these 1 KiB events per callback
	e := h.startScripted(s)
	first := uidsOf(collect(t, e, 120, 0))
	require.Less(t, len(first), len(want), "the crash comes in the middle")
	crash(e) // kill -9: what the last callback returned is not committed
	e = h.startScripted(s)
	rest := uidsOf(collectUntil(t, e, func(got []map[string]any) bool { return isSubset(uidsOf(got), want[len(want)-1:]) }))
	require.NoError(t, shutdown(e))

	all := append(first, rest...)
	assert.Subset(t, all, want, "no event lost")
	assert.Subset(t, want, all, "nothing the server does not hold")
	_, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err, "the state stays valid")
	t.Logf("%d events, %d records over the crash (duplicates come from the server's repeated and empty cursors)", len(want), len(all))
}

const conf64K = 64 << 10

// The same chunk listed twice by the server is exported once.
func TestHostileChunkNames(t *testing.T) {
	h := newHarness(t)
	s := newScripted()
	at := start.Add(time.Hour)
	day := at.Format(cursor.DayLayout)
	s.chunk(day, "twice", ev("1", "user.login", "a", at, nil), ev("2", "user.login", "b", at, nil))
	s.chunk(day, "twice", ev("1", "user.login", "a", at, nil), ev("2", "user.login", "b", at, nil))
	s.chunk(day, "other", ev("1", "user.login", "c", at, nil))
	e := h.startScripted(s)
	got := uidsOf(collect(t, e, 3, 300*time.Millisecond))
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, []string{"a", "b", "c"}, got, "a chunk listed twice is exported once")
	assert.NotContains(t, h.log.String(), "cannot save the cursor")
}

// A chunk without a name (a broken server) in today's export: it cannot be
// asked for nor held in the cursor, so it is skipped with one warning, and
// the other chunks keep flowing with the cursor saved as usual. Before the
// fix its cursor made every save fail and stalled the whole export.
func TestHostileEmptyChunkName(t *testing.T) {
	h := newHarness(t)
	s := newScripted()
	today := h.now.Add(-time.Hour)
	day := today.Format(cursor.DayLayout)
	pad := map[string]*structpb.Value{"pad": structpb.NewStringValue(strings.Repeat("p", 1024))}
	var nameless, named []*auditlogpb.ExportEventUnstructured
	var want []string
	for i := 0; i < 150; i++ {
		nameless = append(nameless, ev(fmt.Sprint(i+1), "user.login", fmt.Sprintf("nameless-%d", i), today, pad))
		named = append(named, ev(fmt.Sprint(i+1), "user.login", fmt.Sprintf("named-%d", i), today, pad))
		want = append(want, fmt.Sprintf("named-%d", i))
	}
	s.chunk(day, "", nameless...)
	s.chunk(day, "named", named...)
	h.cfg.CallbackBytes = conf64K
	e := h.startScripted(s)
	got := uidsOf(collectUntil(t, e, func(got []map[string]any) bool { return isSubset(uidsOf(got), want) }))
	require.NoError(t, shutdown(e))
	assert.Subset(t, got, want, "the named chunk is exported whole")
	assert.NotContains(t, h.log.String(), "cannot save the cursor", "the cursor never becomes unsavable")
	assert.Equal(t, 1, strings.Count(h.log.String(), "a chunk without a name"), "one warning:\n%s", h.log.String())
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.True(t, st.Export.Days[day].DoneSet.Has("named"))
}

// The search path with duplicate and empty event ids across a restart in
// the middle of a page: nothing lost, nothing skipped.
func TestHostileSearchIDs(t *testing.T) {
	h := newHarness(t)
	h.auth.noExport = true
	h.cfg.Batch = 10
	h.cfg.WindowSize = 30 * time.Minute
	var want []string
	h.auth.mu.Lock()
	for i := 0; i < 120; i++ {
		t0 := start.Add(time.Hour + time.Duration(i)*10*time.Second)
		uid := fmt.Sprintf("s-%03d", i)
		id := uid
		switch i % 7 {
		case 3:
			id = "" // no id
		case 5:
			id = "dup" // the same id again and again
		}
		body, _ := structpb.NewStruct(map[string]any{"event": "user.login", "uid": uid, "time": t0.Format(time.RFC3339Nano)})
		h.auth.all = append(h.auth.all, &auditlogpb.EventUnstructured{Type: "user.login", Id: id, Time: timestamppb.New(t0), Unstructured: body})
		want = append(want, uid)
	}
	h.auth.mu.Unlock()
	e := h.start()
	first := uidsOf(collect(t, e, 45, 0))
	require.NoError(t, shutdown(e))
	e = h.start()
	rest := uidsOf(collect(t, e, len(want)-len(first), 300*time.Millisecond))
	require.NoError(t, shutdown(e))
	all := append(first, rest...)
	assert.Subset(t, all, want, "no event lost")
	assert.Subset(t, want, all)
}

// A full disk under storage_dir (a tmpfs filled up): hand-over stops at
// once, one error line says so, the last good state stays on disk
// untouched, and once there is room again the export continues where it
// was, nothing lost, nothing twice.
func TestHostileDiskFull(t *testing.T) {
	h := newHarness(t)
	if err := syscall.Mount("tmpfs", mkdir(t, h.cfg.StorageDir), "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): cursor's TestSaveFailureKeepsPreviousState covers write failures with its hooks", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(h.cfg.StorageDir, syscall.MNT_DETACH) })
	want := h.auth.add(start.Add(time.Hour), time.Minute, 1500, "user.login")
	h.cfg.CallbackBytes = conf64K
	e := h.start()
	got := drain(t, e, 300, true)
	path := h.cfg.StorageDir + "/state.json"
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	filler := fill(t, h.cfg.StorageDir)

	// The next callback is handed over and its commit fails: from then on,
	// nothing more. (Under load the drained callbacks may still be waiting
	// for their commit: then that commit is the one that fails, and this
	// callback stays empty.)
	var b []byte
	for end := time.Now().Add(10 * time.Second); len(b) == 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(h.log.String(), "cannot save the cursor") {
			break
		}
		b = e.Collect()
	}
	if len(b) > 0 {
		got = append(got, uids(t, b)...)
		e.Handed()
		time.Sleep(h.cfg.CommitDelay) // the next callback commits it
	}
	for i := 0; i < 50; i++ {
		assert.Empty(t, e.Collect(), "nothing is handed over while the cursor cannot be saved")
		time.Sleep(2 * time.Millisecond)
	}
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(good), string(now), "the last good state is kept")
	assert.ElementsMatch(t, []string{"filler", "lock", "state.json"}, dirNames(t, h.cfg.StorageDir), "no temporary file left behind")
	assert.Equal(t, 1, strings.Count(h.log.String(), "cannot save the cursor"), "said once:\n%s", h.log.String())
	assert.Contains(t, h.log.String(), "no space left on device")

	require.NoError(t, os.Remove(filler))
	got = append(got, drain(t, e, len(want)-len(got), true)...)
	require.NoError(t, shutdown(e))
	assert.Equal(t, 1, strings.Count(h.log.String(), "cursor saved again"))
	assert.ElementsMatch(t, want, got, "every event exactly once")
}

func mkdir(t *testing.T, dir string) string {
	require.NoError(t, os.MkdirAll(dir, 0o700))
	return dir
}

// fill writes dir/filler until the file system is full.
func fill(t *testing.T, dir string) string {
	path := dir + "/filler"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// A recording stream with repeated and out-of-order indices: repeats are
// dropped, nothing crashes, the recording ends.
func TestHostileRecordingIndices(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	sid := "sess-hostile"
	at := start.Add(time.Hour)
	h.auth.addSession(sid, at, 0)
	var evs []*auditlogpb.EventUnstructured
	for _, i := range []int64{0, 1, 1, 2, 4, 3, 5, 5, 6} {
		body, _ := structpb.NewStruct(map[string]any{"event": "session.data", "uid": fmt.Sprintf("r-%d", i), "ei": float64(i)})
		evs = append(evs, &auditlogpb.EventUnstructured{Type: "session.data", Id: fmt.Sprintf("r-%d", i), Index: i, Time: timestamppb.New(at), Unstructured: body})
	}
	h.auth.mu.Lock()
	h.auth.recordings = map[string][]*auditlogpb.EventUnstructured{sid: evs}
	h.auth.mu.Unlock()
	e := h.start()
	recs := collect(t, e, 2+7, 300*time.Millisecond)
	require.NoError(t, shutdown(e))
	var rec []string
	for _, r := range recs {
		if r[record.SessionIDField] == sid {
			rec = append(rec, r["uid"].(string))
		}
	}
	assert.Equal(t, []string{"r-0", "r-1", "r-2", "r-4", "r-3", "r-5", "r-6"}, rec,
		"repeated indices are dropped; r-3, sent after r-4, is exported all the same")
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Empty(t, st.Sessions, "the recording is finished")
}
