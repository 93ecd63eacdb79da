package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// auditAndRecordings adds audit events and nSessions sessions of n events.
func auditAndRecordings(h *harness, nSessions, n int) (audit, recordings []string) {
	audit = h.auth.add(start.Add(time.Hour), time.Minute, 300, "user.login")
	for i := 0; i < nSessions; i++ {
		sid := fmt.Sprintf("sess-%03d", i)
		at := start.Add(2*time.Hour + time.Duration(i)*time.Minute)
		recordings = append(recordings, h.auth.addSession(sid, at, n)...)
	}
	return audit, recordings
}

func TestRecordingsExportedOnceAlongsideAudit(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil // export every recording event
	audit, recs := auditAndRecordings(h, 20, 50)
	want := len(audit) + 2*20 + len(recs) // audit + session.end/upload + recordings

	e := h.start()
	got := drain(t, e, want, true)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.Len(t, got, want, "nothing twice, although both session.end and session.upload announce each")
	assert.True(t, isSubset(got, recs), "every recording event")
	assert.True(t, isSubset(got, audit), "every audit event")

	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Empty(t, st.Sessions, "finished sessions leave no state")
	assert.True(t, st.UploadsSeen)
}

func TestSkipSessionTypesDefaultDropsPrint(t *testing.T) {
	h := newHarness(t) // default skip_session_types: print, desktop.recording
	audit, _ := auditAndRecordings(h, 3, 10)
	e := h.start()
	got := drain(t, e, len(audit)+6+3, true)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.Len(t, got, len(audit)+6+3, "only the session.start of each recording, no print")
	for _, id := range got {
		assert.NotContains(t, id, "-rec-1", "print events skipped")
	}
}

func TestRecordingResumesAfterRestartAndCrash(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	h.cfg.Concurrency = 1
	audit, recs := auditAndRecordings(h, 1, 5000)
	want := len(audit) + 2 + len(recs)

	e := h.start()
	got := drain(t, e, len(audit)+1500, true)
	require.NoError(t, shutdown(e)) // graceful: nothing repeats
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	require.Len(t, st.Sessions, 1, "the unfinished recording is in the state")

	e = h.start()
	got = append(got, drain(t, e, 1000, true)...)
	lost := settle(t, e)
	crash(e)

	e = h.start()
	rest := drain(t, e, want-len(got), true)
	require.NoError(t, shutdown(e))
	all := append(got, rest...) // got lacks lost: the host died before ingesting it
	assert.True(t, isSubset(all, recs), "every recording event")
	assert.Equal(t, lost, rest[:len(lost)], "the uncommitted callback comes again first")
	assert.Len(t, all, want, "and nothing else repeats")
}

func TestMissingRecordingRetriedThenGivenUp(t *testing.T) {
	h := newHarness(t)
	h.cfg.SessionRetryInterval = 20 * time.Millisecond
	h.cfg.SessionGiveUpAfter = 24 * time.Hour
	h.cfg.SkipSessionTypes = nil
	// A recording announced long ago and never uploaded is given up.
	h.auth.addSession("gone", h.now.Add(-30*time.Hour), 0)
	// One announced recently is retried until it appears.
	h.auth.addSession("late", h.now.Add(-time.Hour), 0)
	audit := h.auth.add(start.Add(time.Hour), time.Minute, 200, "user.login")

	e := h.start()
	got := drain(t, e, len(audit)+4, true)
	require.Eventually(t, func() bool {
		got = append(got, pump(t, e)...)
		return contains(h.log.String(), "session gone: giving up")
	}, 5*time.Second, 10*time.Millisecond)
	h.auth.mu.Lock()
	h.auth.recordings["late"] = nil // uploaded now, empty recording
	h.auth.mu.Unlock()
	late := h.auth.addRecordingEvents("late", 30)
	got = append(got, drain(t, e, len(late), true)...)
	require.NoError(t, shutdown(e))
	assert.True(t, isSubset(got, late), "the recording arrived once uploaded")
	assert.True(t, isSubset(got, audit), "audit events keep flowing")
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Empty(t, st.Sessions)
	assert.Equal(t, 1, count(h.log.String(), "giving up"), "one warning naming the session")
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func count(s, sub string) int { return strings.Count(s, sub) }

func isSubset(all, sub []string) bool {
	have := make(map[string]bool, len(all))
	for _, a := range all {
		have[a] = true
	}
	for _, s := range sub {
		if !have[s] {
			return false
		}
	}
	return true
}

// A backlog announcing more recordings than are exported meanwhile holds
// audit events back, so the sessions in the state stay bounded; every
// recording still arrives.
func TestManySessionsStayBounded(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	h.cfg.CallbackBytes = 64 << 10 // a few hundred announcements per callback at most
	saved := maxActiveSessions
	maxActiveSessions = 100
	defer func() { maxActiveSessions = saved }()
	const n = 3000
	var recs []string
	for i := 0; i < n; i++ {
		recs = append(recs, h.auth.addSession(fmt.Sprintf("many-%05d", i), start.Add(time.Duration(i)*time.Second), 2)...)
	}
	e := h.start()
	var got []string
	peak := 0
	for deadline := time.Now().Add(30 * time.Second); len(got) < 2*n+len(recs) && time.Now().Before(deadline); {
		if b := e.Collect(); len(b) > 0 {
			got = append(got, uids(t, b)...)
			e.Handed()
		} else {
			time.Sleep(2 * time.Millisecond)
		}
		e.mu.Lock()
		peak = max(peak, len(e.committed.Sessions))
		e.mu.Unlock()
	}
	require.NoError(t, shutdown(e))
	assert.Len(t, got, 2*n+len(recs))
	assert.True(t, isSubset(got, recs), "every recording event")
	assert.LessOrEqual(t, peak, maxActiveSessions+250, "sessions in the state stay bounded (one callback may announce ~200 more)")
	t.Logf("peak sessions in the state: %d", peak)
}

// A recording starts streaming once Fluent Bit takes the audit event that
// announces it, not a commit_delay later; its positions still commit only
// after the announcement's, so a kill -9 before that brings both again.
func TestRecordingStreamsBeforeItsAnnouncementCommits(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	h.cfg.CommitDelay = time.Hour // nothing commits in this test's first run
	audit, recs := auditAndRecordings(h, 2, 30)

	e := h.start()
	got := drain(t, e, len(audit)+4+len(recs), true)
	assert.True(t, isSubset(got, recs), "every recording event handed over before any commit")
	e.mu.Lock()
	assert.Empty(t, e.committed.Sessions, "the announcements are not committed")
	e.mu.Unlock()

	crash(e)
	h.cfg.CommitDelay = 20 * time.Millisecond
	e = h.start()
	again := drain(t, e, len(audit)+4+len(recs), true)
	require.NoError(t, shutdown(e))
	assert.ElementsMatch(t, got, again, "after kill -9 the announcements and their recordings all come again")
}
