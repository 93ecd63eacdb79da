package engine

import (
	"context"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// The stage is the next callback's records, copied out of the queues as the
// sources produce them. Fluent Bit calls the plugin once a second, so a
// callback carries a second of events: gathered at callback time they would
// sit in the queue for that second and then be copied once more for Fluent
// Bit, twice the memory and a GC heap sized after both. Staged, a record goes
// into the buffer the callback hands over (C memory for the plugin, outside
// the Go heap) as soon as it is fetched, and only its position stays behind,
// merged with the other positions of its chunk or recording. The queues then
// only absorb the jitter between fetchers and the stager.

// stageStep is what the stager moves from one queue per turn: small enough
// that a callback never waits long on the engine's lock, large enough that
// the lock is taken rarely.
const stageStep = 1 << 20

// stage holds the records of the next callback. Its positions are what
// committing them applies: a run of plain positions of one chunk (or one
// recording) keeps only its latest, in the slot of its first, which applies
// the same state since nothing else touches that chunk's cursor in between.
type stage struct {
	buf   []byte        // Alloc'd on the first record; records are buf[:n]
	n     int           // bytes of records
	items []record.Item // positions, failures and markers; Data dropped
	// announces are the recordings the staged audit events announce, in
	// order. They touch no cursor, and a recording's own positions come in
	// callbacks after its announcement's, so a commit applies them first.
	// Kept apart, 48 bytes each instead of an Item's 224: a backlog
	// announces a recording every few events, and a callback's stay on
	// the Go heap for commit_delay after Fluent Bit takes them.
	announces []cursor.Announce
	// progress is how far the staged recording events take their
	// recordings, and which ones end: 32 bytes per recording instead of an
	// Item's 224. A backlog streams thousands of recordings at once (5,000
	// ends and as many announcements a callback in make bench), and a
	// callback's positions stay on the Go heap for commit_delay after
	// Fluent Bit takes them. Applied after items.
	progress []sessionProgress
	// inProgress is where each recording's entry in progress is.
	inProgress map[string]int
	last       map[mergeKey]int
	count      batch // the records staged, for progress and metrics
	// sessions counts the items that came from the recordings' queue: while
	// any wait here, the export is not caught up.
	sessions int
	// ids are the event hashes of the staged records (Item.ID), carried to
	// the commit by one item at the end.
	ids []uint64
}

// sessionProgress is a recording's position (cursor.PosSession) or end
// (cursor.PosSessionDone, not given up) in a stage: only its ID and index
// matter, the cursor keeps the largest index, and the end supersedes both.
// An empty id is an entry moved to items.
type sessionProgress struct {
	id    string
	index int64
	done  bool
}

func (p sessionProgress) pos() cursor.Pos {
	if p.done {
		return cursor.Pos{Kind: cursor.PosSessionDone, ID: p.id}
	}
	return cursor.Pos{Kind: cursor.PosSession, ID: p.id, Index: p.index}
}

// addProgress stages a recording's position or plain end as its progress
// entry, one per recording (two if it goes on after its end). Anything
// else about the recording (an end given up, an announcement or failure
// riding on it) goes to items, and its entry so far before it, in order;
// then it reports false.
func (s *stage) addProgress(it *record.Item, plain bool) bool {
	id := it.Pos.ID
	i, ok := s.inProgress[id]
	end := it.Pos.Kind == cursor.PosSessionDone && !it.CaughtUp && it.Announce == nil && it.Failure == nil
	done := end && it.Pos.GivenUp == nil
	switch {
	case plain && it.Pos.Kind == cursor.PosSession:
		if ok && !s.progress[i].done {
			s.progress[i].index = it.Pos.Index
			return true
		}
	case done:
		if ok && !s.progress[i].done {
			s.progress[i].done = true
			return true
		}
	default:
		if ok {
			// An end given up supersedes the positions before it too.
			if !end || s.progress[i].done {
				s.items = append(s.items, record.Item{Pos: s.progress[i].pos()})
			}
			s.progress[i] = sessionProgress{}
			delete(s.inProgress, id)
		}
		return false
	}
	if s.inProgress == nil {
		s.inProgress = make(map[string]int)
	}
	s.inProgress[id] = len(s.progress)
	s.progress = append(s.progress, sessionProgress{id: id, index: it.Pos.Index, done: done})
	return true
}

// empty reports whether nothing was staged.
func (s *stage) empty() bool { return len(s.items) == 0 && len(s.progress) == 0 }

// mergeKey names the cursor a position moves: a chunk's, a search
// window's or a recording's.
type mergeKey struct {
	kind     cursor.PosKind
	day, key string
	at       int64 // a search window's start
}

func keyOf(p *cursor.Pos) (mergeKey, bool) {
	switch p.Kind {
	case cursor.PosChunk, cursor.PosChunkDone, cursor.PosChunkSetAside:
		return mergeKey{kind: cursor.PosChunk, day: p.Day, key: p.Chunk}, true
	case cursor.PosSearch, cursor.PosWindowDone:
		// Backlog windows are searched in parallel, each like a chunk.
		return mergeKey{kind: cursor.PosSearch, at: p.WindowStart.UnixNano()}, true
	case cursor.PosSession, cursor.PosSessionDone:
		return mergeKey{kind: cursor.PosSession, key: p.ID}, true
	}
	return mergeKey{}, false
}

// add stages one item whose data, if any, is already in buf.
func (s *stage) add(it *record.Item, fromSessions bool) {
	if fromSessions {
		s.sessions++
	}
	switch {
	case it.Time.IsZero():
	case it.Pos.Kind == cursor.PosSession:
		s.count.session++
	default:
		s.count.audit++
		if it.Time.After(s.count.newestAudit) {
			s.count.newestAudit = it.Time
		}
	}
	it.Data = nil
	if it.ID != 0 {
		s.ids = append(s.ids, it.ID)
		it.ID = 0
	}
	k, keyed := keyOf(&it.Pos)
	mergeable := keyed && !it.CaughtUp &&
		(it.Pos.Kind == cursor.PosChunk || it.Pos.Kind == cursor.PosSearch || it.Pos.Kind == cursor.PosSession)
	if mergeable && (it.Announce != nil || it.Failure != nil) {
		// What an audit event announces (a recording) or records (a failed
		// login) touches no cursor, and is applied at the same commit as
		// the event's position: it goes apart (announcements) or alone, in
		// order with the others (failures), and the position merges with
		// its chunk's. A backlog announces a
		// recording every few events; each would otherwise start a new run
		// of that chunk's positions, twice the items on the Go heap.
		if it.Announce != nil {
			s.announces = append(s.announces, *it.Announce)
		}
		if it.Failure != nil {
			s.items = append(s.items, record.Item{Failure: it.Failure})
		}
		it.Announce, it.Failure = nil, nil
	}
	plain := mergeable && it.Announce == nil && it.Failure == nil
	if k.kind == cursor.PosSession && s.addProgress(it, plain) {
		return
	}
	if plain {
		if i, ok := s.last[k]; ok {
			s.items[i].Pos = it.Pos
			s.items[i].Time = it.Time
			return
		}
	}
	s.items = append(s.items, *it)
	if !keyed {
		return
	}
	if plain {
		if s.last == nil {
			s.last = make(map[mergeKey]int)
		}
		s.last[k] = len(s.items) - 1
	} else {
		// Anything else about that cursor (its end) keeps its place:
		// later positions go after it.
		delete(s.last, k)
	}
}

// stageLocked moves queued records into the stage while it has room, up to
// step bytes (and half the room) from each queue in turn (the recordings' queue alone while
// too many recordings are in progress). The first record of a stage may be
// larger than callback_bytes: it gets a buffer of its own size, so an
// oversized event never stalls. It reports whether anything moved.
func (e *Engine) stageLocked(step int) bool {
	qs := [2]*Queue{e.queue, e.sessQ}
	if e.flip {
		qs[0], qs[1] = qs[1], qs[0]
	}
	e.flip = !e.flip
	// Announcements staged, or returned and not taken yet, count too (a
	// recording starts, and so counts as busy, once Fluent Bit takes its
	// announcement).
	if e.sessions.Busy()+e.stage.count.announces+e.unsettledAnnounces() >= maxActiveSessions {
		// Recordings announced faster than they are exported: hold audit
		// events back until they catch up, so the state (rewritten at every
		// commit) and memory stay bounded however many sessions a backlog
		// announces. Recordings waiting for a retry do not count (a missing
		// one never holds up audit export), nor those announced by
		// session.end waiting for the session.upload that comes later.
		qs = [2]*Queue{e.sessQ, nil}
	}
	// Audit events held back only wait: fewer of them on the Go heap.
	e.queue.Hold(qs[1] == nil)
	moved := false
	for _, q := range qs {
		if q == nil || len(e.stage.items)+len(e.stage.announces)+len(e.stage.progress) >= e.maxStageItems() {
			continue
		}
		// Half the room at most per take: the other queue gets its turn,
		// and the hold-back above is looked at again before the rest.
		lim := min(step, max(e.stageRoom()-e.stage.n, 0)/2+1)
		items := e.scratch[:0]
		if e.stage.n == 0 {
			items = q.Take(items, lim)
		} else {
			items = q.TakeUpTo(items, lim)
		}
		if len(items) == 0 {
			continue
		}
		moved = true
		if n := dataLen(items); n > 0 {
			e.reserveLocked(n)
		}
		for i := range items {
			it := &items[i]
			if a := it.Announce; a != nil && e.committed.Sessions[a.SessionID] == nil &&
				(!a.ByEnd || !e.uploadsHanded && !e.committed.UploadsSeen) {
				// A new recording, most likely. Not a session.end once the
				// cluster sends session.upload: its upload announces the
				// same recording (counted then), and until then it waits
				// for it without counting as busy.
				e.stage.count.announces++
			}
			e.stage.n += copy(e.stage.buf[e.stage.n:], it.Data)
			e.stage.add(it, q == e.sessQ)
			*it = record.Item{}
		}
		e.scratch = items[:0]
	}
	return moved
}

// Fluent Bit copies a callback into its ring buffer before it frees the
// plugin's buffer, and again into a chunk, so its RSS peaks at about
// three times the largest callback: one burst (the first seconds of a
// backlog, before recordings pace the audit events) set the high-water mark
// of a whole run. The stage's room follows the rate instead: half as much
// again as the largest of the last stageRoomHistory callbacks, at least
// minStageRoom, at most callback_bytes. A callback that fills it raises it
// by half for the next one.
const (
	minStageRoom     = 8 << 20
	stageRoomHistory = 4
)

// stageRoom is how many bytes of records the next callback may carry.
func (e *Engine) stageRoom() int {
	room := minStageRoom
	for _, n := range e.recent {
		room = max(room, n+n/2)
	}
	return min(room, e.cfg.CallbackBytes)
}

// maxStageItems bounds the positions a stage holds, like itemOverhead
// bounds a queue's: merging keeps them few, but filtered search results
// (positions of their own) would pile up while Fluent Bit pauses the input.
func (e *Engine) maxStageItems() int { return max(e.cfg.CallbackBytes/itemOverhead, 1024) }

// reserveLocked makes room for n more bytes of records in the stage buffer.
func (e *Engine) reserveLocked(n int) {
	if len(e.stage.buf)-e.stage.n >= n {
		return
	}
	// Only the first record(s) of a stage get here with a buffer too small
	// (an oversized record); later takes are bounded by the room left.
	buf := e.opts.Alloc(max(e.cfg.CallbackBytes, e.stage.n+n))
	copy(buf, e.stage.buf[:e.stage.n])
	e.freeLocked(e.stage.buf)
	e.stage.buf = buf
}

func (e *Engine) freeLocked(buf []byte) {
	if buf != nil && e.opts.Free != nil {
		e.opts.Free(buf)
	}
}

// takeStageLocked ends the stage: its records, positions and counts go to
// the caller, and a new empty stage begins.
func (e *Engine) takeStageLocked() (buf []byte, h *handover) {
	s := &e.stage
	if len(s.ids) > 0 {
		s.items = append(s.items, record.Item{IDs: s.ids})
	}
	buf = s.buf[:s.n]
	h = &handover{items: s.items, announces: s.announces, progress: s.progress, count: s.count}
	h.count.bytes = s.n
	e.recent[e.recentNext] = s.n
	e.recentNext = (e.recentNext + 1) % stageRoomHistory
	if s.n == 0 {
		e.freeLocked(s.buf)
		buf = nil
	}
	clear(s.last)
	clear(s.inProgress)
	*s = stage{items: e.spare[:0], last: s.last, inProgress: s.inProgress}
	e.spare = nil
	e.signalStager()
	return buf, h
}

// signalStager wakes the stager: there is something to move, or room for it.
func (e *Engine) signalStager() {
	select {
	case e.stageReady <- struct{}{}:
	default:
	}
}

// runStager moves records into the stage as the sources queue them, until
// ctx ends. It keeps going while Fluent Bit has paused the input: the stage
// then fills up, and the queues behind it.
func (e *Engine) runStager(ctx context.Context) {
	// Holding audit events back ends when recordings finish, which nothing
	// signals: look again now and then.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		moved := !e.stopping && e.stageLocked(stageStep)
		e.mu.Unlock()
		if moved {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-e.stageReady:
		case <-tick.C:
		}
	}
}
