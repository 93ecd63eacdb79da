package cursor

import "time"

// LoginFailure is a failed user.login, carried by its audit event to the
// commit, where it is counted.
type LoginFailure struct {
	User string
	At   time.Time
}

// CountFailure counts one failed login of f.User in a sliding window of
// period. Only failures within period of now count: replaying an old backlog
// must not lock anyone today. Once limit failures fall in one window the user
// becomes pending (its count starts over) and CountFailure returns true.
func (s *State) CountFailure(f LoginFailure, limit int, period time.Duration, now time.Time) bool {
	if now.Sub(f.At) > period || f.At.Sub(now) > period {
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
		// The window ends at the newest failure; anything older than
		// period before it (or before now) no longer counts.
		if f.At.Sub(t) < period && now.Sub(t) <= period {
			kept = append(kept, t)
		}
	}
	kept = append(kept, f.At.UTC())
	if len(kept) < limit {
		l.Failures[f.User] = kept
		return false
	}
	delete(l.Failures, f.User)
	if l.Pending == nil {
		l.Pending = make(map[string]time.Time)
	}
	l.Pending[f.User] = now.UTC()
	return true
}

// PruneFailures drops failures older than period before now, so users who
// stopped failing leave no state behind.
func (s *State) PruneFailures(period time.Duration, now time.Time) {
	if s.Locking == nil {
		return
	}
	for u, ts := range s.Locking.Failures {
		kept := ts[:0]
		for _, t := range ts {
			if now.Sub(t) <= period {
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
