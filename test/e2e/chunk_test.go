package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// inForwardMaxBytes is Fluent Bit in_forward's default Buffer_Max_Size
// (plugins/in_forward/fw_conn.h, FLB_IN_FW_CHUNK_MAX_SIZE): a message
// larger than that is refused ("incoming data exceed limit").
const inForwardMaxBytes = 6144000

// A backlog exported through Fluent Bit's forward output to a receiver
// with in_forward's default limit: with the plugin's defaults every event
// arrives, with and without acknowledgements. With callback_bytes 16M
// (the old default) chunks are larger than the receiver takes: without
// acknowledgements they are dropped, with them retried forever, and
// events never arrive.
func TestForwardReceiverTakesEveryChunk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ack      bool
		callback string // "" = the default
		lost     bool
	}{
		{name: "defaults without acks"},
		{name: "defaults with acks", ack: true},
		{name: "callback_bytes 16M without acks", callback: "16M", lost: true},
		{name: "callback_bytes 16M with acks", ack: true, callback: "16M", lost: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// About 12 MB of records (276 bytes each): the default hands
			// them over in 1000K callbacks, 16M in one or two.
			r := newRig(t, teleportd.Options{NoSessions: true})
			r.generate(45000, 3*24*time.Hour, 25)
			want := r.expected(nil)
			require.Len(t, want, 45000)

			// Memory storage (the receiver model's), the real one-second
			// callback and flush.
			props := r.props("storage.type=", "callback_bytes="+tc.callback, "exit_on_last_event=on")
			h, err := flbhost.Start(flbhost.Options{
				Bin: hostPath, Plugin: pluginPath, Props: props, Ingest: r.ingest,
				IntervalMS: 1000, Grace: 0.5, MaxSeconds: 200,
				OutMaxBytes: inForwardMaxBytes, OutAck: tc.ack,
			})
			require.NoError(t, err)
			t.Cleanup(func() {
				_ = h.Kill()
				if t.Failed() {
					t.Logf("host log:\n%s", tail(h.Log(), 60))
				}
			})
			code, err := h.WaitTimeout(180 * time.Second)
			require.NoError(t, err)
			require.Equal(t, 0, code)
			s, ok := h.Summary()
			require.True(t, ok)
			t.Logf("%d callbacks, %d chunks, largest %d bytes (%d callbacks); refused: %d dropped (%d records), %d retries",
				s["nonempty"], s["chunks"], s["max_chunk_bytes"], s["max_chunk_callbacks"],
				s["out_dropped_chunks"], s["out_dropped_records"], s["out_retries"])

			if !tc.lost {
				exactlyOnce(t, want, r.ingested())
				assert.LessOrEqual(t, s["max_chunk_bytes"], int64(conf.LargestChunk(conf.DefaultCallbackBytes)))
				assert.Zero(t, s["out_retries"]+s["out_dropped_chunks"])
				assert.NotContains(t, h.Log(), "callback_bytes", "no note about chunk sizes with the default")
				return
			}
			missing, _, _ := compare(want, r.ingested())
			assert.NotEmpty(t, missing, "a chunk over the receiver's limit")
			assert.Greater(t, s["max_chunk_bytes"], int64(inForwardMaxBytes))
			if tc.ack {
				assert.Positive(t, s["out_retries"])
			} else {
				assert.Equal(t, int64(len(missing)), s["out_dropped_records"])
			}
			assert.Contains(t, h.Log(), "[ warn] [input:teleport] callback_bytes 16MiB: a chunk can reach 18,825,216 bytes")
			assert.Contains(t, h.Log(), "in_forward's Buffer_Max_Size (6,144,000 bytes)")
		})
	}
}
