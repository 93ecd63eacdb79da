package engine

import (
	"slices"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// The commit rule. Fluent Bit runs a Go input on its own thread: what a
// callback returns is copied into that thread's ring buffer, the cleanup
// callback runs, and only later does the main thread move the ring's
// entries into chunks (flb_input_chunk_ring_buffer_collector, on a 250 ms
// timer in src/flb_engine.c, rb_ms; earlier when the ring is 5% full; never
// while the input is paused for back-pressure). A SIGKILL loses what is in
// the ring. So a callback's positions are committed only once it has been
// taken commit_delay ago (1 s by default, four collector periods) counting
// only time the input ran unpaused, at the next callback; and in order, so
// a position carrying no record never moves a cursor past records still
// waiting.

// handover is one callback's records that Fluent Bit has taken: their
// positions, announcements and failed logins, applied once durable.
type handover struct {
	items []record.Item
	// announces are the callback's announcements of recordings, in order,
	// applied before items (see stage.announces).
	announces []cursor.Announce
	// progress is how far its recording events take their recordings,
	// applied after items (see stage.progress).
	progress []sessionProgress
	// count is what its records were, for progress and metrics (merged
	// positions no longer tell).
	count batch
	at    time.Duration // the run clock when Fluent Bit took them
	// takenAt is the wall clock then: Fluent Bit's shutdown pauses stop the
	// run clock but not its collector.
	takenAt time.Time
}

// shutdownSettle is how long before Fluent Bit's last shutdown pause a
// callback must have been taken to be in a chunk: two collector periods,
// within the 1 s between the shutdown's two pauses.
const shutdownSettle = 500 * time.Millisecond

// handLocked moves the callback Fluent Bit has just taken to the in-flight
// list, stamped with the run clock.
func (e *Engine) handLocked() {
	h := e.pending
	e.pending = nil
	e.startAnnouncedLocked(h.announces)
	// Their recordings are started: the hold-back counts them as busy now.
	h.count.announces = 0
	h.at, h.takenAt = e.clockLocked(), e.opts.Now()
	e.inflight = append(e.inflight, *h)
}

// startAnnouncedLocked starts the recordings that the callback Fluent Bit
// has just taken announces, without waiting for its commit: a recording's
// events carry their own positions, in later callbacks, which commit in
// order after the announcement's, so the cursor still never passes a
// record that is not durable. If the announcement is lost (kill -9), so are
// they, and both come again. It decides as AnnounceSession will at the
// commit (which adds them again, a no-op then).
func (e *Engine) startAnnouncedLocked(announces []cursor.Announce) {
	for i := range announces {
		a := &announces[i]
		if e.exported.has(a.SessionID, e.opts.Now(), e.cfg.ExportLateHorizon) {
			continue // exported already: announced again (Athena, the UploadCompleter)
		}
		ss := e.committed.Sessions[a.SessionID]
		switch {
		case !a.ByEnd:
			e.uploadsHanded = true
			if ss != nil {
				e.sessions.Add(a.SessionID, cursor.Session{Next: ss.Next, Announced: ss.Announced})
			} else {
				e.sessions.Add(a.SessionID, cursor.Session{Announced: a.At.UTC()})
			}
		case ss == nil && !e.uploadsHanded && !e.committed.UploadsSeen:
			e.sessions.Add(a.SessionID, cursor.Session{Announced: a.At.UTC(), ByEnd: true})
		}
	}
}

// clockLocked is how long the input has run unpaused since the start.
func (e *Engine) clockLocked() time.Duration {
	if e.paused {
		return e.ranFor
	}
	return e.ranFor + e.opts.Now().Sub(e.runningSince)
}

// commitDurableLocked commits, oldest first, the callbacks taken at least
// commit_delay of running time ago. Fluent Bit's main thread moves its
// input threads' ring buffers into chunks every 250 ms (src/flb_engine.c,
// rb_ms) unless the input is paused (flb_input_chunk_ring_buffer_collector);
// the delay adds room for a busy main thread.
func (e *Engine) commitDurableLocked() {
	now := e.clockLocked()
	n := 0
	for n < len(e.inflight) && now-e.inflight[n].at >= e.cfg.CommitDelay {
		n++
	}
	if n > 0 {
		e.commitLocked(e.takeInflightLocked(n))
	}
}

// takeInflightLocked removes the n oldest in-flight callbacks.
func (e *Engine) takeInflightLocked(n int) []handover {
	hs := slices.Clone(e.inflight[:n])
	e.inflight = slices.Delete(e.inflight, 0, n)
	return hs
}

// unsettledAnnounces counts the announcements of new recordings returned
// to Fluent Bit or committed with a callback of positions alone, whose
// recordings are not started yet.
func (e *Engine) unsettledAnnounces() int {
	n := 0
	if e.pending != nil {
		n = e.pending.count.announces
	}
	for i := range e.inflight {
		n += e.inflight[i].count.announces
	}
	return n
}

// applyLocked applies one position to the committed state.
func (e *Engine) applyLocked(p *cursor.Pos) {
	e.committed.Apply(p)
	switch p.Kind {
	case cursor.PosDayDone:
		e.log.Infof("day %s exported", p.Day)
	case cursor.PosSessionDone:
		e.sessions.Forget(p.ID)
		if p.GivenUp == nil {
			e.exported.add(sessionHash(p.ID), e.opts.Now(), e.opts.Now(), e.cfg.ExportLateHorizon)
			e.memoryDirty = true
		}
	}
}

// commitLocked applies the positions of hs, in order, to the committed
// state and saves it. A failed save keeps the state in memory (ahead of the
// disk) and stops hand-over until a save works, so the file never falls
// behind what Fluent Bit has by more than a few callbacks.
func (e *Engine) commitLocked(hs []handover) {
	dirty := false
	var b batch
	var announced []string
	seen := map[string]struct{}{}
	announce := func(a *cursor.Announce) {
		if e.exported.has(a.SessionID, e.opts.Now(), e.cfg.ExportLateHorizon) {
			e.log.Debugf("session %s: announced again (%s) after its recording was exported; not exported again", a.SessionID, map[bool]string{true: "session.end", false: "session.upload"}[a.ByEnd])
			return
		}
		uploads := e.committed.UploadsSeen
		ann := *a
		if ann.ByEnd && uploads {
			// Its give-up clock starts when the plugin learns of it:
			// Teleport's UploadCompleter emits a session.end with the
			// session's old time, a day or more later.
			ann.At = e.opts.Now()
		}
		if e.committed.AnnounceSession(ann) {
			dirty = true
			// Once per batch: a session.end and its session.upload
			// often come together, and the recording may be exported
			// (and forgotten) between two Adds.
			// A set: a callback announces thousands of recordings.
			if _, ok := seen[a.SessionID]; !ok {
				seen[a.SessionID] = struct{}{}
				announced = append(announced, a.SessionID)
			}
		}
		dirty = dirty || uploads != e.committed.UploadsSeen
	}
	for h := range hs {
		b.merge(hs[h].count)
		// Announcements first: they touch no cursor, and a recording's own
		// positions come in later callbacks than its announcement.
		for i := range hs[h].announces {
			announce(&hs[h].announces[i])
		}
		for i := range hs[h].items {
			it := &hs[h].items[i]
			if a := it.Announce; a != nil {
				announce(a)
			}
			if f := it.Failure; f != nil && e.cfg.LockEnabled {
				dirty = true
				if e.committed.CountFailure(*f, e.cfg.LockFailedAttempts, e.cfg.LockPeriod, e.cfg.LockPeriod+e.cfg.SearchLateTolerance, e.opts.Now()) {
					if e.cfg.DryRun {
						e.log.Infof("dry_run: would lock user %q after %d failed logins within %s", f.User, e.cfg.LockFailedAttempts, e.cfg.LockPeriod)
						e.committed.LockPlaced(f.User)
					} else {
						e.locker.Add(f.User, e.committed.Locking.Pending[f.User])
					}
				}
			}
			if it.Pos.Kind != 0 {
				e.applyLocked(&it.Pos)
				dirty = true
			}
			if it.CaughtUp {
				e.auditCaughtUp = true
			}
			if it.IDs != nil {
				for _, h := range it.IDs {
					e.committedIDs.Push(h)
				}
				e.memoryDirty = true
			}
			*it = record.Item{}
		}
		for _, p := range hs[h].progress {
			if p.id != "" {
				pos := p.pos()
				e.applyLocked(&pos)
				dirty = true
			}
		}
		if e.spare == nil {
			e.spare = hs[h].items[:0]
		}
	}
	if dirty && e.committed.Locking != nil {
		e.committed.PruneFailures(e.cfg.LockPeriod+e.cfg.SearchLateTolerance, e.opts.Now())
	}
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
	e.saveMemoryLocked(false)
	for _, id := range announced {
		if ss := e.committed.Sessions[id]; ss != nil {
			e.sessions.Add(id, *ss)
		}
	}
	e.observeLocked(b)
}
