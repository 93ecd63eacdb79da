package teleport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/internal/testlog"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// samples are real Teleport v13.3.8 audit events, one of each kind
// (testdata/teleport-v13-audit-events.jsonl, from ../shared/samples).
func samples(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open("testdata/teleport-v13-audit-events.jsonl")
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// asRecord is a sample as the record body should hold it: integers as
// int64, other numbers as float64.
func asRecord(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = asRecord(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = asRecord(e)
		}
		return l
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// readRecording reads sid's whole recording through a fresh source (a new
// connection's worth of Compat), legacy or not per the server's switch.
func readRecording(t *testing.T, api SessionAPI, log *logging.Logger, sid string) []record.Item {
	t.Helper()
	c := &collect{}
	src := &SessionSource{API: api, Log: log, Now: time.Now}
	src.init()
	_, done, err := src.stream(context.Background(), &job{id: sid}, c)
	require.NoError(t, err, sid)
	require.True(t, done, sid)
	return c.items
}

// Each sample kind, as a recording event and as a searched audit event,
// makes exactly the same record through the legacy RPCs (typed events
// converted with events.ToUnstructured) as through the unstructured ones,
// and that record is the sample: same fields, same JSON shape, integers
// still integers.
func TestLegacyMatchesUnstructuredOnSamples(t *testing.T) {
	s, clt := standIn(t)
	ctx := context.Background()
	evs := samples(t)
	var toAdd []teleportd.Event
	for _, sm := range evs {
		toAdd = append(toAdd, teleportd.Event{Fields: sm})
	}
	s.Add(toAdd...)
	search := func(legacy bool) (items []record.Item, keys []string) {
		s.SetSearchUnimplemented(legacy)
		defer s.SetSearchUnimplemented(false)
		src := &SearchSource{API: clt, Log: quiet, Batch: 5, Filter: NewFilter(nil, nil, time.Time{})}
		key := ""
		for {
			page, next, err := src.search(ctx, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), src.Batch, key)
			require.NoError(t, err)
			for _, ev := range page {
				items = append(items, encode(ev, src.Filter, quiet))
				keys = append(keys, ev.GetId())
			}
			if next == "" {
				return items, keys
			}
			keys = append(keys, "page:"+next)
			key = next
		}
	}
	unItems, unKeys := search(false)
	legItems, legKeys := search(true)
	require.Len(t, unItems, len(evs))
	assert.Equal(t, unKeys, legKeys, "same ids and page keys")
	byType := map[string]record.Item{}
	for i := range unItems {
		sameItem(t, unItems[i], legItems[i], "search ", i)
		_, body, _, err := record.Decode(legItems[i].Data)
		require.NoError(t, err)
		byType[body["event"].(string)] = legItems[i]
	}

	for _, sm := range evs {
		typ := sm["event"].(string)
		t.Run(typ, func(t *testing.T) {
			sid := "sample-" + typ
			s.AddRecording(sid, []teleportd.Event{{Fields: sm}})
			un := readRecording(t, clt, quiet, sid)
			s.SetRecordingsUnimplemented(true)
			leg := readRecording(t, clt, quiet, sid)
			s.SetRecordingsUnimplemented(false)
			require.Len(t, un, 2, "the event and the end")
			require.Len(t, leg, 2)
			sameItem(t, un[0], leg[0], "recording")
			sameItem(t, un[1], leg[1], "end")

			_, body, _, err := record.Decode(leg[0].Data)
			require.NoError(t, err)
			assert.Equal(t, sid, body[record.SessionIDField])
			delete(body, record.SessionIDField)
			assert.Equal(t, asRecord(sm), body, "the record is the sample")

			it, ok := byType[typ]
			require.True(t, ok, "searched too")
			_, body, _, err = record.Decode(it.Data)
			require.NoError(t, err)
			assert.Equal(t, asRecord(sm), body, "the searched record is the sample")
		})
	}
}

// Generated recordings (print and desktop.recording events, which have no
// uid and carry their data outside the typed JSON, resize, session.leave)
// and generated audit events of every kind make the same records both ways.
func TestLegacyMatchesUnstructuredOnGenerated(t *testing.T) {
	s, clt := standIn(t)
	desktop := false
	for i := 0; i < 16; i++ {
		sid := fmt.Sprintf("gen-%02d", i)
		s.GenerateRecording(sid, 60, int64(i))
		un := readRecording(t, clt, quiet, sid)
		s.SetRecordingsUnimplemented(true)
		leg := readRecording(t, clt, quiet, sid)
		s.SetRecordingsUnimplemented(false)
		require.Len(t, leg, len(un), sid)
		for k := range un {
			sameItem(t, un[k], leg[k], sid, " ", k)
			if un[k].Data != nil {
				_, body, _, err := record.Decode(un[k].Data)
				require.NoError(t, err)
				desktop = desktop || body["event"] == "desktop.recording"
			}
		}
	}
	assert.True(t, desktop, "desktop.recording events compared too")

	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	s.Generate(teleportd.GenSpec{Start: start, Count: 3000, Span: time.Hour, Seed: 9, ChunkSize: 1000})
	read := func(legacy bool) []record.Item {
		s.SetSearchUnimplemented(legacy)
		defer s.SetSearchUnimplemented(false)
		src := &SearchSource{API: clt, Log: quiet, Batch: 700, Filter: NewFilter(nil, nil, time.Time{})}
		var out []record.Item
		for key := ""; ; {
			page, next, err := src.search(context.Background(), start, start.Add(time.Hour), src.Batch, key)
			require.NoError(t, err)
			for _, ev := range page {
				out = append(out, encode(ev, src.Filter, quiet))
			}
			if key = next; key == "" {
				return out
			}
		}
	}
	un, leg := read(false), read(true)
	require.Len(t, un, 3000)
	require.Len(t, leg, len(un))
	for i := range un {
		sameItem(t, un[i], leg[i], "search ", i)
	}
	assert.Positive(t, s.Stats().GetEvents)
	assert.Positive(t, s.Stats().StreamSessionEvents)
}

// The switch is made once per connection and said once, at info, naming
// both RPCs; a server that comes back with the unstructured RPC is not
// asked again on that connection.
func TestLegacySwitchIsLoggedOncePerConnection(t *testing.T) {
	s, clt := standIn(t)
	var buf testlog.Buffer
	log := logging.New(&buf, "teleport")
	s.SetRecordingsUnimplemented(true)
	compat := &Compat{Log: log}
	for i := 0; i < 3; i++ {
		sid := fmt.Sprintf("once-%d", i)
		s.GenerateRecording(sid, 10, int64(i))
		c := &collect{}
		src := &SessionSource{API: clt, Log: log, Now: time.Now, Compat: compat}
		src.init()
		_, done, err := src.stream(context.Background(), &job{id: sid}, c)
		require.NoError(t, err)
		require.True(t, done)
	}
	out := buf.String()
	assert.Equal(t, 1, strings.Count(out, "answers Unimplemented"), out)
	assert.Contains(t, out, "[ info]")
	assert.Contains(t, out, "StreamUnstructuredSessionEvents")
	assert.Contains(t, out, "/proto.AuthService/StreamSessionEvents")
	assert.Equal(t, int64(1), s.Stats().StreamUnstructuredSessionEvents, "asked once, then the legacy RPC only")
	assert.Equal(t, int64(3), s.Stats().StreamSessionEvents)
}

// unimplementedRecordings is a server without any recording RPC the
// source can use (no legacy API either).
type unimplementedRecordings struct{}

func (unimplementedRecordings) StreamUnstructuredSessionEvents(context.Context, string, int64) (chan *auditlogpb.EventUnstructured, chan error) {
	e := make(chan error, 1)
	e <- status.Error(codes.Unimplemented, "unknown method StreamUnstructuredSessionEvents")
	return make(chan *auditlogpb.EventUnstructured), e
}

// Unimplemented is the server's shortcoming, not the recording's: however
// often it comes, the recording is neither counted as failing nor given up,
// and it is exported once a server answers.
func TestUnimplementedNeverGivesARecordingUp(t *testing.T) {
	var buf testlog.Buffer
	s := &SessionSource{API: unimplementedRecordings{}, Concurrency: 1, Log: logging.New(&buf, "teleport"), Now: time.Now,
		MaxAttempts: 1, GiveUpAfter: time.Nanosecond, RetryInterval: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &collect{}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, sink) }()
	s.Add("s-1", cursor.Session{Announced: time.Now().Add(-time.Hour)})
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.jobs["s-1"]
		return j != nil && j.unimpl >= 4
	}, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Empty(t, sink.items, "nothing given up, nothing ended")
	known, _ := s.Pending()
	assert.Equal(t, 1, known, "still to export")
	assert.NotContains(t, buf.String(), "giving up")
	assert.Equal(t, 1, strings.Count(buf.String(), "cannot read recordings"), "one warning")

	// Against the stand-in (which serves the legacy RPC), a recording that
	// keeps answering Unimplemented on both is not given up either.
	st, clt := standIn(t)
	st.GenerateRecording("s-2", 10, 1)
	st.SetRecordingsUnimplemented(true)
	st.SetRecordingFailing("s-2", codes.Unimplemented, 3)
	src := &SessionSource{API: clt, Concurrency: 1, Log: quiet, Now: time.Now, MaxAttempts: 1, GiveUpAfter: time.Hour, RetryInterval: time.Millisecond}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	sink2 := &collect{}
	go func() { _ = src.Run(ctx, sink2) }()
	src.Add("s-2", cursor.Session{Announced: time.Now()})
	sink2.waitSessionDone(t)
	sink2.mu.Lock()
	defer sink2.mu.Unlock()
	last := sink2.items[len(sink2.items)-1]
	assert.Nil(t, last.Pos.GivenUp, "exported, not given up")
	assert.Len(t, sink2.items, 11)
}

// A recording given up carries why, when and how far it got to the cursor.
func TestGiveUpCarriesReason(t *testing.T) {
	st, clt := standIn(t)
	st.GenerateRecording("s-3", 10, 1)
	st.SetRecordingBreakAfter("s-3", 4, -1)
	src := &SessionSource{API: clt, Concurrency: 1, Log: quiet, Now: time.Now, MaxAttempts: 2, GiveUpAfter: time.Hour, RetryInterval: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &collect{}
	go func() { _ = src.Run(ctx, sink) }()
	src.Add("s-3", cursor.Session{Announced: time.Now()})
	sink.waitSessionDone(t)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	g := sink.items[len(sink.items)-1].Pos.GivenUp
	require.NotNil(t, g)
	assert.Contains(t, g.Reason, "failed 2 times")
	assert.WithinDuration(t, time.Now(), g.At, time.Minute)
	// Four events a try, each try resuming after the last: every event
	// came, the end never did; the tries that made progress did not count.
	assert.Equal(t, int64(10), g.Next)
}
