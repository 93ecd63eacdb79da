package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// The search path on each of Teleport's audit backends as the stand-in
// answers them (test/teleportd/README.md "Search backends"): whole-second or
// inclusive ranges, their key formats and orders, a visibility lag, and the
// faults (DynamoDB's empty page with the same key, the file log's unknown
// key, Athena's rate limit). A backlog and a live stream with two graceful
// restarts and an Auth Service outage: no event twice, no "stored late"
// warning; then a kill -9 and a clean run: every event at least once.
func TestSearchBackends(t *testing.T) {
	tests := []struct {
		backend string
		opts    teleportd.Options
	}{
		{teleportd.BackendIdeal, teleportd.Options{}},
		{teleportd.BackendDynamo, teleportd.Options{FaultEvery: 7}},
		{teleportd.BackendAthena, teleportd.Options{VisibilityLag: 2 * time.Second, SearchRate: 1, SearchBurst: 3}},
		{teleportd.BackendFile, teleportd.Options{FaultEvery: 7}},
		{teleportd.BackendPostgres, teleportd.Options{}},
		{teleportd.BackendFirestore, teleportd.Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			opts := tc.opts
			opts.Backend, opts.ExportUnimplemented = tc.backend, true
			r := newRig(t, opts)
			r.start = time.Now().UTC().Add(-2 * 24 * time.Hour).Truncate(time.Hour)
			end := time.Now().UTC().Add(-time.Minute)
			// A backlog of 2,000 events, several a second in its last minutes.
			r.auth.Generate(teleportd.GenSpec{Start: end.Add(-2 * 24 * time.Hour), Count: 1000, Span: 2 * 24 * time.Hour, Seed: 11, Precision: time.Millisecond})
			r.auth.Generate(teleportd.GenSpec{Start: end.Add(-3 * time.Minute), Count: 1000, Span: 3 * time.Minute, Seed: 12, Precision: time.Millisecond})
			stop, _ := r.auth.Live(teleportd.LiveSpec{Rate: 100, Seed: 13, Precision: time.Millisecond, Tick: 100 * time.Millisecond})
			defer stop()
			addr := freePort(t)
			props := r.props("search_late_tolerance=6s", "batch=50", "metrics_listen="+addr)
			var logs []string

			h := r.host(hostOpts{props: props})
			r.waitCount(h, 2000, 60*time.Second)
			time.Sleep(1500 * time.Millisecond)
			require.NoError(t, h.Stop())
			logs = append(logs, h.Log())

			h = r.host(hostOpts{props: props})
			require.NoError(t, h.WaitLog("connected to Teleport", 1, 30*time.Second))
			time.Sleep(time.Second)
			r.auth.Stop() // the Auth Service is down
			time.Sleep(1500 * time.Millisecond)
			require.NoError(t, r.auth.Restart())
			time.Sleep(3 * time.Second)
			resp, err := http.Get("http://" + addr + "/metrics")
			require.NoError(t, err)
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, h.Stop())
			logs = append(logs, h.Log())
			got := r.ingested()
			_, dups, extra := compare(r.expected(nil), got)
			t.Logf("graceful runs: %d records, %d twice", len(got), len(dups))
			assert.Empty(t, dups, "graceful runs: %d events twice, e.g. %v", len(dups), first(dups))
			assert.Empty(t, extra)

			h = r.host(hostOpts{props: props})
			require.NoError(t, h.WaitLog("connected to Teleport", 1, 30*time.Second))
			time.Sleep(2 * time.Second)
			require.NoError(t, h.Kill())
			logs = append(logs, h.Log())
			stop()
			time.Sleep(2 * time.Second) // the last events become visible
			want := r.expected(nil)
			h = r.host(hostOpts{props: props})
			r.waitAll(h, want, 90*time.Second)
			require.NoError(t, h.Stop())
			logs = append(logs, h.Log())
			missing, _, _ := compare(want, r.ingested())
			assert.Empty(t, missing, "%d of %d events never arrived, e.g. %v", len(missing), len(want), first(missing))
			// Against the server's events now: reading a recording stores a
			// session.recording.access event (Athena mode), exported too.
			_, _, extra = compare(r.expected(nil), r.ingested())
			assert.Empty(t, extra)

			all := strings.Join(logs, "\n")
			assert.NotContains(t, all, "stored more than search_late_tolerance", "no event was stored late")
			st := r.auth.Stats()
			if tc.opts.FaultEvery > 0 {
				require.Positive(t, st.SearchFaults, "the faults happened")
			}
			if tc.opts.SearchRate > 0 {
				require.Positive(t, st.RateLimited, "the rate limit answered")
			}
			if st.SearchFaults > 0 && tc.backend == teleportd.BackendDynamo {
				assert.Contains(t, all, "no progress", "a page without progress is said at warn")
				assert.Regexp(t, `teleport_fluent_bit_search_stalled_pages_total\{cluster="127\.0\.0\.1"\} [1-9]`, string(metrics))
			}
			t.Logf("%s: %d events, %d searches, %d faults, %d rate limited", tc.backend, len(want), st.GetUnstructuredEvents, st.SearchFaults, st.RateLimited)
		})
	}
}
