package cursor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCommit is one callback's commit as the engine does it: apply the
// positions of a callback's records (100,000 events from 5 chunks in
// flight, as at 100,000 events/s with a 1 s collector), then save durably.
// One op is one callback; the per-event cost is ns/op / 100,000.
//
// The sessions variants hold that many announced recordings in the state,
// as after a backlog with session.upload events whose recordings are not
// exported yet: every commit rewrites all of them.
//
// The open_days variants keep that many past days open (export_late_horizon)
// with 1,440 finished chunks each (Athena: one a minute), as done_set.
func BenchmarkCommit(b *testing.B) {
	type variant struct{ sessions, openDays int }
	for _, v := range []variant{{0, 0}, {10_000, 0}, {100_000, 0}, {0, 15}} {
		sessions := v.sessions
		name := fmt.Sprintf("sessions=%d", sessions)
		if v.openDays > 0 {
			name = fmt.Sprintf("open_days=%d", v.openDays)
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "s"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			st := fixtureExport(300)
			at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
			for d := 0; d < v.openDays; d++ {
				day := &Day{}
				for c := 0; c < 1440; c++ {
					day.DoneSet.Add(fmt.Sprintf("0193%04x-%04x-7c4e-9f00-2b5e6a1c3d4f", d, c))
				}
				st.Export.Days[fmt.Sprintf("2024-03-%02d", 3+d)] = day
			}
			for i := 0; i < sessions; i++ {
				st.AnnounceSession(Announce{SessionID: fmt.Sprintf("%08x-6e30-4eb4-9dbf-cf2914d15e1c", i), At: at})
			}
			const perCallback = 100_000
			pos := make([]Pos, perCallback)
			for i := range pos {
				pos[i] = Pos{Kind: PosChunk, Day: "2024-03-02", Chunk: fmt.Sprintf("chunk-%04d-7f3c9a1e", 2*(i%5)+1),
					Cursor: fmt.Sprintf(`{"offset":%d}`, i)}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range pos {
					st.Apply(&pos[k])
				}
				if err := s.Save(st); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if fi, err := os.Stat(s.Path()); err == nil {
				b.ReportMetric(float64(fi.Size()), "state_bytes")
			}
		})
	}
}
