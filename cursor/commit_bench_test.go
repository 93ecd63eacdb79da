package cursor

import (
	"fmt"
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
func BenchmarkCommit(b *testing.B) {
	for _, sessions := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "s"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			st := fixtureExport(300)
			at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
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
		})
	}
}
