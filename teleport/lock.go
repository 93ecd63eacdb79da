package teleport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
)

// LockAPI is the part of the Teleport client that places locks;
// *client.Client implements it.
type LockAPI interface {
	UpsertLock(ctx context.Context, lock types.Lock) error
}

// LockName is the deterministic name of the lock of user, so that repeated
// lockouts update one lock instead of piling up new ones.
func LockName(user string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(user) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	// The hash keeps names unique when users differ only in characters
	// that had to be replaced.
	sum := sha256.Sum256([]byte(user))
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	return "teleport-fluent-bit-failed-logins-" + name + "-" + hex.EncodeToString(sum[:4])
}

// Locker places locks on users that failed to log in too often. A failing
// call is logged once with what to fix and retried with backoff; it never
// holds up the export.
type Locker struct {
	API      LockAPI
	For      time.Duration // lock_for; 0 = permanent
	Attempts int           // lock_failed_attempts_count, for the message
	Period   time.Duration // lock_period, for the message
	Log      *logging.Logger
	Now      func() time.Time
	// Placed is called (without locks held) once a user's lock is in place.
	Placed  func(user string)
	Metrics *metrics.Metrics

	mu      sync.Mutex
	pending map[string]time.Time // user -> when the limit was reached
	wake    chan struct{}
	once    sync.Once
}

func (l *Locker) init() {
	l.once.Do(func() {
		l.pending = make(map[string]time.Time)
		l.wake = make(chan struct{}, 1)
	})
}

// Add asks for user to be locked; at is when the limit was reached.
func (l *Locker) Add(user string, at time.Time) {
	l.init()
	l.mu.Lock()
	l.pending[user] = at
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run places pending locks until ctx ends.
func (l *Locker) Run(ctx context.Context) {
	l.init()
	bo := retry()
	bo.MaxInterval = 5 * time.Minute
	failing := false
	for {
		l.mu.Lock()
		var user string
		var at time.Time
		for u, t := range l.pending {
			user, at = u, t
			break
		}
		l.mu.Unlock()
		if user == "" {
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
			}
			continue
		}
		err := l.lock(ctx, user, at)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.Metrics.Error(metrics.ErrLock)
			if !failing {
				hint := ""
				if trace.IsAccessDenied(err) {
					hint = " (the role needs rules: resources [lock], verbs [create, update])"
				}
				l.Log.Errorf("cannot lock user %q: %s%s; retrying with backoff, export continues", user, logging.OneLine(err.Error()), hint)
			}
			failing = true
			if sleep(ctx, bo.NextBackOff()) != nil {
				return
			}
			continue
		}
		if failing {
			l.Log.Infof("placing locks works again")
		}
		failing = false
		bo.Reset()
		l.mu.Lock()
		if l.pending[user].Equal(at) {
			delete(l.pending, user)
		}
		l.mu.Unlock()
		if l.Placed != nil {
			l.Placed(user)
		}
	}
}

func (l *Locker) lock(ctx context.Context, user string, at time.Time) error {
	spec := types.LockSpecV2{
		Target:  types.LockTarget{User: user},
		Message: fmt.Sprintf("locked by teleport-fluent-bit: %d failed logins within %s", l.Attempts, l.Period),
	}
	until := "permanently (lock_for unset)"
	if l.For > 0 {
		exp := at.Add(l.For).UTC()
		spec.Expires = &exp
		until = "until " + exp.Format(time.RFC3339)
	}
	lock, err := types.NewLock(LockName(user), spec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.API.UpsertLock(ctx, lock); err != nil {
		return err
	}
	l.Metrics.LockPlaced()
	l.Log.Infof("locked user %q %s after %d failed logins within %s (lock %s)", user, until, l.Attempts, l.Period, lock.GetName())
	return nil
}
