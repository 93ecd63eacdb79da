package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// The Event Handler as it runs: its calls to the Auth Service through the
// same teleport/api client, its state written byte for byte as its
// state.go writes it (diskv, one file per key in <storage>/<host>_<port>/)
// and lib/events/export/cursor.go (cursor_v2). Its module is not served by
// the Go module proxy, so this is a model of it, cited per step.
type eventHandler struct {
	t     *testing.T
	clt   *client.Client
	start time.Time
	dir   string              // <storage>/<host>_<port>
	sent  map[string]bool     // uids of the audit events it sent
	ups   []string            // sids of the session.upload events it sent, in order
	order []string            // uids in the order sent
	files map[string][]byte   // key -> value, written by save
	dates map[string][]string // cursor_v2: date -> completed chunks
	curs  map[string]map[string]string
}

func newEventHandler(t *testing.T, r *rig, root string) *eventHandler {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clt, err := teleport.Dial(ctx, r.auth.Addr(), client.LoadIdentityFile(r.identity))
	require.NoError(t, err)
	t.Cleanup(func() { clt.Close() })
	// createStorageDir: <storage>/<host>_<port>.
	host, port, _ := strings.Cut(r.auth.Addr(), ":")
	return &eventHandler{t: t, clt: clt, start: r.start, dir: filepath.Join(root, host+"_"+port),
		sent: map[string]bool{}, files: map[string][]byte{}, dates: map[string][]string{}, curs: map[string]map[string]string{}}
}

// send is the Event Handler's handleEvent: it sends the event, and a
// session.upload registers its recording.
func (eh *eventHandler) send(ev *auditlogpb.EventUnstructured) {
	eh.sent[ev.GetId()] = true
	eh.order = append(eh.order, ev.GetId())
	if ev.GetType() == "session.upload" {
		eh.ups = append(eh.ups, ev.GetUnstructured().GetFields()["sid"].GetStringValue())
	}
}

// search is the Event Handler's search (TeleportEventsWatcher.fetch and
// flipPage in v13 to v15, LegacyEventsWatcher in the windowed releases):
// pages of batch events from window start, ascending, each page asked with
// the previous page's next key; windowed, the windows are window long and
// the last ends now. It sends n events and stores cursor (the key the page
// of the last one was asked with), id and, windowed, window_time.
func (eh *eventHandler) search(n int, window time.Duration) {
	ctx := context.Background()
	wst, key := eh.start, ""
	for len(eh.order) < n {
		to := time.Now().UTC()
		if window > 0 && wst.Add(window).Before(to) {
			to = wst.Add(window)
		}
		evs, next, err := eh.clt.SearchUnstructuredEvents(ctx, wst, to, "default", nil, 20, types.EventOrderAscending, key)
		require.NoError(eh.t, err)
		for _, ev := range evs {
			eh.send(ev)
			eh.files["cursor"], eh.files["id"] = []byte(key), []byte(ev.GetId())
			if window > 0 {
				eh.files["window_time"] = []byte(wst.Truncate(time.Second).Format(time.RFC3339))
			}
			if len(eh.order) == n {
				return
			}
		}
		if next == "" {
			require.Greater(eh.t, window, time.Duration(0), "the search ran out of events")
			wst, key = to, "" // the next window
			continue
		}
		key = next
	}
}

// export is the Event Handler's bulk export (lib/events/export: an
// Exporter moving date by date, a DateExporter per date exporting its
// chunks from their cursors). Every chunk of the first dates is completed;
// on the first date after them with two chunks or more, the first chunk is
// completed and the second stops after m events, at that event's cursor.
// The Exporter keeps the current date and BacklogSize (2, events_job.go)
// dates before it; older ones leave cursor_v2.
func (eh *eventHandler) export(m int) {
	ctx := context.Background()
	var dates []string
	for d := eh.start.Truncate(24 * time.Hour); ; d = d.AddDate(0, 0, 1) {
		require.True(eh.t, d.Before(time.Now()), "a date with two chunks or more after a completed one")
		date := d.Format(time.DateOnly)
		dates = append(dates, date)
		eh.curs[date] = map[string]string{}
		chunks := eh.chunks(d)
		partial := len(dates) > 1 && len(chunks) >= 2
		for j, chunk := range chunks {
			limit := -1
			if partial && j == 1 {
				limit = m
			} else if partial && j > 1 {
				break
			}
			s := eh.clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(d), Chunk: chunk})
			k := 0
			for s.Next() {
				it := s.Item()
				eh.send(it.GetEvent())
				k++
				if k == limit {
					eh.curs[date][chunk] = it.GetCursor()
					break
				}
			}
			require.NoError(eh.t, s.Done())
			if limit < 0 {
				eh.dates[date] = append(eh.dates[date], chunk)
			}
		}
		if partial {
			break
		}
	}
	for _, date := range dates[:max(0, len(dates)-3)] {
		delete(eh.curs, date) // pruned from the backlog, deleted by Sync
	}
}

func (eh *eventHandler) chunks(d time.Time) []string {
	s := eh.clt.GetEventExportChunks(context.Background(), &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(d)})
	var out []string
	for s.Next() {
		out = append(out, s.Item().GetChunk())
	}
	require.NoError(eh.t, s.Done())
	return out
}

