package conf

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDefaultCallbackKeepsChunksAtFluentBitsSize(t *testing.T) {
	// Two callbacks between two flushes fill at most one chunk of Fluent
	// Bit's own size, and the worst case (a chunk just under the lock size
	// takes one more) stays within every receiver default listed.
	assert.Equal(t, 1024000, DefaultCallbackBytes)
	assert.LessOrEqual(t, 2*DefaultCallbackBytes, FluentBitChunkBytes)
	for _, r := range receiverLimits {
		assert.Less(t, LargestChunk(DefaultCallbackBytes), r.bytes, r.name)
	}
}

func TestChunkNote(t *testing.T) {
	for _, tc := range []struct {
		name     string
		callback int
		warn     bool
		want     []string
		notWant  []string
	}{
		{name: "default says nothing", callback: DefaultCallbackBytes},
		{name: "smaller says nothing", callback: 256 << 10},
		{name: "1500K fits every receiver default", callback: 1500 << 10,
			want:    []string{"callback_bytes 1500KiB", "3,584,000 bytes", "2,048,000", "default 1000KiB"},
			notWant: []string{"more than"}},
		{name: "2M is over in_http's", callback: 2 << 20, warn: true,
			want:    []string{"4,145,152 bytes", "more than Fluent Bit in_http's buffer_max_size (4M: 4,000,000 bytes) take"},
			notWant: []string{"in_forward"}},
		{name: "16M is over in_forward's", callback: 16 << 20, warn: true,
			want: []string{"callback_bytes 16MiB", "18,825,216 bytes", "in_http's buffer_max_size (4M: 4,000,000 bytes) and in_forward's Buffer_Max_Size (6,144,000 bytes) take", "raise the receiver's limit", "default 1000KiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			note, warn := ChunkNote(tc.callback)
			assert.Equal(t, tc.warn, warn)
			if tc.want == nil {
				assert.Empty(t, note)
				return
			}
			for _, w := range tc.want {
				assert.Contains(t, note, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, note, w)
			}
		})
	}
}
