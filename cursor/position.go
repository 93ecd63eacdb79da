package cursor

import "time"

// PosKind says how a position changes the state once the records before it
// have been handed over to Fluent Bit.
type PosKind uint8

const (
	// PosNone changes nothing (markers such as "caught up").
	PosNone PosKind = iota
	// PosChunk: Day/Chunk resumes after Cursor.
	PosChunk
	// PosChunkDone: Day/Chunk was exported to its end.
	PosChunkDone
	// PosDayDone: Day is complete; export resumes at the following day.
	PosDayDone
	// PosSearch: the backlog window [WindowStart, End) resumes on the page
	// with start Key (pages of Index events), after the event ID.
	PosSearch
	// PosWindowDone: the backlog window [WindowStart, End) is complete.
	PosWindowDone
	// PosSession: the recording of session ID resumes at index Index.
	PosSession
	// PosSessionDone: the recording of session ID is exported (or given up).
	PosSessionDone
	// PosSeen: the event ID, with time WindowStart, was handed over within
	// the late tolerance: reading that span again skips it.
	PosSeen
	// PosSearchFrontier: every event before WindowStart was searched; the
	// ids seen before it are forgotten.
	PosSearchFrontier
	// PosChunkSetAside: Day/Chunk failed for good and is set aside (GivenUp
	// says why and when, Cursor where it stood): done for the export, and
	// listed in State.SetAside.
	PosChunkSetAside
)

// Pos is one step of progress, carried by every record (or position-only
// marker) from a source through the queue to the commit.
type Pos struct {
	Kind        PosKind
	Day         string
	Chunk       string
	Cursor      string
	WindowStart time.Time
	End         time.Time
	Key         string
	ID          string
	Index       int64
	// GivenUp is set on the PosSessionDone of a recording given up.
	GivenUp *GivenUp
}

// GivenUp says why and when a recording was given up.
type GivenUp struct {
	Reason string
	At     time.Time
	Next   int64 // the index of the first event not exported
}

// Announce is a recording announced by an audit event; it joins the state
// when that event is handed over.
type Announce struct {
	SessionID string
	At        time.Time // the announcing event's time
	ByEnd     bool      // announced by session.end, not session.upload
}

// AnnounceSession records a recording to export, unless it is known
// already. A session.end on a cluster that emits session.upload announces
// it too, marked AwaitUpload: its session.upload normally follows and takes
// it over, but one that never comes (an upload completed by Teleport's
// UploadCompleter long after, or lost) must not leave the recording
// unexported. It reports whether the session was added, or taken over by a
// session.upload from a session.end.
func (s *State) AnnounceSession(a Announce) bool {
	if !a.ByEnd {
		s.UploadsSeen = true
	}
	if ss, ok := s.Sessions[a.SessionID]; ok {
		if !a.ByEnd && ss.ByEnd {
			ss.ByEnd, ss.AwaitUpload = false, false
			return true
		}
		return false
	}
	if s.Sessions == nil {
		s.Sessions = make(map[string]*Session)
	}
	s.Sessions[a.SessionID] = &Session{Announced: a.At.UTC(), ByEnd: a.ByEnd, AwaitUpload: a.ByEnd && s.UploadsSeen}
	return true
}

// DayLayout is the layout of day keys.
const DayLayout = "2006-01-02"

// Apply records p in the state. Positions must be applied in the order the
// sources produced them (per chunk), which the engine's FIFO queue ensures.
func (s *State) Apply(p *Pos) {
	switch p.Kind {
	case PosChunk:
		d := s.day(p.Day)
		if d.DoneSet.Has(p.Chunk) {
			return
		}
		if d.Cursors == nil {
			d.Cursors = make(map[string]string)
		}
		d.Cursors[p.Chunk] = p.Cursor
	case PosChunkDone:
		d := s.day(p.Day)
		delete(d.Cursors, p.Chunk)
		d.DoneSet.Add(p.Chunk)
	case PosChunkSetAside:
		d := s.day(p.Day)
		delete(d.Cursors, p.Chunk)
		d.DoneSet.Add(p.Chunk)
		s.noteSetAside(p)
	case PosDayDone:
		s.day(p.Day)
		delete(s.Export.Days, p.Day)
		if day, err := time.Parse(DayLayout, p.Day); err == nil {
			next := day.AddDate(0, 0, 1).Format(DayLayout)
			if next > s.Export.NextDay {
				s.Export.NextDay = next
			}
		}
	case PosSearch:
		w := s.searchWindow(p)
		w.Key, w.LastID, w.Limit = p.Key, p.ID, int(p.Index)
	case PosSession:
		if ss := s.Sessions[p.ID]; ss != nil && p.Index > ss.Next {
			ss.Next = p.Index
		}
	case PosSessionDone:
		delete(s.Sessions, p.ID)
		s.noteGivenUp(p.ID, p.GivenUp)
	case PosWindowDone:
		w := s.searchWindow(p)
		*w = Window{Start: w.Start, End: w.End, Done: true}
		s.Search.advance(s.Search.WindowStart)
	case PosSeen:
		sr := s.search(p.WindowStart)
		if !p.WindowStart.Before(sr.WindowStart) && len(sr.Seen) < MaxSeen {
			sr.Seen = append(sr.Seen, Seen{ID: p.ID, Time: p.WindowStart.UTC()})
		}
	case PosSearchFrontier:
		s.search(p.WindowStart).advance(p.WindowStart.UTC())
	}
}

