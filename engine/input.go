package engine

import (
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// Collect returns the records for one Fluent Bit callback, at most
// callback_bytes (or one oversized record), or nil when there is nothing to
// hand over. Fluent Bit has taken them when Handed is called (the cleanup
// callback); a Fluent Bit that never calls it has taken them by the time it
// calls Collect or Pause again. They are committed later, once durable
// (commitDurableLocked).
func (e *Engine) Collect() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noteCollectLocked()
	if e.pending != nil {
		e.handLocked()
	}
	e.commitDurableLocked()
	if e.paused || e.stopping {
		return nil
	}
	if e.saveErr != nil && !e.retrySaveLocked() {
		return nil
	}
	if !e.progress.caughtUp && e.auditCaughtUp {
		e.observeLocked(batch{}) // recordings may have finished since the last hand-over
	}
	// Top the stage up with what the stager has not moved yet (a bounded
	// number of rounds, since the sources keep queueing meanwhile), in the
	// stager's steps: a larger take would keep a scratch slice of its size
	// on the Go heap (the whole queue's items at callback_bytes 64M).
	for i := 0; i < 64 && e.stageLocked(stageStep); i++ {
	}
	if e.stage.empty() {
		return nil
	}
	buf, h := e.takeStageLocked()
	if len(buf) == 0 {
		// Only positions (filtered events, chunk and window ends): they
		// go with the records before them, never past one still waiting
		// to be durable.
		if n := len(e.inflight); n > 0 {
			last := &e.inflight[n-1]
			last.items = append(last.items, h.items...)
			last.announces = append(last.announces, h.announces...)
			last.progress = append(last.progress, h.progress...)
			last.count.merge(h.count)
			clear(h.items)
			e.spare = h.items[:0]
		} else {
			e.commitLocked([]handover{*h})
		}
		return nil
	}
	e.pending = h
	return buf
}

// Handed tells the engine that Fluent Bit has taken what the last Collect
// returned: copied into the input thread's ring buffer, not yet into a
// chunk, so the cursor moves past those records only commit_delay later.
func (e *Engine) Handed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.handLocked()
	}
}

// Pause stops handing over records (Fluent Bit's back-pressure, and the
// first step of its shutdown). The commit delay's clock stops with it:
// Fluent Bit's ring-buffer collector skips an input paused for back-pressure.
func (e *Engine) Pause() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.handLocked()
	}
	e.commitDurableLocked()
	e.pausesInRow++
	e.lastPause = e.opts.Now()
	if !e.paused {
		e.ranFor += e.opts.Now().Sub(e.runningSince)
		e.log.Debugf("paused by Fluent Bit")
	}
	e.paused = true
}

// Resume lets callbacks hand over records again.
func (e *Engine) Resume() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.paused {
		e.runningSince = e.opts.Now()
		e.log.Debugf("resumed by Fluent Bit")
	}
	e.paused = false
	e.pausesInRow = 0
}

// BeginShutdown makes every later Collect return nothing (FLBPluginInputPreExit).
func (e *Engine) BeginShutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
}

// Stop ends the export: nothing more is handed over, fetchers and the
// connection end, the state is saved one last time and the lock released.
// It waits at most a few seconds, since Fluent Bit joins the input thread
// without a timeout.
//
// What Fluent Bit took is committed if it is durable: what was taken
// commit_delay of running time ago; and, after Fluent Bit's shutdown of a
// running input (two pauses in a row, a second or more apart, while the
// ring buffer is still collected into chunks), also what was taken
// shutdownSettle before the last pause. A callback that outlasted the
// shutdown tick is taken just before both pauses, which then come back to
// back: its records are discarded with the ring, so they are not
// committed. A callback returned and never taken (no cleanup, no later
// call) is not committed.
func (e *Engine) Stop() error {
	e.BeginShutdown()
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	e.commitDurableLocked()
	if e.pausesInRow >= 2 {
		settle := min(e.cfg.CommitDelay, shutdownSettle)
		n := 0
		for n < len(e.inflight) && e.lastPause.Sub(e.inflight[n].takenAt) >= settle {
			n++
		}
		if n > 0 {
			e.commitLocked(e.takeInflightLocked(n))
		}
	}
	e.saveMemoryLocked(true)
	if n := len(e.inflight); n > 0 {
		e.log.Infof("%d callback(s) taken by Fluent Bit too recently to be in its chunks were not committed: they are exported again at the next start", n)
	}
	e.mu.Unlock()

	e.cancel()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		e.log.Warnf("background fetchers did not stop within 5s; exiting anyway")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	if e.saveErr != nil && !e.retrySaveLocked() {
		err = e.saveErr
	}
	// What was staged and never handed over is fetched again next run.
	e.freeLocked(e.stage.buf)
	e.stage = stage{}
	e.progress.final()
	if e.stopMetrics != nil {
		e.stopMetrics()
	}
	if cerr := e.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// observeLocked updates progress, metrics and the backlog state after a
// hand-over (or an idle callback), and applies exit_on_last_event.
func (e *Engine) observeLocked(b batch) {
	known, active := e.sessions.Pending()
	// Caught up: the audit sources fetched everything there is and it is
	// handed over, and no recording has work left but waiting for a retry.
	b.caughtUp = e.auditCaughtUp && active == 0 && e.sessQ.Len() == 0 && e.stage.sessions == 0 && e.pending == nil && len(e.inflight) == 0
	if e.progress.add(e.opts.Now(), b, e.committed, e.sessions.InFlight(), known) {
		e.auditCaughtUp = false // caught up again at the sources' next marker
	}
	if b.caughtUp && e.cfg.ExitOnLastEvent {
		e.wantExit = true
	}
	e.checkExitLocked()
}

// checkExitLocked asks Fluent Bit to shut down once exit_on_last_event
// applies: the audit backlog is handed over, durable and committed, and no
// recording has work left but waiting for a retry (those stay in the state
// for the next run).
func (e *Engine) checkExitLocked() {
	if !e.wantExit || e.drained || e.saveErr != nil || e.pending != nil || len(e.inflight) > 0 {
		return
	}
	e.drained = true
	e.log.Infof("exit_on_last_event: every event up to now has been handed over and committed (commit_delay after Fluent Bit took it); asking Fluent Bit to shut down")
	if e.opts.OnDrained != nil {
		e.opts.OnDrained()
	}
}

func dataLen(items []record.Item) int {
	n := 0
	for i := range items {
		n += len(items[i].Data)
	}
	return n
}

func (e *Engine) retrySaveLocked() bool {
	if err := e.store.Save(e.committed); err != nil {
		e.saveErr = err
		return false
	}
	e.log.Infof("cursor saved again to %s; export continues", e.store.Path())
	e.saveErr = nil
	return true
}
