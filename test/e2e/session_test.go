package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// split sorts ingested records into audit uids and recording keys
// ("sid/index": print events carry no uid).
func (r *rig) split() (audit, recs []string, uploads []string) {
	r.t.Helper()
	got, _, err := flbhost.ReadIngest(r.ingest)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	require.NoError(r.t, err)
	for _, rec := range got {
		if sid, ok := rec.Body[record.SessionIDField].(string); ok {
			recs = append(recs, fmt.Sprintf("%s/%v", sid, rec.Body["ei"]))
			continue
		}
		uid, _ := rec.Body["uid"].(string)
		audit = append(audit, uid)
		if rec.Body["event"] == "session.upload" {
			uploads = append(uploads, rec.Body["sid"].(string))
		}
	}
	return audit, recs, uploads
}

// recordingKeys is the server's ground truth for the recordings of sids,
// without the skipped types.
func (r *rig) recordingKeys(sids []string, skip ...string) []string {
	var out []string
	for _, sid := range sids {
	events:
		for _, ev := range r.auth.RecordingEvents(sid) {
			for _, s := range skip {
				if ev.Type == s {
					continue events
				}
			}
			out = append(out, fmt.Sprintf("%s/%d", sid, ev.Index))
		}
	}
	return out
}

// waitRecordings waits until n recording records were ingested.
func (r *rig) waitRecordings(h *flbhost.Host, n int, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, recs, _ := r.split()
		if len(recs) >= n {
			return
		}
		select {
		case <-h.Done():
			r.t.Fatalf("host exited early with %d/%d recording records", len(recs), n)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d/%d recording records after %s", len(recs), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordingModes are the Auth Services the recording suite runs against:
// one with StreamUnstructuredSessionEvents, and one older that answers it
// Unimplemented and has only the legacy StreamSessionEvents.
var recordingModes = []struct {
	name string
	opts teleportd.Options
}{
	{"unstructured", teleportd.Options{}},
	{"legacy", teleportd.Options{RecordingsUnimplemented: true}},
}

// checkMode checks the plugin said which recording RPC it uses, once.
func checkMode(t *testing.T, h *flbhost.Host, opts teleportd.Options) {
	t.Helper()
	n := strings.Count(h.Log(), "session recordings: the Auth Service answers Unimplemented")
	if opts.RecordingsUnimplemented {
		assert.Equal(t, 1, n, "the switch to StreamSessionEvents is logged once")
	} else {
		assert.Zero(t, n)
	}
}

// Every recording event arrives exactly once, next to the audit events, with
// the session id field that rewrite_tag routes on; skip_session_types is
// honoured.
func TestRecordingsExactlyOnce(t *testing.T) {
	for _, mode := range recordingModes {
		t.Run(mode.name, func(t *testing.T) { recordingsExactlyOnce(t, mode.opts) })
	}
}

func recordingsExactlyOnce(t *testing.T, opts teleportd.Options) {
	for _, tc := range []struct {
		name  string
		props []string
		skip  []string
	}{
		{"default skip types", nil, []string{"print", "desktop.recording"}},
		{"export everything", []string{"skip_session_types=,"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, opts)
			r.generate(4000, 24*time.Hour, 40)
			h := r.host(hostOpts{props: r.props(tc.props...)})
			r.waitCount(h, len(r.expected(nil)), 60*time.Second)
			require.NoError(t, h.WaitLog("caught up:", 1, 60*time.Second), "caught up once recordings are done too")
			require.NoError(t, h.Stop())
			checkMode(t, h, opts)

			audit, recs, uploads := r.split()
			exactlyOnce(t, r.expected(nil), audit)
			require.NotEmpty(t, uploads)
			want := r.recordingKeys(uploads, tc.skip...)
			require.NotEmpty(t, want)
			exactlyOnce(t, want, recs)
			if tc.skip != nil {
				got, _, _ := flbhost.ReadIngest(r.ingest)
				for _, rec := range got {
					if _, ok := rec.Body[record.SessionIDField]; ok {
						assert.NotContains(t, tc.skip, rec.Body["event"])
					}
				}
			}
		})
	}
}

// kill -9 in the middle of a large recording, then a restart: nothing lost,
// and per kill at most the callbacks of one commit delay and two more again.
func TestKillMidRecording(t *testing.T) {
	for _, mode := range recordingModes {
		t.Run(mode.name, func(t *testing.T) { killMidRecording(t, mode.opts) })
	}
}

func killMidRecording(t *testing.T, opts teleportd.Options) {
	r := newRig(t, opts)
	const sid = "7d9c6a2e-0000-4000-8000-00000000b16e"
	r.auth.GenerateRecording(sid, 150000, 1)
	r.auth.AddSession(sid, time.Now().Add(-time.Hour), true)
	want := r.recordingKeys([]string{sid})
	const interval = 100 * time.Millisecond
	delay := conf.MinCommitDelay
	props := r.props("skip_session_types=,", "callback_bytes=256K", "commit_delay="+delay.String())
	for i := 0; i < 3; i++ {
		h := r.host(hostOpts{props: props, interval: int(interval / time.Millisecond)})
		r.waitRecordings(h, (i+1)*len(want)/5, 120*time.Second) // a loaded CI machine is slow
		require.NoError(t, h.Kill())
	}
	h := r.host(hostOpts{props: props, interval: int(interval / time.Millisecond)})
	r.waitRecordings(h, len(want), 120*time.Second)
	require.NoError(t, h.WaitLog("caught up:", 1, 30*time.Second))
	require.NoError(t, h.Stop())
	_, recs, _ := r.split()
	missing, dups, extra := compare(want, recs)
	assert.Empty(t, missing, "nothing lost")
	assert.Empty(t, extra)
	perKill := (int(delay/interval) + 2) * (256 << 10) / 60 // recording records are over 60 bytes
	assert.LessOrEqual(t, len(dups), 3*perKill, "duplicates bounded by the commit delay")
}

// A recording not uploaded yet is exported once it appears; one that keeps
// failing is given up with one warning naming it, while audit events and the
// other recordings keep flowing. The cursor lists it as given up, and
// export --session writes it once it can be read.
func TestMissingAndFailingRecordings(t *testing.T) {
	for _, mode := range recordingModes {
		t.Run(mode.name, func(t *testing.T) { missingAndFailingRecordings(t, mode.opts) })
	}
}

func missingAndFailingRecordings(t *testing.T, opts teleportd.Options) {
	r := newRig(t, opts)
	now := time.Now()
	late, broken, fine := "5e1a7e00-0000-4000-8000-00000000001a", "b40c3e00-0000-4000-8000-00000000002b", "f19e0000-0000-4000-8000-00000000003c"
	for _, sid := range []string{late, broken, fine} {
		r.auth.AddSession(sid, now.Add(-10*time.Minute), true)
	}
	r.auth.SetRecordingMissing(late, now.Add(3*time.Second))
	r.auth.SetRecordingFailing(broken, codes.Internal, -1)
	r.generate(2000, 2*time.Hour, 41)
	h := r.host(hostOpts{props: r.props("skip_session_types=,", "session_retry_interval=300ms", "session_max_attempts=3")})

	r.waitCount(h, len(r.expected(nil)), 60*time.Second)
	require.NoError(t, h.WaitLog("session "+broken+": giving up", 1, 30*time.Second))
	want := r.recordingKeys([]string{late, fine})
	r.waitRecordings(h, len(r.recordingKeys(uploadsOf(r)))-len(r.recordingKeys([]string{broken})), 60*time.Second)
	require.NoError(t, h.Stop())

	audit, recs, uploads := r.split()
	exactlyOnce(t, r.expected(nil), audit)
	var others []string
	for _, s := range uploads {
		if s != broken {
			others = append(others, s)
		}
	}
	exactlyOnce(t, r.recordingKeys(others), recs)
	assert.Subset(t, recs, want, "the late recording arrived once uploaded")
	assert.Equal(t, 1, strings.Count(h.Log(), "giving up on its recording"), "one warning, naming the session")
	assert.Greater(t, r.auth.RecordingStats().NotFound, int64(0))
	checkMode(t, h, opts)

	st, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	require.Len(t, st.GivenUp, 1)
	assert.Equal(t, broken, st.GivenUp[0].SessionID)
	assert.Contains(t, st.GivenUp[0].Reason, "failed 3 times (session_max_attempts)")
	assert.WithinDuration(t, time.Now(), st.GivenUp[0].At, time.Minute)

	r.auth.SetRecordingFailing(broken, codes.OK, 0)
	out, err := exec.Command(cliPath(t), "export", "--session", broken,
		"-p", "teleport_addr="+r.auth.Addr(), "-p", "teleport_identity="+r.identity,
		"-p", "storage_dir="+r.storage, "-p", "skip_session_types=,").Output()
	require.NoError(t, err)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		got = append(got, fmt.Sprintf("%s/%v", m[record.SessionIDField], m["ei"]))
	}
	exactlyOnce(t, r.recordingKeys([]string{broken}), got)
}

func uploadsOf(r *rig) []string {
	_, _, uploads := r.split()
	return uploads
}
