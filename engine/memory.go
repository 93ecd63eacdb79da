package engine

import (
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

// committedIDs (a teleport.HashRing) keeps the hashes of the last
// committed audit events the bulk export handed over: what the memory file
// holds for the next run, so an event the Auth Service stored twice is
// dropped across a restart too. Only committed ones: a hash of a record
// Fluent Bit may not have kept would drop its second copy although the
// first is read again.

// loadMemoryLocked seeds the dedupe of the export source from the memory
// file of the last run.
func (e *Engine) loadMemory() error {
	m, err := e.store.LoadMemory()
	if err != nil {
		return err
	}
	for _, h := range m.Events {
		e.committedIDs.Push(h)
	}
	e.dedupe.Add(m.Events)
	for _, x := range m.Sessions {
		e.exported.add(x.Hash, x.At, e.opts.Now(), e.cfg.ExportLateHorizon)
	}
	return nil
}

// maxExported bounds the recordings remembered as exported (16 bytes each
// in the memory file, about 26 in memory).
const maxExported = 100_000

// exportedSessions remembers the recordings exported lately, so that one
// announced again (a second session.upload: Teleport's UploadCompleter
// may emit one, and Athena may store an event twice beyond the dedupe
// bound) is not exported again. Remembered for export_late_horizon, at
// most maxExported, oldest forgotten first.
type exportedSessions struct {
	set teleport.HashSet
	at  []int64 // Unix nanoseconds, by position in set
}

func sessionHash(id string) uint64 { return teleport.EventHash([]byte(id)) }

func (x *exportedSessions) add(h uint64, at, now time.Time, keep time.Duration) {
	if now.Sub(at) > keep || x.set.Has(h) {
		return
	}
	x.set.Max = maxExported
	if x.at == nil {
		x.at = make([]int64, maxExported)
	}
	pos, _ := x.set.Add(h)
	x.at[pos] = at.UnixNano()
	for p := x.set.Oldest(); p >= 0 && now.Sub(time.Unix(0, x.at[p])) > keep; p = x.set.Oldest() {
		x.set.DropOldest()
	}
}

func (x *exportedSessions) has(id string, now time.Time, keep time.Duration) bool {
	p := x.set.Index(sessionHash(id))
	return p >= 0 && now.Sub(time.Unix(0, x.at[p])) <= keep
}

// list is what the memory file keeps, oldest first.
func (x *exportedSessions) list() []cursor.SessionMemory {
	out := make([]cursor.SessionMemory, 0, x.set.Len())
	x.set.Positions(func(p int) {
		out = append(out, cursor.SessionMemory{Hash: x.set.At(p), At: time.Unix(0, x.at[p]).UTC()})
	})
	return out
}

// saveMemoryLocked writes the memory file when due (or now with force).
// A failure is logged once and costs only duplicates later.
func (e *Engine) saveMemoryLocked(force bool) {
	if e.cfg.DryRun || !e.memoryDirty || (!force && time.Since(e.memorySaved) < cursor.MemoryEvery) {
		return
	}
	e.memorySaved = time.Now()
	if err := e.store.SaveMemory(&cursor.Memory{Events: e.committedIDs.List(), Sessions: e.exported.list()}); err != nil {
		e.log.Warnf("cannot save %s: %s; events stored twice by the Auth Service may be handed over twice after a restart", e.store.MemoryPath(), logging.OneLine(err.Error()))
		return
	}
	e.memoryDirty = false
}

// newDedupe is the export source's memory of recent events.
func newDedupe() (*teleport.Dedupe, teleport.HashRing) {
	return &teleport.Dedupe{Max: teleport.DefaultDedupeEvents}, teleport.HashRing{Max: teleport.DefaultDedupeEvents}
}
