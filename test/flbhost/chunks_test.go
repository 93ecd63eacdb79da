package flbhost_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
)

// fsMaxSize is Fluent Bit's FLB_INPUT_CHUNK_FS_MAX_SIZE: a chunk over it
// is locked and the next callback opens a new one.
const fsMaxSize = 2048000

// callbackLens returns the length of every callback the fake plugin made.
func (r *run) callbackLens(t *testing.T) []int {
	var out []int
	for _, c := range r.calls(t) {
		if c.name == "Callback" && c.int(t, "len") > 0 {
			out = append(out, c.int(t, "len"))
		}
	}
	return out
}

// A callback goes whole into one chunk, however large (Fluent Bit never
// splits it), and a chunk takes callbacks until it is over 2,048,000 bytes
// or the engine flushes it.
func TestCallbackGoesWholeIntoOneChunk(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		records   string // about 90 bytes each
		interval  int
		flush     int
		callbacks int // per chunk
	}{
		// ~3 MB a callback: each locks its chunk at once.
		{name: "a callback over the lock size is a chunk of its own", records: "34000", interval: 200, flush: 60000, callbacks: 1},
		// ~720 KB a callback, no flush meanwhile: the third takes a chunk
		// over 2,048,000 bytes and locks it.
		{name: "callbacks fill a chunk until it is over the lock size", records: "8000", interval: 50, flush: 60000, callbacks: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, flbhost.Options{Props: [][2]string{{"records", tc.records}},
				IntervalMS: tc.interval, FlushMS: tc.flush})
			require.NoError(t, r.h.WaitReady(20*time.Second))
			r.waitCalls(t, "Cleanup", 2*tc.callbacks, 30*time.Second)
			require.NoError(t, r.h.Stop())

			// No flush ran before the shutdown: every chunk but the last
			// was locked by the callback that took it over the lock size.
			lens := r.callbackLens(t)
			require.GreaterOrEqual(t, len(lens), 2*tc.callbacks)
			var chunks []int
			open := 0
			for _, l := range lens {
				if open += l; open > fsMaxSize {
					chunks, open = append(chunks, open), 0
				}
			}
			s := r.summary(t)
			assert.Equal(t, int64(len(chunks)+min(open, 1)), s["chunks"])
			assert.Equal(t, int64(tc.callbacks), s["max_chunk_callbacks"])
			assert.Equal(t, int64(slices.Max(chunks)), s["max_chunk_bytes"], "chunks of whole callbacks %v", lens)
			assert.Greater(t, s["max_chunk_bytes"], int64(fsMaxSize))
			recs, _, err := flbhost.ReadIngest(r.ingest)
			require.NoError(t, err)
			assert.Equal(t, cleaned(t, r.calls(t)), counters(recs), "every record delivered once, in order")
		})
	}
}

// With OutMaxBytes the output's receiver refuses a chunk larger than that,
// like in_forward with its Buffer_Max_Size: without acknowledgements the
// records are lost, with them the chunk is retried at every flush and never
// arrives. Chunks within the limit arrive.
func TestReceiverLimit(t *testing.T) {
	t.Parallel()
	const limit = 2500000
	for _, tc := range []struct {
		name     string
		records  string
		interval int
		ack      bool
		refused  bool
	}{
		// ~300 KB a callback: a chunk is at most 2,048,000 bytes plus one.
		{name: "chunks within the limit arrive", records: "3300", interval: 50},
		{name: "chunks within the limit arrive with acks", records: "3300", interval: 50, ack: true},
		// ~3 MB a callback: every chunk is over the limit.
		{name: "larger chunks are lost", records: "34000", interval: 300, refused: true},
		{name: "larger chunks are retried forever with acks", records: "34000", interval: 300, ack: true, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, flbhost.Options{Props: [][2]string{{"records", tc.records}},
				IntervalMS: tc.interval, FlushMS: 200, OutMaxBytes: limit, OutAck: tc.ack})
			require.NoError(t, r.h.WaitReady(20*time.Second))
			r.waitCalls(t, "Cleanup", 6, 30*time.Second)
			time.Sleep(500 * time.Millisecond) // a few flushes: retries
			require.NoError(t, r.h.Stop())

			recs, _, err := flbhost.ReadIngest(r.ingest)
			if !os.IsNotExist(err) {
				require.NoError(t, err)
			}
			s := r.summary(t)
			log := r.h.Log()
			if !tc.refused {
				assert.Equal(t, cleaned(t, r.calls(t)), counters(recs))
				assert.LessOrEqual(t, s["max_chunk_bytes"], int64(limit))
				assert.Zero(t, s["out_dropped_chunks"])
				assert.Zero(t, s["out_retries"])
				assert.NotContains(t, log, "the receiver refused")
				return
			}
			assert.Empty(t, recs, "no chunk got through")
			assert.Greater(t, s["max_chunk_bytes"], int64(limit))
			if tc.ack {
				assert.Zero(t, s["out_dropped_chunks"])
				assert.Greater(t, s["out_retries"], s["chunks"], "retried, not once each")
				assert.Contains(t, log, "retried at every flush")
				assert.Contains(t, log, "refused were never delivered")
			} else {
				assert.Equal(t, s["chunks"], s["out_dropped_chunks"])
				assert.Equal(t, s["records"], s["out_dropped_records"])
				assert.Zero(t, s["out_retries"])
				assert.Contains(t, log, "the records are lost")
			}
		})
	}
}
