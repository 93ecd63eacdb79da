package conf

import (
	"fmt"
	"strings"
)

// How Fluent Bit turns a Go input's callbacks into chunks (v3.2 to v5.1,
// src/flb_plugin_proxy.c and src/flb_input_chunk.c): the whole buffer a
// callback returns is one append to the input's open chunk, never split; a
// chunk takes appends until the engine dispatches it (every Flush, 1 s) or
// until an append has taken it over FLB_INPUT_CHUNK_FS_MAX_SIZE, when it is
// locked. An output sends a chunk as one unit (forward: one message, http:
// one request). So a chunk holds at most FluentBitChunkBytes plus one
// callback, and with callback_bytes at most half of FluentBitChunkBytes the
// one or two callbacks a chunk gets between two flushes stay within
// Fluent Bit's usual chunk size.
const (
	// FluentBitChunkBytes is FLB_INPUT_CHUNK_FS_MAX_SIZE.
	FluentBitChunkBytes = 2048000
)

// receiverLimit is a receiver's default limit on one chunk (one message or
// request body).
type receiverLimit struct {
	name  string
	bytes int
}

// receiverLimits are the defaults that a larger callback_bytes can exceed.
// Fluent Bit's sizes count in thousands (flb_utils_size_to_bytes: 4M is
// 4,000,000 bytes).
var receiverLimits = []receiverLimit{
	{"Fluent Bit in_http's buffer_max_size (4M: 4,000,000 bytes)", 4000000},
	{"in_forward's Buffer_Max_Size (6,144,000 bytes)", 6144000},
}

// LargestChunk is the largest chunk Fluent Bit can make of callbacks of at
// most callbackBytes: an open chunk just under the lock size takes one more.
func LargestChunk(callbackBytes int) int { return FluentBitChunkBytes + callbackBytes }

// ChunkNote is what the plugin says once at start about a callback_bytes
// above the default: how large a chunk can get, and which receivers'
// defaults that exceeds (warn is then true). It is "" at or below the
// default.
func ChunkNote(callbackBytes int) (note string, warn bool) {
	if callbackBytes <= DefaultCallbackBytes {
		return "", false
	}
	largest := LargestChunk(callbackBytes)
	var over []string
	for _, r := range receiverLimits {
		if largest > r.bytes {
			over = append(over, r.name)
		}
	}
	note = fmt.Sprintf("callback_bytes %s: a chunk can reach %s bytes (Fluent Bit puts each callback whole into one chunk and fills a chunk until it is over %s bytes; outputs send a chunk as one forward message or http request)",
		formatSize(int64(callbackBytes)), thousands(largest), thousands(FluentBitChunkBytes))
	if len(over) == 0 {
		return note + fmt.Sprintf("; the default %s keeps chunks at Fluent Bit's usual 2 MB", formatSize(DefaultCallbackBytes)), false
	}
	return note + fmt.Sprintf("; that is more than %s take: raise the receiver's limit to at least that, or keep callback_bytes at its default %s (chunks of Fluent Bit's usual 2 MB)",
		strings.Join(over, " and "), formatSize(DefaultCallbackBytes)), true
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
