package teleportd

import (
	"testing"
	"time"
)

func BenchmarkAppend(b *testing.B) {
	st := newStore("acc", 0)
	st.generate(GenSpec{Start: base, Count: 1000000, Span: 24 * time.Hour, Seed: 1})
	seg := st.segsAsc[0]
	n := 0
	for i := 0; i < b.N; i++ {
		w := pbw{b: make([]byte, 0, 600)}
		seg.appendEvent(&w, i%1000000)
		n += len(w.b)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/ev")
}
