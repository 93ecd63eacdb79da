package teleportd

import (
	"context"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// rawRecvCodec is a client codec that keeps each received message's bytes
// (into *rawMsg, reusing its buffer), so that the benchmarks measure the
// stand-in and the transport rather than the client's decoding, like the
// plugin's raw path.
type rawRecvCodec struct{ encoding.CodecV2 }

func (c rawRecvCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMsg); ok {
		r.b = r.b[:0]
		for _, b := range data {
			r.b = append(r.b, b.ReadOnlyData()...)
		}
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// streamRaw streams sid's recording from start, raw; it returns the number
// of events.
func streamRaw(ctx context.Context, clt *client.Client, sid string, start int64, m *rawMsg) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := clt.GetConnection().NewStream(ctx, &auditlogpb.AuditLogService_ServiceDesc.Streams[0],
		auditlogpb.AuditLogService_StreamUnstructuredSessionEvents_FullMethodName,
		grpc.ForceCodecV2(rawRecvCodec{encoding.GetCodecV2("proto")}))
	if err != nil {
		return 0, err
	}
	if err := cs.SendMsg(&auditlogpb.StreamUnstructuredSessionEventsRequest{SessionId: sid, StartIndex: int32(start)}); err != nil {
		return 0, err
	}
	if err := cs.CloseSend(); err != nil {
		return 0, err
	}
	n := 0
	for {
		if err := cs.RecvMsg(m); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// cpuTime is the CPU time (user + system) of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// uploadedSessions returns the sids of the generated sessions that have a
// recording.
func uploadedSessions(t testing.TB, s *Server) []string {
	var sids []string
	for _, g := range s.store.snapshot().segsAsc {
		for i := 0; i < g.count; i++ {
			if g.typeAt(i) != "session.upload" {
				continue
			}
			var w pbw
			g.appendEvent(&w, i)
			ev := &auditlogpb.EventUnstructured{}
			if err := proto.Unmarshal(w.b, ev); err != nil {
				t.Fatal(err)
			}
			sids = append(sids, ev.GetUnstructured().GetFields()["sid"].GetStringValue())
		}
	}
	return sids
}

// BenchmarkStreamRecording streams generated recordings over the stand-in's
// gRPC with a raw client (so mostly the stand-in's and the transport's cost
// is measured): "long" one 200,000-event recording per op, "sessions" the
// recordings of generated audit sessions (4-63 events each, as in make
// bench), 256 per op. allocs/event and cpu-ns/event (the process's CPU
// time) count both sides.
func BenchmarkStreamRecording(b *testing.B) {
	run := func(b *testing.B, s *Server, sids []string, per int) {
		clt := identityClient(b, s)
		ctx := context.Background()
		var m rawMsg
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuTime()
		b.ResetTimer()
		events, k := 0, 0
		for i := 0; i < b.N; i++ {
			for j := 0; j < per; j++ {
				n, err := streamRaw(ctx, clt, sids[k%len(sids)], 0, &m)
				if err != nil {
					b.Fatal(err)
				}
				k++
				events += n
			}
		}
		b.StopTimer()
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(events), "allocs/event")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(events), "B/event")
	}
	b.Run("long", func(b *testing.B) {
		s := startServer(b, Options{})
		s.GenerateRecording("bench", 200_000, 1)
		run(b, s, []string{"bench"}, 1)
	})
	b.Run("sessions", func(b *testing.B) {
		s := startServer(b, Options{})
		s.Generate(GenSpec{Start: base, Count: 100_000, Span: time.Hour, Seed: 3})
		sids := uploadedSessions(b, s)
		if len(sids) < 1000 {
			b.Fatalf("%d recordings", len(sids))
		}
		run(b, s, sids, 256)
	})
}
