package main

// In-process benchmarks for profiling (the plugin is a .so, so its CPU
// profile is taken here instead):
//
//	go test ./test/bench -run '^$' -bench 'Pipeline|AuditPath|BareDrain' -benchtime 1x -cpuprofile cpu.out
//	go tool pprof -top -cum test/bench/bench.test cpu.out
//
// BenchmarkPipeline runs the whole engine (recordings and locking
// included), BenchmarkAuditPath the audit-event path alone,
// BenchmarkBareDrain a plain teleport/api client. Environment:
//
//	BENCH_N       events per iteration (default 200000)
//	BENCH_AUTH    a running `build/teleportd --dir DIR --events BENCH_N --days 2`:
//	              use it instead of an in-process stand-in, so that the
//	              profile shows the client alone
//	BENCH_EVERY   how often records are taken (default 5ms; 1s is Fluent Bit's)
//	BENCH_CALLBACK_BYTES, BENCH_QUEUE_BYTES   for BenchmarkPipeline
//	BENCH_AS_PLUGIN=1  BenchmarkPipeline as in the plugin: callback buffers
//	              outside the Go heap (mmap, as the plugin's C.malloc) and
//	              the plugin's soft memory limit (engine.SoftMemoryLimit)
//	BENCH_HEAPPROFILE=FILE  a heap profile when half the events are in

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/tinylib/msgp/msgp"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/engine"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// benchServer starts an in-process stand-in holding n events spanning the
// last two days, and writes an identity file for it. With BENCH_AUTH=DIR it
// uses a running build/teleportd --dir DIR --events BENCH_N --days 2
// instead, so that a profile shows the client alone.
func benchServer(b *testing.B, n int) (addr, identity string, start time.Time) {
	b.Helper()
	if dir := os.Getenv("BENCH_AUTH"); dir != "" {
		a, err := os.ReadFile(filepath.Join(dir, "addr"))
		if err != nil {
			b.Fatal(err)
		}
		return string(a), filepath.Join(dir, "identity"), time.Now().Add(-49 * time.Hour)
	}
	dir := b.TempDir()
	s, err := teleportd.Start(teleportd.Options{Dir: filepath.Join(dir, "auth")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	span := 2 * 24 * time.Hour
	start = time.Now().Add(-span)
	s.Generate(teleportd.GenSpec{Start: start, Count: n, Span: span, Seed: 1, Precision: time.Millisecond})
	identity = filepath.Join(dir, "identity")
	if err := s.WriteIdentity(identity, 2*time.Hour); err != nil {
		b.Fatal(err)
	}
	return s.Addr(), identity, start
}

// BenchmarkBareDrain is the bare-drain limit in process: a plain
// teleport/api client exporting every chunk, Concurrency at a time.
func BenchmarkBareDrain(b *testing.B) {
	n := benchN()
	addr, identity, start := benchServer(b, n)
	ctx := context.Background()
	clt, err := dialIdentity(ctx, addr, identity)
	if err != nil {
		b.Fatal(err)
	}
	defer clt.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := bareDrain(ctx, clt, start, time.Now(), 5, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got != int64(n) {
			b.Fatalf("drained %d events, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPipeline runs the engine in process against the stand-in and
// takes records the way Fluent Bit's callbacks do (Collect, then Handed),
// every 5ms (BENCH_EVERY) instead of every second so that the
// fetch/encode/queue path is what is measured, not the collector period.
// Only audit records count towards BENCH_N.
func BenchmarkPipeline(b *testing.B) {
	n := benchN()
	addr, identity, start := benchServer(b, n)
	every := 5 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("BENCH_EVERY")); err == nil {
		every = d
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		storage := filepath.Join(b.TempDir(), "storage")
		props := map[string]string{
			"teleport_addr":     addr,
			"teleport_identity": identity,
			"storage_dir":       storage,
			"start_time":        start.UTC().Add(-time.Hour).Format(time.RFC3339),
			"callback_bytes":    envOr("BENCH_CALLBACK_BYTES", "8M"),
			"queue_bytes":       envOr("BENCH_QUEUE_BYTES", "32M"),
			"poll_interval":     "1s",
		}
		cfg, _, err := conf.Load(func(k string) string { return props[k] }, nil)
		if err != nil {
			b.Fatal(err)
		}
		opts := engine.Options{Log: logging.New(io.Discard, "teleport")}
		if os.Getenv("BENCH_AS_PLUGIN") != "" {
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(engine.SoftMemoryLimit(cfg)))
			opts.Alloc = func(n int) []byte {
				m, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
				if err != nil {
					panic(err)
				}
				return m
			}
			opts.Free = func(m []byte) { _ = syscall.Munmap(m[:cap(m)]) }
		}
		heapAt := int64(n / 2)
		if os.Getenv("BENCH_HEAPPROFILE") == "" {
			heapAt = -1
		}
		b.StartTimer()
		e, err := engine.Start(cfg, opts)
		if err != nil {
			b.Fatal(err)
		}
		var records int64
		next := time.Now()
		for records < int64(n) {
			next = next.Add(every)
			time.Sleep(time.Until(next))
			buf := e.Collect()
			if buf == nil {
				continue
			}
			records += int64(countAudit(buf))
			e.Handed()
			if opts.Free != nil {
				opts.Free(buf) // Fluent Bit copied it into its ring
			}
			if heapAt >= 0 && records >= heapAt {
				heapAt = -1
				writeHeapProfile(b, os.Getenv("BENCH_HEAPPROFILE"))
			}
		}
		b.StopTimer()
		if err := e.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// countAudit counts the records of a buffer that are not recording events.
func countAudit(b []byte) int {
	n := 0
	for len(b) > 0 {
		rec := b
		var err error
		if b, err = msgp.Skip(b); err != nil {
			return n
		}
		if !bytes.Contains(rec[:len(rec)-len(b)], recordingKey) {
			n++
		}
	}
	return n
}

var recordingKey = msgp.AppendString(nil, record.SessionIDField)

// BenchmarkAuditPath is the audit-event path alone, in process: the bulk
// export source (raw path, Concurrency 5) filling the engine's queue, and a
// Fluent-Bit-like loop every BENCH_EVERY taking callback_bytes, copying
// them into one buffer and committing the cursor (apply + durable save).
// No session recordings, no locking: it shows what the audit hot path
// costs and reaches on its own.
func BenchmarkAuditPath(b *testing.B) {
	n := benchN()
	addr, identity, start := benchServer(b, n)
	every := 5 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("BENCH_EVERY")); err == nil {
		every = d
	}
	budget := 64 << 20
	ctx := context.Background()
	clt, err := teleport.Dial(ctx, addr, client.LoadIdentityFile(identity))
	if err != nil {
		b.Fatal(err)
	}
	defer clt.Close()
	quiet := logging.New(io.Discard, "teleport")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store, err := cursor.Open(filepath.Join(b.TempDir(), "storage"))
		if err != nil {
			b.Fatal(err)
		}
		from := start.UTC().Add(-time.Hour)
		st := cursor.New(from)
		work := &cursor.Export{NextDay: from.Format(cursor.DayLayout)}
		q := engine.NewQueue(budget, nil)
		src := &teleport.ExportSource{API: clt, Filter: teleport.NewFilter(nil, nil, from), Concurrency: 5,
			Poll: time.Hour, Log: quiet, Now: time.Now}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = src.Run(rctx, work, q) }()
		var items []record.Item
		records := 0
		next := time.Now()
		for records < n {
			next = next.Add(every)
			time.Sleep(time.Until(next))
			items = q.Take(items[:0], budget)
			size := 0
			for k := range items {
				size += len(items[k].Data)
			}
			buf := make([]byte, 0, size)
			for k := range items {
				buf = append(buf, items[k].Data...)
				if items[k].Data != nil {
					records++
				}
				if items[k].Pos.Kind != 0 {
					st.Apply(&items[k].Pos)
				}
				items[k] = record.Item{}
			}
			if len(items) > 0 {
				if err := store.Save(st); err != nil {
					b.Fatal(err)
				}
			}
		}
		cancel()
		<-done
		store.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
