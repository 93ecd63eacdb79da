package e2e

import (
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// liveStream stores about rate events a second, stamped now, until stop is
// called; like a cluster in use.
func liveStream(r *rig, rate int) (stop func()) { return liveStreamSeeded(r, rate, 7000) }

// liveStreamSeeded is liveStream with the seeds from base on: two clusters
// need distinct seeds, or they hold the same uids.
func liveStreamSeeded(r *rig, rate int, base int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		prev := time.Now().UTC()
		for k := int64(1); ; k++ {
			select {
			case <-done:
				return
			case now := <-tick.C:
				now = now.UTC()
				r.auth.Generate(teleportd.GenSpec{Start: prev, Count: rate / 10, Span: now.Sub(prev), Seed: base + k, ChunkSize: 100})
				prev = now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// kill -9 of Fluent Bit at random points while a live stream flows in small
// callbacks, then a clean run: every event at least once. The host puts
// what a callback returns into a ring buffer that its main thread moves
// into chunks every 250 ms, as Fluent Bit does; a cursor that covered
// records still in the ring would lose them at the kill.
func TestKill9DuringLiveStream(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.start = time.Now().UTC().Add(-time.Minute)
	stop := liveStream(r, 200)
	defer stop()
	const kills = 10
	// Callbacks a few times a second, so a kill often finds records in the
	// ring (Fluent Bit's own period is 1 s: there, a quarter of the time).
	const interval = 300
	props := r.props("poll_interval=500ms")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < kills; i++ {
		h := r.host(hostOpts{props: props, interval: interval})
		require.NoError(t, h.WaitReady(30*time.Second))
		require.NoError(t, h.WaitLog("connected to Teleport", 1, 30*time.Second))
		time.Sleep(time.Duration(1500+rng.Intn(2000)) * time.Millisecond)
		require.NoError(t, h.Kill())
	}
	stop()
	want := r.expected(nil)
	h := r.host(hostOpts{props: props, interval: interval})
	r.waitAll(h, want, 90*time.Second)
	require.NoError(t, h.WaitLog("caught up:", 1, 60*time.Second))
	require.NoError(t, h.Stop())
	got := r.ingested()
	missing, dups, extra := compare(want, got)
	assert.Empty(t, missing, "%d of %d events lost across %d kills, e.g. %v", len(missing), len(want), kills, first(missing))
	assert.Empty(t, extra)
	// What comes again is at most what was handed over in the commit delay
	// and the callback after it, per kill: at 200 events/s, well under
	// (commit_delay + 2 intervals) of the stream.
	perKill := int((conf.DefaultCommitDelay+2*interval*time.Millisecond).Seconds()*200) + 200
	assert.LessOrEqual(t, len(dups), kills*perKill, "duplicates bounded by the commit delay")
	t.Logf("%d kills: %d events, %d lost, %d duplicates", kills, len(want), len(missing), len(dups))
}