// save writes the state as the Event Handler does: start_time
// (SetStartTime), the keys set so far (setStringValue), session<sid> with
// the index of the last recording event sent, 8 bytes big endian
// (SetSessionIndex), and cursor_v2 (Cursor.Sync: completed-chunks written
// with Fprintln, <chunk>.chunk holding the cursor). diskv writes 0644
// files in 0755 directories.
func (eh *eventHandler) save(sessions map[string]int64) {
	require.NoError(eh.t, os.MkdirAll(eh.dir, 0o755))
	eh.files["start_time"] = []byte(eh.start.Truncate(time.Second).Format(time.RFC3339))
	for sid, idx := range sessions {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, uint64(idx))
		eh.files["session"+sid] = b
	}
	for k, v := range eh.files {
		require.NoError(eh.t, os.WriteFile(filepath.Join(eh.dir, k), v, 0o644))
	}
	for date, cs := range eh.curs {
		dd := filepath.Join(eh.dir, "cursor_v2", date)
		require.NoError(eh.t, os.MkdirAll(dd, 0o755))
		var completed strings.Builder
		for _, c := range eh.dates[date] {
			fmt.Fprintln(&completed, c)
		}
		require.NoError(eh.t, os.WriteFile(filepath.Join(dd, "completed-chunks"), []byte(completed.String()), 0o644))
		for c, cur := range cs {
			require.NoError(eh.t, os.WriteFile(filepath.Join(dd, c+".chunk"), []byte(cur), 0o644))
		}
	}
}

// An Event Handler's storage in each of its formats, imported with
// `cursor import-event-handler`, then the plugin: every audit event after
// the Event Handler's last one arrives exactly once and none before it; a
// recording it was half-way through goes on after the last event it sent
// of it, one at index 0 starts over, and the ones it finished are not
// exported again.
func TestImportEventHandler(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		run        func(eh *eventHandler)
		opts       teleportd.Options
	}{
		{"search from start_time (v13 to v15)", "search from start_time", func(eh *eventHandler) { eh.search(230, 0) }, teleportd.Options{}},
		{"windowed search", "windowed search", func(eh *eventHandler) { eh.search(230, 24*time.Hour) }, teleportd.Options{ExportUnimplemented: true}},
		{"bulk export (cursor_v2)", "bulk export", func(eh *eventHandler) { eh.export(7) }, teleportd.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			r.auth.Generate(teleportd.GenSpec{Start: r.start.Add(2 * time.Hour), Count: 600, Span: 3 * 24 * time.Hour, Seed: 22, ChunkSize: 40})
			root := filepath.Join(r.dir, "event-handler")
			eh := newEventHandler(t, r, root)
			tc.run(eh)
			require.GreaterOrEqual(t, len(eh.ups), 3, "the Event Handler sent session uploads")
			// Half-way through the first recording, registered only for the
			// second, finished with the others.
			half, zero := eh.ups[0], eh.ups[1]
			eh.save(map[string]int64{half: 2, zero: 0})

			out, err := runCLI(t, "cursor", "import-event-handler", root, "--storage", r.storage)
			require.NoError(t, err, out)
			assert.Contains(t, out, "("+tc.kind)
			assert.Contains(t, out, "recording "+zero+": the Event Handler's index 0")
			assert.Equal(t, 1, strings.Count(out, "index 0 does not tell"), "said once, for the one recording that starts over")
			show, err := runCLI(t, "cursor", "show", "--storage", r.storage)
			require.NoError(t, err, show)
			if tc.kind != "bulk export" {
				assert.Contains(t, show, "after event "+eh.order[len(eh.order)-1], "cursor show says where the search resumes")
			}

			var want []string
			for _, uid := range r.expected(nil) {
				if !eh.sent[uid] {
					want = append(want, uid)
				}
			}
			// How many the Event Handler sent, and how many come after its
			// last, depend on the time of day (the stand-in's backlog ends
			// now): some of each, always.
			require.Greater(t, len(want), 10)
			require.Greater(t, len(eh.sent), 10)
			var resumed []string
			for _, k := range r.recordingKeys([]string{half}, "print", "desktop.recording") {
				var idx int
				fmt.Sscanf(k[strings.IndexByte(k, '/')+1:], "%d", &idx)
				if idx > 2 {
					resumed = append(resumed, k)
				}
			}
			require.NotEmpty(t, resumed)
			wantRecs := append(append([]string{}, resumed...), r.recordingKeys([]string{zero}, "print", "desktop.recording")...) // skip_session_types by default

			h := r.host(hostOpts{props: r.props()})
			var audit, recs []string
			deadline := time.Now().Add(30 * time.Second)
			for {
				audit, recs, _ = r.split()
				if missing, _, _ := compare(want, audit); len(missing) == 0 {
					if missing, _, _ := compare(wantRecs, recs); len(missing) == 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					ma, _, _ := compare(want, audit)
					mr, _, _ := compare(wantRecs, recs)
					t.Fatalf("not everything arrived after 30s: %d of %d audit events missing (e.g. %v), %d of %d recording events (e.g. %v; got e.g. %v)",
						len(ma), len(want), first(ma), len(mr), len(wantRecs), first(mr), first(recs))
				}
				time.Sleep(200 * time.Millisecond)
			}
			time.Sleep(time.Second) // nothing more comes
			require.NoError(t, h.Stop())
			audit, recs, _ = r.split()
			exactlyOnce(t, want, audit)
			// The recordings of the Event Handler's two: exactly the events
			// it had not sent. Those it finished: nothing.
			var mine []string
			for _, k := range recs {
				sid := k[:strings.IndexByte(k, '/')]
				if sid == half || sid == zero {
					mine = append(mine, k)
				}
				for _, done := range eh.ups[2:] {
					require.NotEqual(t, done, sid, "a recording the Event Handler finished was exported again")
				}
			}
			exactlyOnce(t, wantRecs, mine)
		})
	}
}
