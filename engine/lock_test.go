package engine

import (
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

func (h *harness) failedLogins(user string, times ...time.Time) {
	for _, t := range times {
		h.auth.addEvent("user.login", t, map[string]any{"user": user, "success": false, "method": "local", "error": "invalid credentials"})
	}
}

func lockingHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.cfg.LockEnabled = true
	h.cfg.LockFailedAttempts = 3
	h.cfg.LockPeriod = time.Minute
	h.cfg.LockFor = time.Hour
	return h
}

func TestLockAfterFailedLogins(t *testing.T) {
	h := lockingHarness(t)
	h.failedLogins("mallory", h.now.Add(-40*time.Second), h.now.Add(-20*time.Second), h.now.Add(-5*time.Second))
	h.failedLogins("spread", h.now.Add(-50*time.Second), h.now.Add(-5*time.Second)) // only two in the window
	h.failedLogins("spread", h.now.Add(-3*time.Hour))
	h.failedLogins("old", h.now.Add(-3*time.Hour), h.now.Add(-3*time.Hour+time.Second), h.now.Add(-3*time.Hour+2*time.Second))
	e := h.start()
	drainFor(t, e, 500*time.Millisecond)
	require.NoError(t, shutdown(e))

	locks := h.auth.lockCalls()
	require.Len(t, locks, 1, "mallory locked exactly once; spread and old failures lock nobody")
	l := locks[0]
	assert.Equal(t, teleport.LockName("mallory"), l.GetName())
	assert.Equal(t, "mallory", l.Target().User)
	exp := l.LockExpiry()
	require.NotNil(t, exp)
	assert.WithinDuration(t, h.now.Add(time.Hour), *exp, 5*time.Second, "expires lock_for after the lockout")
	assert.Contains(t, h.log.String(), `locked user "mallory"`)
}

// Failed logins the audit log shows late (Athena batches for a minute,
// DynamoDB's index lags) lock their user when exported, by their event
// times: here three within a minute of each other, exported 3 minutes
// after the fact, within lock_period plus search_late_tolerance (5m).
func TestLockByEventTimeWhenShownLate(t *testing.T) {
	h := lockingHarness(t)
	h.cfg.SearchLateTolerance = 5 * time.Minute
	h.failedLogins("mallory", h.now.Add(-3*time.Minute-40*time.Second), h.now.Add(-3*time.Minute-20*time.Second), h.now.Add(-3*time.Minute))
	h.failedLogins("replayed", h.now.Add(-7*time.Minute), h.now.Add(-7*time.Minute+time.Second), h.now.Add(-7*time.Minute+2*time.Second))
	e := h.start()
	drainFor(t, e, 500*time.Millisecond)
	require.NoError(t, shutdown(e))
	locks := h.auth.lockCalls()
	require.Len(t, locks, 1, "mallory locked; failures older than lock_period plus search_late_tolerance lock nobody")
	assert.Equal(t, "mallory", locks[0].Target().User)
}

func TestLockCountSurvivesRestart(t *testing.T) {
	h := lockingHarness(t)
	h.failedLogins("mallory", h.now.Add(-30*time.Second), h.now.Add(-25*time.Second))
	e := h.start()
	drainFor(t, e, 300*time.Millisecond)
	require.NoError(t, shutdown(e))
	assert.Empty(t, h.auth.lockCalls())

	h.failedLogins("mallory", h.now.Add(-2*time.Second))
	e = h.start()
	drainFor(t, e, 500*time.Millisecond)
	require.NoError(t, shutdown(e))
	assert.Len(t, h.auth.lockCalls(), 1, "the third failure, after a restart, locks")
}

func TestLockDeniedIsLoggedAndRetriedWhileEventsFlow(t *testing.T) {
	h := lockingHarness(t)
	h.auth.lockErr = trace.AccessDenied(`access denied to perform action "create" on "lock"`)
	h.failedLogins("mallory", h.now.Add(-30*time.Second), h.now.Add(-20*time.Second), h.now.Add(-10*time.Second))
	audit := h.auth.add(start.Add(time.Hour), time.Minute, 500, "user.login")
	e := h.start()
	got := drain(t, e, len(audit)+3, true)
	assert.Len(t, got, len(audit)+3, "events keep flowing")
	require.Eventually(t, func() bool {
		got = append(got, pump(t, e)...)
		return contains(h.log.String(), "resources [lock], verbs [create, update]")
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, count(h.log.String(), "cannot lock user"), "logged once")

	h.auth.mu.Lock()
	h.auth.lockErr = nil
	h.auth.mu.Unlock()
	require.Eventually(t, func() bool { pump(t, e); return len(h.auth.lockCalls()) == 1 }, 10*time.Second, 20*time.Millisecond, "retried until it works")
	require.NoError(t, shutdown(e))
}

func TestLockDryRun(t *testing.T) {
	h := lockingHarness(t)
	h.cfg.DryRun = true
	h.failedLogins("mallory", h.now.Add(-30*time.Second), h.now.Add(-20*time.Second), h.now.Add(-10*time.Second))
	e := h.start()
	drainFor(t, e, 500*time.Millisecond)
	require.NoError(t, shutdown(e))
	assert.Empty(t, h.auth.lockCalls())
	assert.Contains(t, h.log.String(), `would lock user "mallory"`)
}
