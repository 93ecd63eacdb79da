package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// On the search path, a cluster storing a share of its events late (here
// 2 s, within search_late_tolerance 3s) while the plugin polls, with a
// graceful restart in between: every event exactly once. One event stored
// 5 s late, beyond the tolerance, is found a tolerance later, exported once
// and counted.
func TestSearchPathLateEvents(t *testing.T) {
	r := newRig(t, teleportd.Options{ExportUnimplemented: true})
	r.start = time.Now().UTC().Add(-40 * time.Second).Truncate(time.Second) // start_time has whole seconds
	addr := freePort(t)
	props := r.props("search_late_tolerance=3s", "batch=50", "metrics_listen="+addr)
	stop, late := r.auth.Live(teleportd.LiveSpec{Rate: 100, Seed: 41, LateShare: 0.2, LateDelay: 2 * time.Second, Tick: 100 * time.Millisecond})
	defer stop()

	h := r.host(hostOpts{props: props})
	r.waitCount(h, 200, 30*time.Second)
	time.Sleep(2 * time.Second)
	require.NoError(t, h.Stop())
	h = r.host(hostOpts{props: props})
	time.Sleep(2 * time.Second)
	beyond := "beyond-" + time.Now().Format("150405.000000")
	r.auth.Add(teleportd.Event{Fields: map[string]any{
		"event": "user.login", "code": "T1000I", "uid": beyond, "time": time.Now().UTC().Add(-5 * time.Second).Format(time.RFC3339Nano),
		"user": "alice", "success": true, "method": "local",
	}})
	time.Sleep(time.Second)
	stop()
	require.Greater(t, late(), int64(100), "the stand-in stored late events")
	want := r.expected(nil)
	r.waitCount(h, len(want), 30*time.Second)
	require.NoError(t, h.WaitLog("stored more than search_late_tolerance (3s)", 1, 15*time.Second))
	time.Sleep(time.Second) // nothing more comes
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
	assert.Contains(t, string(body), "teleport_fluent_bit_search_late_events_total{cluster=\"127.0.0.1\"} 1\n", "the event beyond the tolerance is counted")
}
