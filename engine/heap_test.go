package engine

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

// BenchmarkRecordingHeap measures the Go heap one recording in flight
// holds while it waits for a worker: its job in the session source, its
// entry in the committed state, and in the staged or taken callbacks its
// two announcements (session.end, session.upload) and its merged position.
// What sizes maxActiveSessions against the plugin's soft memory limit.
func BenchmarkRecordingHeap(b *testing.B) {
	const k = maxActiveSessionsDefault
	at := time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)
	var perRec float64
	for i := 0; i < b.N; i++ {
		ids := make([]string, k)
		for j := range ids {
			ids[j] = fmt.Sprintf("%08x-0000-4000-8000-%012x", j, i) // a session UUID
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		src := &teleport.SessionSource{Log: logging.Default, Now: time.Now}
		st := cursor.New(at)
		var s stage
		for j, id := range ids {
			for _, byEnd := range []bool{true, false} {
				a := &cursor.Announce{SessionID: id, At: at, ByEnd: byEnd}
				s.add(&record.Item{Time: at, Announce: a, Pos: cursor.Pos{Kind: cursor.PosChunk, Day: "2026-11-18", Chunk: "c", Cursor: "x"}}, false)
				st.AnnounceSession(*a)
			}
			src.Add(id, *st.Sessions[id])
			s.add(&record.Item{Time: at, Pos: cursor.Pos{Kind: cursor.PosSession, ID: id, Index: int64(j)}}, true)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perRec = float64(m1.HeapAlloc-m0.HeapAlloc) / k
		runtime.KeepAlive(src)
		runtime.KeepAlive(st)
		runtime.KeepAlive(&s)
	}
	b.ReportMetric(perRec, "B/recording")
	b.ReportMetric(perRec*k/(1<<20), "MB/bound")
}