// search returns the search position, creating it with its frontier at
// at. The source's first item is its frontier (PosSearchFrontier), so a
// new position starts where the source does, not at a window it searches
// in parallel.
func (s *State) search(at time.Time) *Search {
	s.Mode = ModeSearch
	if s.Search == nil {
		s.Search = &Search{WindowStart: at.UTC()}
	}
	return s.Search
}

// searchWindow returns the window of p, adding it in time order if new. A
// window position always replaces the version 1 one (Key, LastID), which
// the source resumes as its first window.
func (s *State) searchWindow(p *Pos) *Window {
	sr := s.search(p.WindowStart)
	sr.Key, sr.LastID = "", ""
	start := p.WindowStart.UTC()
	i := 0
	for i < len(sr.Windows) && sr.Windows[i].Start.Before(start) {
		i++
	}
	if i < len(sr.Windows) && sr.Windows[i].Start.Equal(start) {
		return sr.Windows[i]
	}
	w := &Window{Start: start, End: p.End.UTC()}
	sr.Windows = append(sr.Windows, nil)
	copy(sr.Windows[i+1:], sr.Windows[i:])
	sr.Windows[i] = w
	return w
}

// advance moves the frontier to at least to, then past every done window
// that starts at it, and forgets what lies before it.
func (sr *Search) advance(to time.Time) {
	from := sr.WindowStart
	defer func() {
		if sr.WindowStart != from {
			sr.Key, sr.LastID = "", "" // a version 1 position of a passed window
		}
	}()
	if to.After(sr.WindowStart) {
		sr.WindowStart = to
	}
	n := 0
	for _, w := range sr.Windows {
		switch {
		case !w.End.After(sr.WindowStart):
			continue // passed
		case w.Done && !w.Start.After(sr.WindowStart) && n == 0:
			sr.WindowStart = w.End
			continue
		}
		sr.Windows[n] = w
		n++
	}
	clear(sr.Windows[n:])
	sr.Windows = sr.Windows[:n]
	if len(sr.Windows) == 0 {
		sr.Windows = nil
	}
	k := 0
	for _, e := range sr.Seen {
		if !e.Time.Before(sr.WindowStart) {
			sr.Seen[k] = e
			k++
		}
	}
	sr.Seen = sr.Seen[:k]
	if k == 0 {
		sr.Seen = nil
	}
}

func (s *State) day(day string) *Day {
	s.Mode = ModeExport
	if s.Export == nil {
		// The export source starts at the day of start_time.
		s.Export = &Export{NextDay: s.StartTime.UTC().Format(DayLayout)}
	}
	if s.Export.Days == nil {
		s.Export.Days = make(map[string]*Day)
	}
	d := s.Export.Days[day]
	if d == nil {
		d = &Day{}
		s.Export.Days[day] = d
	}
	return d
}

// noteGivenUp adds a given-up recording to the newest MaxGivenUp, or, when
// g is nil (the recording was exported, say after a later announcement),
// takes it off.
func (s *State) noteGivenUp(id string, g *GivenUp) {
	for i := range s.GivenUp {
		if s.GivenUp[i].SessionID == id {
			s.GivenUp = append(s.GivenUp[:i], s.GivenUp[i+1:]...)
			break
		}
	}
	if g == nil {
		if len(s.GivenUp) == 0 {
			s.GivenUp = nil
		}
		return
	}
	if len(s.GivenUp) >= MaxGivenUp {
		drop := len(s.GivenUp) - MaxGivenUp + 1
		s.GivenUpDropped += int64(drop)
		s.GivenUp = append(s.GivenUp[:0], s.GivenUp[drop:]...)
	}
	s.GivenUp = append(s.GivenUp, GivenUpSession{SessionID: id, Reason: g.Reason, At: g.At.UTC(), Next: g.Next})
}

// noteSetAside adds a set-aside chunk to the newest MaxSetAside.
func (s *State) noteSetAside(p *Pos) {
	c := SetAsideChunk{Day: p.Day, Chunk: p.Chunk, Cursor: p.Cursor}
	if g := p.GivenUp; g != nil {
		c.Reason, c.At = g.Reason, g.At.UTC()
	}
	if c.At.IsZero() {
		c.At = time.Now().UTC()
	}
	for i := range s.SetAside {
		if s.SetAside[i].Day == c.Day && s.SetAside[i].Chunk == c.Chunk {
			s.SetAside = append(s.SetAside[:i], s.SetAside[i+1:]...)
			break
		}
	}
	if len(s.SetAside) >= MaxSetAside {
		drop := len(s.SetAside) - MaxSetAside + 1
		s.SetAsideDropped += int64(drop)
		s.SetAside = append(s.SetAside[:0], s.SetAside[drop:]...)
	}
	s.SetAside = append(s.SetAside, c)
}
