package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

var failureSeq int

// failedLogins adds failed user.login events of user at the given times.
func (r *rig) failedLogins(user string, at ...time.Time) {
	var evs []teleportd.Event
	for _, t := range at {
		failureSeq++
		evs = append(evs, teleportd.Event{Fields: map[string]any{
			"event": "user.login", "code": "T1000W", "uid": fmt.Sprintf("fail-%s-%d", user, failureSeq),
			"time": t.UTC().Format(time.RFC3339Nano), "cluster_name": "acc", "ei": 0,
			"user": user, "success": false, "method": "local", "error": "invalid credentials",
		}})
	}
	r.auth.Add(evs...)
}

func placed(calls []teleportd.LockCall) []teleportd.LockCall {
	var out []teleportd.LockCall
	for _, c := range calls {
		if c.Code == codes.OK {
			out = append(out, c)
		}
	}
	return out
}

// Three failures inside the period lock the user once, with lock_for's
// expiry; failures spread wider, or replayed from an old backlog, lock
// nobody; a restart between failures still locks at the third.
func TestLockAfterFailedLogins(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	now := time.Now()
	r.generate(2000, 24*time.Hour, 50)
	r.failedLogins("mallory", now.Add(-40*time.Second), now.Add(-30*time.Second))
	r.failedLogins("spread", now.Add(-55*time.Second), now.Add(-2*time.Second))
	r.failedLogins("old", now.Add(-20*time.Hour), now.Add(-20*time.Hour+time.Second), now.Add(-20*time.Hour+2*time.Second))
	props := r.props("lock_enabled=on", "lock_failed_attempts_count=3", "lock_period=1m", "lock_for=2h")
	h := r.host(hostOpts{props: props})
	r.waitCount(h, len(r.expected(nil)), 60*time.Second)
	require.NoError(t, h.Stop())
	assert.Empty(t, r.auth.Locks(), "two failures, spread ones and old ones lock nobody")

	r.failedLogins("mallory", time.Now())
	h = r.host(hostOpts{props: props})
	r.waitCount(h, len(r.expected(nil)), 60*time.Second)
	require.NoError(t, h.WaitLog(`locked user "mallory"`, 1, 10*time.Second))
	require.NoError(t, h.Stop())
	locks := placed(r.auth.Locks())
	require.Len(t, locks, 1, "the third failure, after a restart, locks once")
	assert.Equal(t, "mallory", locks[0].Target)
	assert.Equal(t, teleport.LockName("mallory"), locks[0].Name)
	assert.WithinDuration(t, time.Now().Add(2*time.Hour), locks[0].Expires, time.Minute)
	assert.Contains(t, locks[0].Message, "3 failed logins")
}

// Without lock rights the plugin says what to fix, once, and events keep
// flowing; dry_run locks nobody.
func TestLockDeniedAndDryRun(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	now := time.Now()
	r.auth.SetLockError(codes.PermissionDenied)
	r.failedLogins("mallory", now.Add(-20*time.Second), now.Add(-10*time.Second), now.Add(-5*time.Second))
	r.generate(3000, 24*time.Hour, 51)
	h := r.host(hostOpts{props: r.props("lock_enabled=on")})
	r.waitCount(h, len(r.expected(nil)), 60*time.Second)
	require.NoError(t, h.WaitLog("verbs [create, update]", 1, 10*time.Second))
	require.NoError(t, h.Stop())
	exactlyOnce(t, r.expected(nil), r.ingested())
	assert.Empty(t, placed(r.auth.Locks()))
	assert.Equal(t, 1, countLines(h.Log(), "cannot lock user"), "logged once")

	r2 := newRig(t, teleportd.Options{})
	r2.failedLogins("mallory", now.Add(-20*time.Second), now.Add(-10*time.Second), now.Add(-5*time.Second))
	h = r2.host(hostOpts{props: r2.props("lock_enabled=on", "dry_run=on")})
	require.NoError(t, h.WaitLog(`would lock user "mallory"`, 1, 30*time.Second))
	require.NoError(t, h.Stop())
	assert.Empty(t, r2.auth.Locks(), "dry_run calls nothing")
}

func countLines(log, sub string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}
