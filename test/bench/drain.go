package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/teleport/api/breaker"
	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/tinylib/msgp/msgp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// dialIdentity connects a plain teleport/api client with an identity file,
// the way the plugin does (teleport.Dial).
func dialIdentity(ctx context.Context, addr, identity string) (*client.Client, error) {
	return client.New(ctx, client.Config{
		Addrs:                []string{addr},
		Credentials:          []client.Credentials{client.LoadIdentityFile(identity)},
		DialTimeout:          15 * time.Second,
		CircuitBreakerConfig: breaker.NoopBreakerConfig(),
		DialOpts:             []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128 << 20))},
	})
}

type dayChunk struct {
	day   time.Time
	chunk string
}

// listAllChunks lists the export chunks of every UTC day from `from` to `to`.
func listAllChunks(ctx context.Context, clt *client.Client, from, to time.Time) ([]dayChunk, error) {
	var out []dayChunk
	for d := from.UTC().Truncate(24 * time.Hour); !d.After(to); d = d.Add(24 * time.Hour) {
		st := clt.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(d)})
		var names []string
		for st.Next() {
			names = append(names, st.Item().GetChunk())
		}
		if err := st.Done(); err != nil {
			return nil, fmt.Errorf("listing chunks of %s: %w", d.Format("2006-01-02"), err)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, dayChunk{d, n})
		}
	}
	return out, nil
}

// bareDrain exports every chunk of the days from `from` to `to`, concurrency
// chunks at a time, and discards the events: the limit of what any client
// of the export API can fetch. each, when set, sees every event.
func bareDrain(ctx context.Context, clt *client.Client, from, to time.Time, concurrency int, each func(*auditlogpb.ExportEventUnstructured)) (int64, error) {
	chunks, err := listAllChunks(ctx, clt, from, to)
	if err != nil {
		return 0, err
	}
	var (
		n    atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		work = make(chan dayChunk)
	)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				st := clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(c.day), Chunk: c.chunk})
				k := int64(0)
				for st.Next() {
					if each != nil {
						each(st.Item())
					}
					k++
				}
				n.Add(k)
				if err := st.Done(); err != nil && err != io.EOF {
					mu.Lock()
					ferr = fmt.Errorf("exporting chunk %s: %w", c.chunk, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range chunks {
		work <- c
	}
	close(work)
	wg.Wait()
	return n.Load(), ferr
}

// countRecords counts the Fluent Bit events in a buffer of back-to-back
// msgpack events.
func countRecords(b []byte) int {
	n := 0
	for len(b) > 0 {
		var err error
		if b, err = msgp.Skip(b); err != nil {
			return n
		}
		n++
	}
	return n
}
