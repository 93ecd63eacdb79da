package eventhandler

import (
	"fmt"
	"sort"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// DefaultWindowSize is the Event Handler's default window-size: its windowed
// search reads [window_time, window_time+window-size).
const DefaultWindowSize = 24 * time.Hour

// Options of Convert.
type Options struct {
	// Now is the time of the import.
	Now time.Time
	// WindowSize is the Event Handler's window-size (its windowed search
	// keys belong to a window of this length); 0 is DefaultWindowSize.
	WindowSize time.Duration
}

// Result is the plugin's cursor made from an Event Handler's storage.
type Result struct {
	State *cursor.State
	// Kind names the Event Handler position found.
	Kind string
	// Notes say, one line each, what the plugin will do from this state and
	// why, and every recording that starts over.
	Notes []string
}

// Kinds of Event Handler positions.
const (
	KindNothingSent    = "nothing sent yet"
	KindSearch         = "search from start_time (cursor, id)"
	KindWindowedSearch = "windowed search (window_time, cursor, id)"
	KindExport         = "bulk export (cursor_v2)"
)

// Convert turns what the Event Handler stored into the plugin's state: the
// plugin resumes right after the last event the Event Handler sent, and
// its recordings in progress after the last event it sent of each.
func Convert(s *Storage, o Options) (*Result, error) {
	if o.WindowSize <= 0 {
		o.WindowSize = DefaultWindowSize
	}
	now := o.Now.UTC()
	if s.StartTime == nil {
		return nil, fmt.Errorf("%s/start_time: missing or empty; the Event Handler writes it on its first run, and without it where its export began is unknown", s.Dir)
	}
	st := cursor.New(*s.StartTime)
	r := &Result{State: st}
	note := func(f string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(f, a...)) }

	days := sortedKeys(s.Dates)
	startDay := s.StartTime.UTC().Format(cursor.DayLayout)
	var dropped []string
	for len(days) > 0 && days[0] < startDay {
		dropped = append(dropped, days[0])
		days = days[1:]
	}
	legacy := s.Cursor != "" || s.ID != "" || s.WindowTime != nil
	switch {
	case len(days) > 0:
		r.Kind = KindExport
		ex := &cursor.Export{NextDay: days[0], Days: map[string]*cursor.Day{}}
		done, resumed := 0, 0
		for _, day := range days {
			d := s.Dates[day]
			cd := &cursor.Day{}
			for _, c := range d.Completed {
				if !cd.DoneSet.Has(c) {
					cd.DoneSet.Add(c)
					done++
				}
			}
			for c, cur := range d.Cursors {
				if cd.DoneSet.Has(c) {
					continue // completed wins: its cursor file was about to be removed
				}
				if cd.Cursors == nil {
					cd.Cursors = map[string]string{}
				}
				cd.Cursors[c] = cur
				resumed++
			}
			ex.Days[day] = cd
		}
		st.Mode, st.Export = cursor.ModeExport, ex
		note("the Event Handler used the bulk export API (cursor_v2); the plugin goes on with it: every day before %s was exported, and of the days %s to %s, %d chunks are done and %d resume at the Event Handler's chunk cursor; the chunks it had not begun are exported whole",
			days[0], days[0], days[len(days)-1], done, resumed)
		if len(dropped) > 0 {
			note("cursor_v2 days %v are before start_time; the Event Handler skips them on resume and so does the plugin", dropped)
		}
		if legacy {
			note("cursor, id and window_time are the Event Handler's older search position, which cursor_v2 replaced (the Event Handler no longer reads them): not used")
		}
	case legacy:
		from := *s.StartTime
		r.Kind = KindSearch
		end := now
		if s.WindowTime != nil {
			from = *s.WindowTime
			r.Kind = KindWindowedSearch
			if e := from.Add(o.WindowSize); e.Before(end) {
				end = e
			}
		}
		sr := &cursor.Search{WindowStart: from}
		st.Mode, st.Search = cursor.ModeSearch, sr
		if !end.After(from) {
			note("the Event Handler's search window starts at %s, not before now: the plugin searches from there", from.Format(time.RFC3339))
			break
		}
		if s.ID == "" && s.Cursor == "" {
			note("the Event Handler had sent nothing from %s on: the plugin searches from there", from.Format(time.RFC3339))
			break
		}
		// A search key is a position only the same search can use: the
		// plugin finishes the Event Handler's own search (same start, the
		// key of the page, skipping up to its last event), in one window
		// ending where the Event Handler's ended (or now), then goes on
		// with windows of its own. Bulk export cursors cannot be made from
		// a search key, so this storage stays on the search path.
		sr.Windows = []*cursor.Window{{Start: from, End: end, Key: s.Cursor, LastID: s.ID, Limit: cursor.MaxSearchLimit}}
		if s.ID == "" {
			note("the Event Handler stored a page key but no event id: the plugin reads that page again from its start (at most one page of duplicates)")
		}
		note("the Event Handler's position is a key of its search (SearchUnstructuredEvents from %s): only that search can use it, so the plugin goes on with it, from the page at that key after event %s, up to %s, then with its own windows; it stays on the search path even where the Auth Service offers bulk export (no bulk export cursor can be made from a search key), with search_late_tolerance from then on",
			from.Format(time.RFC3339), quoteID(s.ID), end.Format(time.RFC3339))
	default:
		r.Kind = KindNothingSent
		note("the Event Handler had sent no audit event: the plugin starts at its start_time %s as on a first run", s.StartTime.Format(time.RFC3339))
	}

	// Recordings in progress. The Event Handler stores the index of the
	// last event it sent (session_events_job.go, SetSessionIndex after
	// SendEvent) and resumes at that index, sending it again; the plugin
	// resumes at the next one. Index 0 is also what registering a session
	// writes (RegisterSession), before anything was sent.
	ids := map[string]bool{}
	for id := range s.Sessions {
		ids[id] = true
	}
	for id := range s.Missing {
		ids[id] = true
	}
	sids := make([]string, 0, len(ids))
	for id := range ids {
		sids = append(sids, id)
	}
	sort.Strings(sids)
	for _, id := range sids {
		idx, announced := s.Sessions[id], now
		if m, ok := s.Missing[id]; ok {
			idx = max(idx, m.Index)
			if !m.Timestamp.IsZero() && m.Timestamp.Before(now) {
				announced = m.Timestamp
			}
			note("recording %s: the Event Handler had not found it yet (%d attempts); the plugin looks for it again", id, m.Attempt)
		}
		next := int64(0)
		if idx > 0 {
			next = idx + 1
		} else {
			note("recording %s: the Event Handler's index 0 does not tell whether its first event was sent; the plugin exports it from its start (that event may arrive twice)", id)
		}
		if st.Sessions == nil {
			st.Sessions = map[string]*cursor.Session{}
		}
		st.Sessions[id] = &cursor.Session{Next: next, Announced: announced}
	}
	if len(sids) > 0 {
		// The Event Handler announces recordings by session.upload: the
		// cluster emits them, so a session.end announces nothing.
		st.UploadsSeen = true
		note("%d recordings in progress carry over, each resuming after the last event the Event Handler sent of it", len(sids))
	}
	if s.DryRun {
		note("dry_run/ holds the state of --dry-run runs, not a position: skipped")
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("%s: the cursor made from it is invalid: %v", s.Dir, err)
	}
	return r, nil
}

func quoteID(id string) string {
	if id == "" {
		return `""`
	}
	return id
}
