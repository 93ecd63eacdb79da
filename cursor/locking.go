package cursor

import (
	"slices"
	"sort"
	"time"
)

// LoginFailure is a failed user.login, carried by its audit event to the
// commit, where it is counted.
type LoginFailure struct {
	User string
	At   time.Time
}

// CountFailure counts one failed login of f.User by event time. limit
// failures within period of each other lock the user (it becomes pending,
// its count starts over, and CountFailure returns true), however late the
// audit log showed them, as long as each is recent: within maxAge
// (lock_period plus search_late_tolerance) of now. So events a backend
// shows late still lock their user, and replaying an old backlog locks
// nobody today.
func (s *State) CountFailure(f LoginFailure, limit int, period, maxAge time.Duration, now time.Time) bool {
	if now.Sub(f.At) > maxAge || f.At.Sub(now) > period {
		return false
	}
	if s.Locking == nil {
		s.Locking = &Locking{}
	}
	l := s.Locking
	if l.Failures == nil {
		l.Failures = make(map[string][]time.Time)
	}
	kept := l.Failures[f.User][:0]
	for _, t := range l.Failures[f.User] {
		if now.Sub(t) <= maxAge {
			kept = append(kept, t)
		}
	}
	// Sorted by event time: a backend may show them out of order. A state
	// saved before version 3 kept them in the order they were shown: sort
	// those once, or the search below finds the wrong place and a window
	// measured backwards locks a user who did not fail that often.
	if !slices.IsSortedFunc(kept, time.Time.Compare) {
		slices.SortFunc(kept, time.Time.Compare)
	}
	at := f.At.UTC()
	i := sort.Search(len(kept), func(i int) bool { return kept[i].After(at) })
	kept = append(kept, time.Time{})
	copy(kept[i+1:], kept[i:])
	kept[i] = at
	for j := max(0, i-limit+1); j <= i && j+limit <= len(kept); j++ {
		if kept[j+limit-1].Sub(kept[j]) < period {
			delete(l.Failures, f.User)
			if l.Pending == nil {
				l.Pending = make(map[string]time.Time)
			}
			l.Pending[f.User] = now.UTC()
			return true
		}
	}
	l.Failures[f.User] = kept
	return false
}

// PruneFailures drops failures older than maxAge before now, so users who
// stopped failing leave no state behind.
func (s *State) PruneFailures(maxAge time.Duration, now time.Time) {
	if s.Locking == nil {
		return
	}
	for u, ts := range s.Locking.Failures {
		kept := ts[:0]
		for _, t := range ts {
			if now.Sub(t) <= maxAge {
				kept = append(kept, t)
			}
		}
		if len(kept) == 0 {
			delete(s.Locking.Failures, u)
		} else {
			s.Locking.Failures[u] = kept
		}
	}
	if len(s.Locking.Failures) == 0 && len(s.Locking.Pending) == 0 {
		s.Locking = nil
	}
}

// LockPlaced forgets a pending lock once it is placed.
func (s *State) LockPlaced(user string) {
	if s.Locking == nil {
		return
	}
	delete(s.Locking.Pending, user)
	if len(s.Locking.Failures) == 0 && len(s.Locking.Pending) == 0 {
		s.Locking = nil
	}
}
