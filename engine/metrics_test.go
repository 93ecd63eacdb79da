package engine

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func scrape(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// The metrics tell what was handed over, and the caught-up line is logged
// once, only when the backlog has been handed over.
func TestMetricsAndCaughtUpLine(t *testing.T) {
	h := newHarness(t)
	h.cfg.MetricsListen = "127.0.0.1:0"
	h.cfg.SkipSessionTypes = nil
	audit, recs := auditAndRecordings(h, 3, 20)
	e := h.start()
	addr := e.MetricsAddr()
	require.NotEmpty(t, addr)

	got := drain(t, e, 100, true)
	assert.NotContains(t, h.log.String(), "caught up", "not while the backlog drains")
	total := len(audit) + 6 + len(recs)
	got = append(got, drain(t, e, total-len(got), true)...)
	got = append(got, drainFor(t, e, 300*time.Millisecond)...)
	require.Len(t, got, total)
	assert.Equal(t, 1, count(h.log.String(), "caught up:"))

	out := scrape(t, addr)
	assert.Contains(t, out, "teleport_fluent_bit_events_handed_over_total{class=\"audit\",cluster=\"127.0.0.1\"} 306\n")
	assert.Contains(t, out, "teleport_fluent_bit_events_handed_over_total{class=\"session\",cluster=\"127.0.0.1\"} 60\n")
	assert.Contains(t, out, "teleport_fluent_bit_caught_up{cluster=\"127.0.0.1\"} 1\n")
	assert.Contains(t, out, "teleport_fluent_bit_sessions_pending{cluster=\"127.0.0.1\"} 0\n")
	require.NoError(t, shutdown(e))

	_, err := http.Get("http://" + addr + "/metrics")
	assert.Error(t, err, "nothing listens after Stop")
}

func TestNoMetricsListenerByDefault(t *testing.T) {
	h := newHarness(t)
	e := h.start()
	defer shutdown(e)
	assert.Empty(t, e.MetricsAddr())
	assert.False(t, strings.Contains(h.log.String(), "metrics"))
}

// Behind again: old events handed over after catching up say so, and the
// next caught-up marker says caught up again.
func TestFallingBehindAndCatchingUp(t *testing.T) {
	h := newHarness(t)
	h.cfg.PollInterval = 10 * time.Millisecond
	h.auth.addEvent("user.login", h.now.Add(-time.Second), map[string]any{"user": "a", "success": true})
	e := h.start()
	drainFor(t, e, 200*time.Millisecond)
	require.Equal(t, 1, count(h.log.String(), "caught up:"))
	// A late chunk of yesterday, hours old, arrives.
	h.auth.add(h.now.Add(-20*time.Hour), time.Second, 50, "user.login")
	drainFor(t, e, 300*time.Millisecond)
	require.NoError(t, shutdown(e))
	assert.Equal(t, 1, count(h.log.String(), "falling behind"))
	assert.Equal(t, 2, count(h.log.String(), "caught up:"))
}
