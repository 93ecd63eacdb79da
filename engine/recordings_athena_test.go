package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

func countIn(got []string, want []string) int {
	set := map[string]bool{}
	for _, w := range want {
		set[w] = true
	}
	n := 0
	for _, g := range got {
		if set[g] {
			n++
		}
	}
	return n
}

// A recording announced again after it was exported (a second
// session.upload, as Teleport's UploadCompleter may emit) is not exported
// again, in the same run or after a graceful restart.
func TestRecordingAnnouncedTwiceExportedOnce(t *testing.T) {
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	rec := h.auth.addSession("s-twice", h.now.Add(-2*time.Hour), 20)
	e := h.start()
	got := drain(t, e, 2+len(rec), true)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...)
	require.Equal(t, len(rec), countIn(got, rec))

	up := h.auth.addEvent("session.upload", h.now.Add(-time.Minute), map[string]any{"sid": "s-twice"})
	got = append(got, drain(t, e, len(got)+1, true)...)
	got = append(got, drainFor(t, e, 500*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.Contains(t, got, up)
	assert.Equal(t, len(rec), countIn(got, rec), "the recording is not exported again")

	up2 := h.auth.addEvent("session.upload", h.now.Add(-30*time.Second), map[string]any{"sid": "s-twice"})
	e = h.start()
	again := drain(t, e, 1, true)
	again = append(again, drainFor(t, e, 500*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.Equal(t, []string{up2}, again, "after a restart too")
}

// On a cluster that emits session.upload, a session.end whose upload never
// comes still gets its recording exported, after endWithoutUploadWait.
func TestSessionEndWithoutUploadExported(t *testing.T) {
	old := endWithoutUploadWait
	endWithoutUploadWait = 300 * time.Millisecond
	defer func() { endWithoutUploadWait = old }()
	h := newHarness(t)
	h.cfg.SkipSessionTypes = nil
	h.auth.addSession("s-normal", h.now.Add(-3*time.Hour), 5) // the cluster emits uploads
	h.auth.addEvent("session.end", h.now.Add(-2*time.Hour), map[string]any{"sid": "s-lonely", "session_recording": "node"})
	rec := h.auth.addRecordingEvents("s-lonely", 7)
	e := h.start()
	got := drain(t, e, 3+5+len(rec), true)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...)
	require.NoError(t, shutdown(e))
	assert.Equal(t, len(rec), countIn(got, rec), "exported once, without a session.upload")
	st, err := cursor.Peek(h.cfg.StorageDir)
	require.NoError(t, err)
	assert.Empty(t, st.Sessions)
}
