package engine

import (
	"slices"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// Collect returns the records for one Fluent Bit callback, at most
// callback_bytes (or one oversized record), or nil when there is nothing to
// hand over. The records count as handed over when Handed is called (the
// cleanup callback); a Fluent Bit that never calls it has taken them by the
// time it calls anything else, so the next Collect, Pause or Stop commits
// them instead.
func (e *Engine) Collect() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.commitLocked()
	}
	if e.paused || e.stopping {
		return nil
	}
	if e.saveErr != nil && !e.retrySaveLocked() {
		return nil
	}
	if !e.progress.caughtUp && e.auditCaughtUp {
		e.observeLocked(batch{}) // recordings may have finished since the last hand-over
	}
	// Top the stage up with what the stager has not moved yet (a few
	// rounds at most, since the sources keep queueing meanwhile).
	for i := 0; i < 8 && e.stageLocked(e.cfg.CallbackBytes); i++ {
	}
	if len(e.stage.items) == 0 {
		return nil
	}
	buf, items, count := e.takeStageLocked()
	e.pending, e.pendingCount = items, count
	n := len(buf)
	if n == 0 {
		// Only positions (filtered events, chunk ends): nothing to hand over.
		e.commitLocked()
		return nil
	}
	e.pendingBytes = n
	return buf
}

// Handed tells the engine that Fluent Bit has copied what the last Collect
// returned: the cursor moves past those records and is saved.
func (e *Engine) Handed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.commitLocked()
	}
}

// Pause stops handing over records (Fluent Bit's back-pressure, and the
// first step of its shutdown). Records already returned are committed.
func (e *Engine) Pause() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.commitLocked()
	}
	if !e.paused {
		e.log.Debugf("paused by Fluent Bit")
	}
	e.paused = true
}

// Resume lets callbacks hand over records again.
func (e *Engine) Resume() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.paused {
		e.log.Debugf("resumed by Fluent Bit")
	}
	e.paused = false
}

// BeginShutdown makes every later Collect return nothing (FLBPluginInputPreExit).
func (e *Engine) BeginShutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		e.commitLocked()
	}
	e.stopping = true
}

// Stop ends the export: nothing more is handed over, fetchers and the
// connection end, the state is saved one last time and the lock released.
// It waits at most a few seconds, since Fluent Bit joins the input thread
// without a timeout.
func (e *Engine) Stop() error {
	e.BeginShutdown()
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
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

// commitLocked applies the pending positions to the committed state and
// saves it. A failed save keeps the state in memory (ahead of the disk) and
// stops hand-over until a save works, so the file never falls behind what
// Fluent Bit has by more than one callback's worth.
func (e *Engine) commitLocked() {
	dirty := false
	b := e.pendingCount
	e.pendingCount = batch{}
	var announced []string
	for i := range e.pending {
		it := &e.pending[i]
		if a := it.Announce; a != nil {
			uploads := e.committed.UploadsSeen
			if e.committed.AnnounceSession(*a) {
				dirty = true
				// Once per batch: a session.end and its session.upload
				// often come together, and the recording may be exported
				// (and forgotten) between two Adds.
				if !slices.Contains(announced, a.SessionID) {
					announced = append(announced, a.SessionID)
				}
			}
			dirty = dirty || uploads != e.committed.UploadsSeen
		}
		if f := it.Failure; f != nil && e.cfg.LockEnabled {
			dirty = true
			if e.committed.CountFailure(*f, e.cfg.LockFailedAttempts, e.cfg.LockPeriod, e.opts.Now()) {
				if e.cfg.DryRun {
					e.log.Infof("dry_run: would lock user %q after %d failed logins within %s", f.User, e.cfg.LockFailedAttempts, e.cfg.LockPeriod)
					e.committed.LockPlaced(f.User)
				} else {
					e.locker.Add(f.User, e.committed.Locking.Pending[f.User])
				}
			}
		}
		if it.Pos.Kind != 0 {
			e.committed.Apply(&it.Pos)
			dirty = true
			switch it.Pos.Kind {
			case cursor.PosDayDone:
				e.log.Infof("day %s exported", it.Pos.Day)
			case cursor.PosSessionDone:
				e.sessions.Forget(it.Pos.ID)
			}
		}
		if it.CaughtUp {
			e.auditCaughtUp = true
		}
		*it = record.Item{}
	}
	e.spare = e.pending[:0]
	e.pending = nil
	if dirty && e.committed.Locking != nil {
		e.committed.PruneFailures(e.cfg.LockPeriod, e.opts.Now())
	}
	b.bytes, e.pendingBytes = e.pendingBytes, 0
	if dirty && !e.cfg.DryRun {
		t0 := time.Now()
		err := e.store.Save(e.committed)
		e.metrics.Commit(time.Since(t0))
		if err != nil {
			e.metrics.Error(metrics.ErrCursorSave)
			if e.saveErr == nil {
				e.log.Errorf("cannot save the cursor to %s: %s; handing over nothing until it can be saved (the last good state is kept)", e.store.Path(), logging.OneLine(err.Error()))
			}
			e.saveErr = err
		} else if e.saveErr != nil {
			e.log.Infof("cursor saved again to %s; export continues", e.store.Path())
			e.saveErr = nil
		}
	}
	for _, id := range announced {
		if ss := e.committed.Sessions[id]; ss != nil {
			e.sessions.Add(id, *ss)
		}
	}
	e.observeLocked(b)
}

// observeLocked updates progress, metrics and the backlog state after a
// hand-over (or an idle callback), and applies exit_on_last_event.
func (e *Engine) observeLocked(b batch) {
	known, active := e.sessions.Pending()
	// Caught up: the audit sources fetched everything there is and it is
	// handed over, and no recording has work left but waiting for a retry.
	b.caughtUp = e.auditCaughtUp && active == 0 && e.sessQ.Len() == 0 && e.stage.sessions == 0 && e.pending == nil
	if e.progress.add(e.opts.Now(), b, e.committed, e.sessions.InFlight(), known) {
		e.auditCaughtUp = false // caught up again at the sources' next marker
	}
	if b.caughtUp && e.cfg.ExitOnLastEvent {
		e.wantExit = true
	}
	e.checkExitLocked()
}

// checkExitLocked asks Fluent Bit to shut down once exit_on_last_event
// applies: the audit backlog is handed over, and no recording has work left
// but waiting for a retry (those stay in the state for the next run).
func (e *Engine) checkExitLocked() {
	if !e.wantExit || e.drained || e.saveErr != nil || e.pending != nil {
		return
	}
	e.drained = true
	e.log.Infof("exit_on_last_event: every event up to now has been handed over; asking Fluent Bit to shut down")
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
