package cursor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCountFailure(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) LoginFailure { return LoginFailure{User: "bob", At: now.Add(-d)} }
	for _, tc := range []struct {
		name     string
		failures []LoginFailure
		locks    int
	}{
		{"three inside a minute lock once", []LoginFailure{at(50 * time.Second), at(30 * time.Second), at(10 * time.Second)}, 1},
		{"two are not enough", []LoginFailure{at(30 * time.Second), at(10 * time.Second)}, 0},
		{"one of three too old", []LoginFailure{at(90 * time.Second), at(50 * time.Second), at(0)}, 0},
		{"old backlog never locks", []LoginFailure{at(3 * time.Hour), at(3*time.Hour - time.Second), at(3*time.Hour - 2*time.Second)}, 0},
		{"six lock twice", []LoginFailure{at(55 * time.Second), at(50 * time.Second), at(45 * time.Second), at(40 * time.Second), at(35 * time.Second), at(30 * time.Second)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := New(now)
			locks := 0
			for _, f := range tc.failures {
				if st.CountFailure(f, 3, time.Minute, time.Minute, now) {
					locks++
				}
			}
			assert.Equal(t, tc.locks, locks)
			require.NoError(t, st.Validate())
		})
	}
}

// Failures count by event time: shown late by the backend (Athena batches
// for a minute, DynamoDB's index lags), out of order, they still lock, as
// long as they are within lock_period plus search_late_tolerance of now.
func TestCountFailureByEventTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) LoginFailure { return LoginFailure{User: "bob", At: now.Add(-d)} }
	const period, tolerance = time.Minute, 5 * time.Minute
	for _, tc := range []struct {
		name     string
		failures []LoginFailure
		locks    int
	}{
		{"shown three minutes late", []LoginFailure{at(3*time.Minute + 40*time.Second), at(3*time.Minute + 20*time.Second), at(3 * time.Minute)}, 1},
		{"shown out of order", []LoginFailure{at(3 * time.Minute), at(3*time.Minute + 40*time.Second), at(3*time.Minute + 20*time.Second)}, 1},
		{"not within a period of each other", []LoginFailure{at(4 * time.Minute), at(3 * time.Minute), at(2 * time.Minute)}, 0},
		{"the last one too old", []LoginFailure{at(7 * time.Minute), at(6*time.Minute + 40*time.Second), at(6*time.Minute + 30*time.Second)}, 0},
		{"an old backlog replayed", []LoginFailure{at(3 * time.Hour), at(3*time.Hour - time.Second), at(3*time.Hour - 2*time.Second)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := New(now)
			locks := 0
			for _, f := range tc.failures {
				if st.CountFailure(f, 3, period, period+tolerance, now) {
					locks++
				}
			}
			assert.Equal(t, tc.locks, locks)
			require.NoError(t, st.Validate())
		})
	}
}

func TestCountFailureWindowSlides(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := New(now)
	// Failures 40 s apart never have three within one minute.
	for i := 0; i < 3; i++ {
		at := now.Add(time.Duration(i) * 40 * time.Second)
		assert.False(t, st.CountFailure(LoginFailure{User: "eve", At: at}, 3, time.Minute, time.Minute, at))
	}
	st.PruneFailures(time.Minute, now.Add(10*time.Minute))
	assert.Nil(t, st.Locking, "users who stopped failing leave no state")
}

func TestLockingSurvivesSaveAndLoad(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir() + "/s"
	s, err := Open(dir)
	require.NoError(t, err)
	defer s.Close()
	st := New(now)
	st.CountFailure(LoginFailure{User: "bob", At: now}, 3, time.Minute, time.Minute, now)
	st.CountFailure(LoginFailure{User: "bob", At: now.Add(time.Second)}, 3, time.Minute, time.Minute, now)
	require.NoError(t, s.Save(st))
	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, got.CountFailure(LoginFailure{User: "bob", At: now.Add(2 * time.Second)}, 3, time.Minute, time.Minute, now), "the third failure after a restart locks")
	got.LockPlaced("bob")
	assert.Nil(t, got.Locking)
}

// Failures saved in the order they were shown (a state from before version
// 3) count by event time all the same: no lock without limit of them
// within one period.
func TestCountFailureUnsortedFromAnOlderState(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		stored []time.Duration // ago, in the order saved
		next   time.Duration
		lock   bool
	}{
		{"two far apart, a third near the older", []time.Duration{10 * time.Second, 5 * time.Minute}, 4*time.Minute + 50*time.Second, false},
		{"three within the period, saved backwards", []time.Duration{10 * time.Second, 30 * time.Second}, 20 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := New(now)
			st.Locking = &Locking{Failures: map[string][]time.Time{}}
			for _, d := range tc.stored {
				st.Locking.Failures["bob"] = append(st.Locking.Failures["bob"], now.Add(-d))
			}
			got := st.CountFailure(LoginFailure{User: "bob", At: now.Add(-tc.next)}, 3, time.Minute, 10*time.Minute, now)
			assert.Equal(t, tc.lock, got)
		})
	}
}
