package cursor

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// dayLayout is the layout of Export.NextDay and of the keys of Export.Days.
const dayLayout = "2006-01-02"

// Clone returns a deep copy of st (nil for nil). Maps that are nil stay nil
// and empty maps stay empty, so the copy is reflect.DeepEqual to st.
func (st *State) Clone() *State {
	if st == nil {
		return nil
	}
	c := *st
	c.Export = st.Export.clone()
	if st.Search != nil {
		s := *st.Search
		if st.Search.Windows != nil {
			s.Windows = make([]*Window, len(st.Search.Windows))
			for i, w := range st.Search.Windows {
				if w != nil {
					cw := *w
					s.Windows[i] = &cw
				}
			}
		}
		s.Seen = slices.Clone(st.Search.Seen)
		c.Search = &s
	}
	if l := st.Locking; l != nil {
		c.Locking = &Locking{}
		if l.Failures != nil {
			c.Locking.Failures = make(map[string][]time.Time, len(l.Failures))
			for u, ts := range l.Failures {
				c.Locking.Failures[u] = append([]time.Time(nil), ts...)
			}
		}
		if l.Pending != nil {
			c.Locking.Pending = make(map[string]time.Time, len(l.Pending))
			for u, t := range l.Pending {
				c.Locking.Pending[u] = t
			}
		}
	}
	if st.GivenUp != nil {
		c.GivenUp = append([]GivenUpSession{}, st.GivenUp...)
	}
	if st.SetAside != nil {
		c.SetAside = append([]SetAsideChunk{}, st.SetAside...)
	}
	if st.Sessions != nil {
		c.Sessions = make(map[string]*Session, len(st.Sessions))
		for k, v := range st.Sessions {
			if v == nil {
				c.Sessions[k] = nil
				continue
			}
			ss := *v
			c.Sessions[k] = &ss
		}
	}
	return &c
}

func (e *Export) clone() *Export {
	if e == nil {
		return nil
	}
	c := &Export{NextDay: e.NextDay}
	if e.Days != nil {
		c.Days = make(map[string]*Day, len(e.Days))
		for k, d := range e.Days {
			c.Days[k] = d.clone()
		}
	}
	return c
}

func (d *Day) clone() *Day {
	if d == nil {
		return nil
	}
	c := &Day{}
	if d.Cursors != nil {
		c.Cursors = make(map[string]string, len(d.Cursors))
		for k, v := range d.Cursors {
			c.Cursors[k] = v
		}
	}
	if d.Done != nil {
		c.Done = make(map[string]bool, len(d.Done))
		for k, v := range d.Done {
			c.Done[k] = v
		}
	}
	if d.DoneSet != nil {
		c.DoneSet = slices.Clone(d.DoneSet)
	}
	return c
}

