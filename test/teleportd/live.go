package teleportd

import (
	"sync"
	"time"
)

// LiveSpec describes events written as they happen.
type LiveSpec struct {
	Rate      float64       // events per second, in total
	Seed      int64         // distinct from every other Generate seed in use
	Precision time.Duration // see GenSpec.Precision
	Tick      time.Duration // how often events are stored (default 200ms)
	// LateShare of the events (0 to 1) are stored LateDelay after their
	// time, as with several Auth Service instances, nodes that send their
	// events late, or clock skew between hosts: each tick also stores the
	// late events of the interval LateDelay ago.
	LateShare float64
	LateDelay time.Duration
}

// Live stores spec.Rate events a second until the returned stop is called:
// every tick, the events of the elapsed interval become new sealed chunks
// of their UTC day (stamped within it), and the late share of them is
// stored only LateDelay later. It returns the number of late events stored
// so far alongside stop.
func (s *Server) Live(spec LiveSpec) (stop func(), late func() int64) {
	if spec.Tick <= 0 {
		spec.Tick = 200 * time.Millisecond
	}
	share := min(max(spec.LateShare, 0), 1)
	done := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		nLate  int64
		onTime int64
		lateN  int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		prev := t0
		tick := time.NewTicker(spec.Tick)
		defer tick.Stop()
		for k := int64(1); ; k++ {
			var now time.Time
			select {
			case <-done:
				return
			case now = <-tick.C:
			}
			el := now.Sub(t0).Seconds()
			if n := int64(spec.Rate*(1-share)*el) - onTime; n > 0 {
				s.Generate(GenSpec{Start: prev, Count: int(n), Span: now.Sub(prev), Seed: liveSeed(spec.Seed, 2*k), Precision: spec.Precision, StoredAt: now})
				onTime += n
			}
			if n := int64(spec.Rate*share*el) - lateN; n > 0 && spec.LateDelay > 0 {
				s.Generate(GenSpec{Start: prev.Add(-spec.LateDelay), Count: int(n), Span: now.Sub(prev), Seed: liveSeed(spec.Seed, 2*k+1), Precision: spec.Precision, StoredAt: now})
				lateN += n
				mu.Lock()
				nLate += n
				mu.Unlock()
			}
			prev = now
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }, func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return nLate
	}
}

// liveSeed derives distinct seeds per tick (same seed = same uids).
func liveSeed(seed, k int64) int64 {
	x := uint64(seed)*0x9e3779b97f4a7c15 + uint64(k)
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return int64(x ^ (x >> 31))
}
