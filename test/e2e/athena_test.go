package e2e

import (
	"encoding/json"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// The bulk export as Teleport's Athena backend serves it: a backlog over
// four days whose last chunk of every past day appears late, a twentieth
// of the events stored twice in later chunks, rows out of time order,
// row-count cursors, and a live stream; a chunk begun and then removed
// (NotFound) and one whose cursor the server refuses (BadParameter) are set
// aside, listed by cursor show, and their events come through export
// --chunk. Graceful restarts hand no event over twice; a kill -9 then
// loses none.
func TestAthenaBulkExport(t *testing.T) {
	r := newRig(t, teleportd.Options{Backend: teleportd.BackendAthena,
		Athena: teleportd.AthenaOptions{LateChunks: 1, LateDelay: 6 * time.Second, RepeatShare: 0.05}})
	r.generate(16000, 3*24*time.Hour, 21)
	// queue_bytes 32M: the fetchers read several chunks ahead of the 64K
	// callbacks, so a stop mostly finds two or more of them begun (with the
	// default 8M, one more often).
	props := r.props("callback_bytes=64K", "queue_bytes=32M", "export_chunk_max_attempts=2", "export_late_poll_max=1s")

	// Graceful runs stop with chunks begun. How many the fetchers have begun
	// at a stop depends on the machine's speed (one at times on a loaded CI
	// machine), so the test runs on, a few hundred events at a time, until a
	// stop finds two; every such run is graceful, so nothing is handed over
	// twice.
	var h *flbhost.Host
	var begun [][2]string // day, chunk
	for n := 2500; len(begun) < 2; n += 700 {
		require.Less(t, n, 2500+8*700, "no stop found two chunks in progress: %v", begun)
		h = r.host(hostOpts{props: props})
		r.waitCount(h, n, 60*time.Second)
		require.NoError(t, h.Stop())
		st, err := cursor.Peek(r.storage)
		require.NoError(t, err)
		begun = begun[:0]
		for day, d := range st.Export.Days {
			for c := range d.Cursors {
				begun = append(begun, [2]string{day, c})
			}
		}
		t.Logf("the stop after %d events found %d chunks in progress", n, len(begun))
	}
	sort.Slice(begun, func(i, j int) bool { return begun[i][1] < begun[j][1] })
	removed, refused := begun[0], begun[1]
	r.auth.RemoveChunk(removed[1])
	r.auth.RejectCursors(refused[1])

	stop := liveStream(r, 100)
	defer stop()
	h = r.host(hostOpts{props: props})
	require.NoError(t, h.WaitLog("aside:", 2, 60*time.Second))
	time.Sleep(7 * time.Second) // the late chunks and the repeats appear
	require.NoError(t, h.Stop())
	h = r.host(hostOpts{props: props})
	time.Sleep(3 * time.Second)
	stop()
	time.Sleep(time.Second)
	want := r.expected(nil)
	gone := map[string]bool{}
	for _, c := range [][2]string{removed, refused} {
		for _, u := range r.auth.ChunkUIDs(c[1]) {
			gone[u] = true
		}
	}
	var reachable []string
	for _, u := range want {
		if !gone[u] {
			reachable = append(reachable, u)
		}
	}
	r.waitAll(h, reachable, 90*time.Second)
	require.NoError(t, h.WaitLog("caught up:", 1, 60*time.Second))
	require.NoError(t, h.Stop())
	got := r.ingested()
	missing, _, _ := compare(reachable, got)
	_, dups, extra := compare(r.expected(nil), got) // with the session.recording.access events stored meanwhile
	assert.Empty(t, missing, "every event of the chunks served")
	assert.Empty(t, dups, "graceful runs hand no event over twice, although a twentieth were stored twice")
	assert.Empty(t, extra)

	// The set-aside chunks are listed, with their day and why.
	out, err := exec.Command(cliPath(t), "cursor", "show", "--storage", r.storage).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), `"set_aside"`)
	assert.Contains(t, string(out), removed[1])
	assert.Contains(t, string(out), refused[1])
	assert.Contains(t, string(out), "last: NotFound")
	assert.Contains(t, string(out), "last: BadParameter")
	assert.Contains(t, string(out), "export --config FILE --chunk")

	// Served again, they are re-exported by export --chunk.
	r.auth.RestoreChunk(removed[1])
	r.auth.AcceptCursors(refused[1])
	var again []string
	for _, c := range [][2]string{removed, refused} {
		out, err := exec.Command(cliPath(t), "export", "--chunk", c[0]+"/"+c[1],
			"-p", "teleport_addr="+r.auth.Addr(), "-p", "teleport_identity="+r.identity,
			"-p", "storage_dir="+r.storage).Output()
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m))
			again = append(again, m["uid"].(string))
		}
	}
	missing, _, _ = compare(want, append(got, again...))
	assert.Empty(t, missing, "with the re-exported chunks, every event")

	// Teleport's UploadCompleter announces a finished session again: a new
	// session.upload now and a session.end with the session's old time
	// (in a new chunk of its old day). The recording is not exported again.
	_, recs, uploads := r.split()
	require.NotEmpty(t, uploads)
	sid := uploads[0]
	keys := r.recordingKeys([]string{sid}, "print", "desktop.recording")
	_, rdups, _ := compare(keys, recs)
	require.Empty(t, rdups)
	late := r.auth.CompleteUpload(sid, r.start.Add(time.Hour))
	h = r.host(hostOpts{props: props})
	r.waitAll(h, late, 60*time.Second)
	require.NoError(t, h.WaitLog("caught up:", 1, 60*time.Second))
	require.NoError(t, h.Stop())
	_, recs, _ = r.split()
	rmissing, rdups, _ := compare(keys, recs)
	assert.Empty(t, rmissing)
	assert.Empty(t, rdups, "a recording announced again is not exported again")

	// kill -9 during a live stream, then a clean run: nothing lost.
	stop = liveStream(r, 100)
	h = r.host(hostOpts{props: props})
	require.NoError(t, h.WaitLog("connected to Teleport", 1, 30*time.Second))
	time.Sleep(3 * time.Second)
	require.NoError(t, h.Kill())
	stop()
	h = r.host(hostOpts{props: props})
	final := r.expected(nil)
	var reach2 []string
	for _, u := range final {
		if !gone[u] {
			reach2 = append(reach2, u)
		}
	}
	r.waitAll(h, reach2, 90*time.Second)
	require.NoError(t, h.Stop())
	missing, dups, _ = compare(reach2, r.ingested())
	assert.Empty(t, missing, "nothing lost across kill -9")
	t.Logf("%d events (%d served), %d re-exported, %d duplicates after the kill, %d session.recording.access events",
		len(final), len(reach2), len(again), len(dups), r.auth.RecordingAccesses())
}