// Validate checks the structure of st: the checks Load applies to a state
// file and Save applies before writing one. The error is one line and
// describes the first problem found, using the JSON names of the fields.
//
// Rules:
//   - format is Format and version is between 1 and Version;
//   - start_time is set (and within years 1 to 9999);
//   - mode is "" (no position yet: neither export nor search set), "export"
//     (export set) or "search" (search set); the position of the other mode
//     may be present too (it is kept, not used);
//   - export.next_day and every key of export.days are YYYY-MM-DD dates, and
//     no day is before next_day (finished days are removed);
//   - no day is null, no chunk name is empty, no chunk is both done and
//     holding a cursor, and a day's done_set holds at most MaxDayChunks
//     sorted hashes (a version 2 "done" list is migrated before);
//   - set_aside lists at most MaxSetAside chunks, each with a valid day, a
//     chunk name and a time;
//   - search.window_start is set; search.windows are at most MaxWindows,
//     set, in time order without overlap, each with start < end, ending
//     after window_start and starting at or after it, with a page limit of
//     0 to MaxSearchLimit; search.seen holds at most MaxSeen events, each
//     with a non-empty id of at most 512 bytes and a time at or
//     after window_start;
//   - given_up lists at most MaxGivenUp sessions, each once, with a time;
//   - every string is valid UTF-8 (JSON could not carry it unchanged).
func (st *State) Validate() error {
	if st == nil {
		return errors.New("state is null")
	}
	if st.Format != Format {
		return fmt.Errorf("format is %q, expected %q", st.Format, Format)
	}
	if st.Version < 1 || st.Version > Version {
		return fmt.Errorf("version %d is not supported (this plugin reads versions 1 to %d)", st.Version, Version)
	}
	if err := checkTime(st.StartTime, "start_time"); err != nil {
		return err
	}
	switch st.Mode {
	case "":
		if st.Export != nil || st.Search != nil {
			return errors.New("mode is not set but an export or search position is")
		}
	case ModeExport:
		if st.Export == nil {
			return fmt.Errorf("mode is %q but there is no export position", st.Mode)
		}
	case ModeSearch:
		if st.Search == nil {
			return fmt.Errorf("mode is %q but there is no search position", st.Mode)
		}
	default:
		return fmt.Errorf("mode %q is unknown (expected %q or %q)", st.Mode, ModeExport, ModeSearch)
	}
	if st.Export != nil {
		if err := st.Export.validate(); err != nil {
			return err
		}
		if st.Version >= 3 {
			for day, d := range st.Export.Days {
				if len(d.Done) > 0 {
					return fmt.Errorf("export.days[%q].done is a version 2 field (version 3 keeps done_set)", day)
				}
			}
		}
	}
	if st.Search != nil {
		if err := st.Search.validate(); err != nil {
			return err
		}
	}
	for id, ss := range st.Sessions {
		switch {
		case id == "" || !utf8.ValidString(id):
			return fmt.Errorf("sessions has an empty or invalid session id %q", id)
		case ss == nil:
			return fmt.Errorf("sessions[%q] is null", id)
		case ss.Next < 0:
			return fmt.Errorf("sessions[%q].next is negative (%d)", id, ss.Next)
		}
		if err := checkTime(ss.Announced, "sessions[%q].announced", id); err != nil {
			return err
		}
	}
	if n := len(st.GivenUp); n > MaxGivenUp {
		return fmt.Errorf("given_up lists %d sessions, at most %d", n, MaxGivenUp)
	}
	if n := len(st.SetAside); n > MaxSetAside {
		return fmt.Errorf("set_aside lists %d chunks, at most %d", n, MaxSetAside)
	}
	if st.SetAsideDropped < 0 {
		return fmt.Errorf("set_aside_dropped is negative (%d)", st.SetAsideDropped)
	}
	for i, c := range st.SetAside {
		switch {
		case !isDay(c.Day):
			return fmt.Errorf("set_aside[%d].day %q is not a YYYY-MM-DD date", i, c.Day)
		case c.Chunk == "" || !utf8.ValidString(c.Chunk):
			return fmt.Errorf("set_aside[%d] has an empty or invalid chunk name %q", i, c.Chunk)
		case !utf8.ValidString(c.Reason) || !utf8.ValidString(c.Cursor):
			return fmt.Errorf("set_aside[%d] has a reason or cursor that is not valid UTF-8", i)
		}
		if err := checkTime(c.At, "set_aside[%d].at", i); err != nil {
			return err
		}
	}
	if st.GivenUpDropped < 0 {
		return fmt.Errorf("given_up_dropped is negative (%d)", st.GivenUpDropped)
	}
	seen := make(map[string]bool, len(st.GivenUp))
	for i, g := range st.GivenUp {
		switch {
		case g.SessionID == "" || !utf8.ValidString(g.SessionID):
			return fmt.Errorf("given_up[%d] has an empty or invalid session_id %q", i, g.SessionID)
		case seen[g.SessionID]:
			return fmt.Errorf("given_up lists session %q twice", g.SessionID)
		case !utf8.ValidString(g.Reason):
			return fmt.Errorf("given_up[%d].reason is not valid UTF-8", i)
		case g.Next < 0:
			return fmt.Errorf("given_up[%d].next is negative (%d)", i, g.Next)
		}
		seen[g.SessionID] = true
		if err := checkTime(g.At, "given_up[%d].at", i); err != nil {
			return err
		}
	}
	if l := st.Locking; l != nil {
		for u, ts := range l.Failures {
			if u == "" || !utf8.ValidString(u) {
				return fmt.Errorf("locking.failures has an empty or invalid user %q", u)
			}
			for _, t := range ts {
				if err := checkTime(t, "locking.failures[%q]", u); err != nil {
					return err
				}
			}
		}
		for u, t := range l.Pending {
			if u == "" || !utf8.ValidString(u) {
				return fmt.Errorf("locking.pending has an empty or invalid user %q", u)
			}
			if err := checkTime(t, "locking.pending[%q]", u); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Export) validate() error {
	if !isDay(e.NextDay) {
		return fmt.Errorf("export.next_day %q is not a YYYY-MM-DD date", e.NextDay)
	}
	for day, d := range e.Days {
		if !isDay(day) {
			return fmt.Errorf("export.days key %q is not a YYYY-MM-DD date", day)
		}
		// Same layout, so string order is date order.
		if day < e.NextDay {
			return fmt.Errorf("export.days[%q] is before export.next_day %q (finished days must be removed)", day, e.NextDay)
		}
		if d == nil {
			return fmt.Errorf("export.days[%q] is null", day)
		}
		for chunk, c := range d.Cursors {
			if chunk == "" {
				return fmt.Errorf("export.days[%q].cursors has an empty chunk name", day)
			}
			if !utf8.ValidString(chunk) {
				return fmt.Errorf("export.days[%q].cursors has a chunk name %q that is not valid UTF-8", day, chunk)
			}
			if !utf8.ValidString(c) {
				return fmt.Errorf("export.days[%q].cursors[%q] is not valid UTF-8", day, chunk)
			}
			if d.Done[chunk] || d.DoneSet.Has(chunk) {
				return fmt.Errorf("export.days[%q]: chunk %q is both done and holding a cursor", day, chunk)
			}
		}
		if len(d.DoneSet) > MaxDayChunks {
			return fmt.Errorf("export.days[%q].done_set holds %d chunks (at most %d)", day, len(d.DoneSet), MaxDayChunks)
		}
		for i := 1; i < len(d.DoneSet); i++ {
			if d.DoneSet[i] <= d.DoneSet[i-1] {
				return fmt.Errorf("export.days[%q].done_set is not sorted or repeats a hash", day)
			}
		}
		for chunk := range d.Done {
			if chunk == "" {
				return fmt.Errorf("export.days[%q].done has an empty chunk name", day)
			}
			if !utf8.ValidString(chunk) {
				return fmt.Errorf("export.days[%q].done has a chunk name %q that is not valid UTF-8", day, chunk)
			}
		}
	}
	return nil
}

func (s *Search) validate() error {
	if err := checkTime(s.WindowStart, "search.window_start"); err != nil {
		return err
	}
	if !utf8.ValidString(s.Key) {
		return fmt.Errorf("search.key %q is not valid UTF-8", s.Key)
	}
	if !utf8.ValidString(s.LastID) {
		return fmt.Errorf("search.last_id %q is not valid UTF-8", s.LastID)
	}
	if len(s.Windows) > MaxWindows {
		return fmt.Errorf("search.windows holds %d windows (at most %d)", len(s.Windows), MaxWindows)
	}
	for i, w := range s.Windows {
		name := fmt.Sprintf("search.windows[%d]", i)
		if w == nil {
			return fmt.Errorf("%s is null", name)
		}
		if err := checkTime(w.Start, "%s", name+".start"); err != nil {
			return err
		}
		if err := checkTime(w.End, "%s", name+".end"); err != nil {
			return err
		}
		switch {
		case !w.Start.Before(w.End):
			return fmt.Errorf("%s ends (%s) before it starts (%s)", name, w.End.Format(time.RFC3339Nano), w.Start.Format(time.RFC3339Nano))
		case w.Start.Before(s.WindowStart):
			return fmt.Errorf("%s starts before search.window_start", name)
		case i > 0 && w.Start.Before(s.Windows[i-1].End):
			return fmt.Errorf("%s overlaps the window before it (windows must be in time order)", name)
		case w.Limit < 0 || w.Limit > MaxSearchLimit:
			return fmt.Errorf("%s.limit %d is out of range (0 to %d)", name, w.Limit, MaxSearchLimit)
		case !utf8.ValidString(w.Key) || !utf8.ValidString(w.LastID):
			return fmt.Errorf("%s has a key or last_id that is not valid UTF-8", name)
		}
	}
	if len(s.Seen) > MaxSeen {
		return fmt.Errorf("search.seen holds %d events (at most %d)", len(s.Seen), MaxSeen)
	}
	for i, e := range s.Seen {
		name := fmt.Sprintf("search.seen[%d]", i)
		if e.ID == "" || len(e.ID) > 512 || !utf8.ValidString(e.ID) {
			return fmt.Errorf("%s has an empty, overlong or invalid id", name)
		}
		if err := checkTime(e.Time, "%s", name+".time"); err != nil {
			return err
		}
		if e.Time.Before(s.WindowStart) {
			return fmt.Errorf("%s.time is before search.window_start (ids before it must be removed)", name)
		}
	}
	return nil
}

// checkTime checks a time field; its name (a format and its arguments) is
// only formatted for an error: a state holds thousands of recordings, and
// Save validates it at every commit.
func checkTime(t time.Time, name string, args ...any) error {
	if t.IsZero() {
		return fmt.Errorf(name+" is not set", args...)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf(name+" is out of range (year %d)", append(args, y)...)
	}
	return nil
}

// isDay reports whether s is a valid date in exactly the YYYY-MM-DD form.
func isDay(s string) bool {
	if len(s) != len(dayLayout) || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i != 4 && i != 7 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	_, err := time.Parse(dayLayout, s) // rejects 2024-02-30, 2024-13-01
	return err == nil
}
