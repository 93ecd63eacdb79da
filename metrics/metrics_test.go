package metrics

import (
	"io"
	"net/http"
	"strconv"
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

func TestSeriesAndValues(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	m := New(func() time.Time { return now }, "")
	addr, stop, err := m.Serve("127.0.0.1:0")
	require.NoError(t, err)
	defer stop()

	m.HandedOver(10, 4, 5000, now.Add(-90*time.Second))
	m.HandedOver(5, 0, 1000, now.Add(-100*time.Second)) // older: lag keeps the newest
	m.Error(ErrExport)
	m.CaughtUp(true)
	m.Sessions(7, 2)
	m.SessionGivenUp()
	m.LockPlaced()
	m.LateEvents(2)
	m.Commit(3 * time.Millisecond)
	m.IdentityExpiry(now.Add(time.Hour))

	out := scrape(t, addr)
	for _, want := range []string{
		`teleport_fluent_bit_events_handed_over_total{class="audit"} 15`,
		`teleport_fluent_bit_events_handed_over_total{class="session"} 4`,
		`teleport_fluent_bit_handed_over_bytes_total 6000`,
		`teleport_fluent_bit_lag_seconds 90`,
		`teleport_fluent_bit_caught_up 1`,
		`teleport_fluent_bit_sessions_pending 7`,
		`teleport_fluent_bit_sessions_in_flight 2`,
		`teleport_fluent_bit_sessions_given_up_total 1`,
		`teleport_fluent_bit_locks_placed_total 1`,
		`teleport_fluent_bit_search_late_events_total 2`,
		`teleport_fluent_bit_errors_total{kind="export"} 1`,
		`teleport_fluent_bit_errors_total{kind="connect"} 0`,
		`teleport_fluent_bit_cursor_commit_seconds_count 1`,
		`teleport_fluent_bit_identity_expiry_timestamp_seconds ` + strconv.FormatFloat(float64(now.Add(time.Hour).Unix()), 'g', -1, 64),
	} {
		assert.Contains(t, out, want)
	}
	assert.False(t, strings.Contains(out, "go_goroutines"), "only our series: Fluent Bit's process is not ours to describe")
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.HandedOver(1, 1, 1, time.Now())
	m.Error(ErrLock)
	m.CaughtUp(true)
	m.Sessions(1, 1)
	m.SessionGivenUp()
	m.LockPlaced()
	m.LateEvents(2)
	m.Commit(time.Second)
	m.IdentityExpiry(time.Now())
}

func TestServeBadAddress(t *testing.T) {
	_, _, err := New(time.Now, "").Serve("256.0.0.1:99999")
	assert.Error(t, err)
}

// Two inputs given the same metrics_listen share one address; each series
// says its cluster, and the address stays up until the last one stops.
func TestInputsShareAnAddressByCluster(t *testing.T) {
	now := time.Now()
	prod, staging := New(func() time.Time { return now }, "prod"), New(func() time.Time { return now }, "staging")
	addr, stopProd, err := prod.Serve("127.0.0.1:0")
	require.NoError(t, err)
	addr2, stopStaging, err := staging.Serve("127.0.0.1:0")
	require.NoError(t, err)
	assert.Equal(t, addr, addr2, "the same metrics_listen is one listener")

	prod.HandedOver(3, 0, 10, now)
	staging.HandedOver(5, 0, 10, now)
	staging.CaughtUp(true)
	out := scrape(t, addr)
	assert.Contains(t, out, `teleport_fluent_bit_events_handed_over_total{class="audit",cluster="prod"} 3`)
	assert.Contains(t, out, `teleport_fluent_bit_events_handed_over_total{class="audit",cluster="staging"} 5`)
	assert.Contains(t, out, `teleport_fluent_bit_caught_up{cluster="prod"} 0`)
	assert.Contains(t, out, `teleport_fluent_bit_caught_up{cluster="staging"} 1`)

	stopProd()
	stopProd() // a second stop is harmless
	out = scrape(t, addr)
	assert.NotContains(t, out, `cluster="prod"`)
	assert.Contains(t, out, `cluster="staging"`)
	stopStaging()
	_, err = http.Get("http://" + addr + "/metrics")
	assert.Error(t, err, "closed with the last input")
}
