package cursor

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Restart returns the state of an export that starts over at start, for
// moving the cursor (`teleport-fluent-bit cursor set` and `reset`): the
// position, the recordings in progress, the failed-login counts and
// whether the cluster emits session.upload are all forgotten, as on a first
// run with start_time start.
//
// Only locks that were due but not placed yet (Locking.Pending) are kept:
// they are about users failing to log in now, not about the position, and
// dropping them would leave those users unlocked. The given-up recordings
// are kept too: they were lost whatever the position, and stay listed for
// an operator to re-send. st may be nil.
func (st *State) Restart(start time.Time) *State {
	n := New(start)
	if st != nil && len(st.GivenUp) > 0 {
		n.GivenUp = append([]GivenUpSession(nil), st.GivenUp...)
		n.GivenUpDropped = st.GivenUpDropped
	}
	if st != nil && st.Locking != nil && len(st.Locking.Pending) > 0 {
		n.Locking = &Locking{Pending: make(map[string]time.Time, len(st.Locking.Pending))}
		for u, t := range st.Locking.Pending {
			n.Locking.Pending[u] = t.UTC()
		}
	}
	return n
}

// Summary describes st in one line, for people: the start time, where the
// export resumes, and the work in progress.
func (st *State) Summary() string {
	if st == nil {
		return "no state (first run)"
	}
	parts := []string{"start_time " + st.StartTime.UTC().Format(time.RFC3339Nano)}
	switch {
	case st.Mode == ModeExport && st.Export != nil:
		n := 0
		for _, d := range st.Export.Days {
			n += len(d.Cursors)
		}
		parts = append(parts, fmt.Sprintf("bulk export resumes at day %s (%d chunks in progress)", st.Export.NextDay, n))
	case st.Mode == ModeSearch && st.Search != nil:
		s := fmt.Sprintf("search resumes in the window starting %s", st.Search.WindowStart.UTC().Format(time.RFC3339Nano))
		if st.Search.LastID != "" {
			s += fmt.Sprintf(" after event %s", st.Search.LastID)
		} else if w := st.Search.Windows; len(w) > 0 && w[0] != nil && w[0].LastID != "" && !w[0].Start.After(st.Search.WindowStart) {
			s += fmt.Sprintf(" (up to %s) after event %s", w[0].End.UTC().Format(time.RFC3339Nano), w[0].LastID)
		}
		parts = append(parts, s)
	default:
		parts = append(parts, "nothing exported yet")
	}
	if n := len(st.Sessions); n > 0 {
		parts = append(parts, fmt.Sprintf("%d session recordings in progress", n))
	}
	if n := len(st.GivenUp); n > 0 {
		parts = append(parts, fmt.Sprintf("%d session recordings given up", n+int(st.GivenUpDropped)))
	}
	if l := st.Locking; l != nil && len(l.Pending) > 0 {
		users := make([]string, 0, len(l.Pending))
		for u := range l.Pending {
			users = append(users, u)
		}
		sort.Strings(users)
		parts = append(parts, fmt.Sprintf("locks pending for %s", strings.Join(users, ", ")))
	}
	return strings.Join(parts, "; ")
}
