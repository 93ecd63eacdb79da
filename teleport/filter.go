package teleport

import "time"

// Filter decides which events become records. The same filter runs on the
// bulk export and the search path, so both export exactly the same events
// (the Event Handler ignored `types` on its bulk path).
type Filter struct {
	// LoginFailures asks for the failed logins of user.login events
	// (Item.Failure: lock_enabled counts them); without it they are not
	// decoded, nor carried to the commit.
	LoginFailures bool

	types map[string]bool // empty: every type
	skip  map[string]bool
	start time.Time
}

// NewFilter builds a filter: only types (when any), never skip, nothing
// before start.
func NewFilter(types, skip []string, start time.Time) *Filter {
	f := &Filter{start: start}
	if len(types) > 0 {
		f.types = set(types)
	}
	if len(skip) > 0 {
		f.skip = set(skip)
	}
	return f
}

// Keep reports whether an event of type typ at time t is exported. An event
// without a time (zero t) is kept: dropping it would lose it silently.
func (f *Filter) Keep(typ string, t time.Time) bool {
	if f.types != nil && !f.types[typ] {
		return false
	}
	if f.skip[typ] {
		return false
	}
	return t.IsZero() || !t.Before(f.start)
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}
