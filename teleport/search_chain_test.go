package teleport

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/internal/testlog"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// A rate limit is not a page too large: its page size is kept.
func TestTooLargeMeansTooLarge(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), true},
		{status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (5000000 vs. 4194304)"), true},
		{trace.LimitExceeded("rate limit exceeded for searching events"), false},
		{status.Error(codes.ResourceExhausted, "rate limit exceeded for searching events"), false},
		{status.Error(codes.Unavailable, "message too large"), false},
	} {
		assert.Equal(t, tc.want, tooLarge(tc.err), "%v", tc.err)
	}
}

func TestChain(t *testing.T) {
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	at := func(id string, d time.Duration) seenKey { return seenKey{id: id, t: base.Add(d).UnixNano()} }
	from, to := base.Add(1500*time.Millisecond), base.Add(3500*time.Millisecond)
	t.Run("events outside the half-open range are not taken; the newest second is taken once", func(t *testing.T) {
		c := newChain(from, to, "w", logging.New(&testlog.Buffer{}, "t"), nil)
		assert.False(t, c.take(at("a", 1200*time.Millisecond)), "before from: the range before has it")
		assert.True(t, c.take(at("b", 1500*time.Millisecond)), "from is in")
		assert.True(t, c.take(at("c", 2100*time.Millisecond)))
		assert.False(t, c.take(at("c", 2100*time.Millisecond)), "the same second again")
		assert.True(t, c.take(at("d", 2900*time.Millisecond)))
		assert.False(t, c.take(at("e", 3500*time.Millisecond)), "to is out: the range after has it")
		assert.Equal(t, base.Add(2*time.Second), c.resumeFrom(), "a read by time starts at the newest second")
	})
	t.Run("an empty keyless page after a key is confirmed by a read by time, once", func(t *testing.T) {
		c := newChain(from, to, "w", logging.New(&testlog.Buffer{}, "t"), nil)
		c.take(at("b", 2*time.Second))
		assert.Equal(t, stepNext, c.after("", "k1", 1))
		assert.Equal(t, stepByTime, c.after("k1", "", 0), "empty and keyless after a key")
		assert.Equal(t, stepDone, c.after("", "", 1), "the read by time ends")
		c2 := newChain(from, to, "w", logging.New(&testlog.Buffer{}, "t"), nil)
		c2.after("k1", "", 0)
		assert.Equal(t, stepNext, c2.after("", "k2", 5))
		assert.Equal(t, stepDone, c2.after("k2", "", 0), "nothing new since the read by time: done")
		assert.Equal(t, stepDone, c.after("k1", "", 3), "a keyless page with events ends the range")
	})
	t.Run("the same key again is no progress: warned once, backed off", func(t *testing.T) {
		var buf testlog.Buffer
		c := newChain(from, to, rangeName(from, to), logging.New(&buf, "t"), nil)
		assert.True(t, c.stalled("k", "k"))
		assert.False(t, c.stalled("", ""))
		assert.False(t, c.stalled("k", "k2"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		assert.NoError(t, c.stall(ctx, "k"))
		assert.NoError(t, c.stall(ctx, "k"))
		assert.Greater(t, time.Since(start), 400*time.Millisecond, "it waits")
		c.after("k", "k2", 3)
		assert.Equal(t, 1, countLines(buf.String(), "no progress"), buf.String())
		assert.Contains(t, buf.String(), "2026-11-20T10:00:01.5Z", "names the window")
		assert.Contains(t, buf.String(), "goes on after 2 page(s) without progress")
	})
}

func countLines(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}
