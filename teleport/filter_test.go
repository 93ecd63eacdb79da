package teleport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFilterKeep(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		types, skip []string
		typ         string
		at          time.Time
		keep        bool
	}{
		{"no filter keeps all", nil, nil, "user.login", start, true},
		{"types keeps listed", []string{"user.login"}, nil, "user.login", start, true},
		{"types drops others", []string{"user.login"}, nil, "session.start", start, false},
		{"skip wins over types", []string{"user.login"}, []string{"user.login"}, "user.login", start, false},
		{"skip drops listed", nil, []string{"print"}, "print", start, false},
		{"unknown types pass", nil, []string{"print"}, "some.future.event", start, true},
		{"before start_time dropped", nil, nil, "user.login", start.Add(-time.Nanosecond), false},
		{"no time kept", nil, nil, "user.login", time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.keep, NewFilter(tc.types, tc.skip, start).Keep(tc.typ, tc.at))
		})
	}
}

func TestIsNotImplemented(t *testing.T) {
	assert.False(t, IsNotImplemented(assert.AnError))
}
