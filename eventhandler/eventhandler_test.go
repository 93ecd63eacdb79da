package eventhandler

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
)

// The files below are written byte for byte as the Event Handler writes
// them (its own module is not served by the Go module proxy):
//   - diskv with a flat transform: one file per key, named by the key,
//     holding the value (state.go, NewState and setStringValue);
//   - times as t.Truncate(time.Second).Format(time.RFC3339) (SetStartTime,
//     setTimeKey);
//   - session indices as 8 bytes big endian under "session"+id
//     (SetSessionIndex);
//   - missing recordings as json.Marshal(missingRecording{Index, Attempt,
//     Timestamp}) under "missing_recording"+id (SetMissingRecording);
//   - cursor_v2/<date>/completed-chunks with fmt.Fprintln(chunk) per chunk
//     and <chunk>.chunk holding the cursor (lib/events/export/cursor.go,
//     syncDate).

func ehTime(t time.Time) []byte { return []byte(t.Truncate(time.Second).Format(time.RFC3339)) }

func ehIndex(i int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func ehMissing(t *testing.T, idx int64, attempt int, ts time.Time) []byte {
	// The Event Handler's missingRecording type, field for field.
	type missingRecording struct {
		ID        string `json:"id,omitempty"`
		Index     int64
		Attempt   int
		Timestamp time.Time
	}
	b, err := json.Marshal(missingRecording{Index: idx, Attempt: attempt, Timestamp: ts})
	require.NoError(t, err)
	return b
}

// writeTree writes files (path -> content; a path ending in / is a
// directory) under dir, 0644 and 0755 as diskv and the Event Handler do.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	for p, data := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			require.NoError(t, os.MkdirAll(full, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, data, 0o644))
	}
}

const (
	sidA = "5a0c1d5e-8d0b-4a4e-9a5e-6f2a0d7c1e01"
	sidB = "5a0c1d5e-8d0b-4a4e-9a5e-6f2a0d7c1e02"
	sidC = "5a0c1d5e-8d0b-4a4e-9a5e-6f2a0d7c1e03"
)

func TestImportFormats(t *testing.T) {
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	window := time.Date(2024, 5, 3, 10, 0, 0, 0, time.UTC)
	now := time.Date(2024, 5, 4, 8, 30, 0, 0, time.UTC)
	uploaded := time.Date(2024, 5, 3, 9, 0, 0, 0, time.UTC)
	key := `{"date":"2024-05-03","iterator":"eyJDcmVhdGVkQXQiOjE3MTQ3MjY4MDB9"}`
	id := "0e6f8b56-7d7f-4f0e-8d48-3b4f1f2e9a10"

	tests := map[string]struct {
		files map[string][]byte
		sub   string // the <host>_<port> directory (""; the files are at the root)
		check func(t *testing.T, r *Result)
	}{
		"v13-v15: search from start_time": {
			sub: "teleport.example.com_443",
			files: map[string][]byte{
				"start_time":      ehTime(start),
				"cursor":          []byte(key),
				"id":              []byte(id),
				"session" + sidA:  ehIndex(41),
				"session" + sidB:  ehIndex(0),
				"dry_run/abc/id":  []byte("x"),
				"dry_run/abc/cur": []byte("y"),
			},
			check: func(t *testing.T, r *Result) {
				st := r.State
				assert.Equal(t, KindSearch, r.Kind)
				assert.Equal(t, start, st.StartTime)
				assert.Equal(t, cursor.ModeSearch, st.Mode)
				require.NotNil(t, st.Search)
				assert.Equal(t, start, st.Search.WindowStart)
				// One window: the Event Handler's own search, from start_time
				// to the import, resumed at its page key after its last event.
				assert.Equal(t, []*cursor.Window{{Start: start, End: now, Key: key, LastID: id, Limit: cursor.MaxSearchLimit}}, st.Search.Windows)
				// Index 41 was sent: the plugin resumes at 42. Index 0 may
				// mean nothing was sent: from the start.
				assert.Equal(t, &cursor.Session{Next: 42, Announced: now}, st.Sessions[sidA])
				assert.Equal(t, &cursor.Session{Next: 0, Announced: now}, st.Sessions[sidB])
				assert.True(t, st.UploadsSeen)
				assert.Len(t, grep(r.Notes, "index 0"), 1, "said once for the recording that starts over")
				assert.Contains(t, grep(r.Notes, "index 0")[0], sidB)
				assert.Len(t, grep(r.Notes, "only that search can use it"), 1)
				assert.Len(t, grep(r.Notes, "dry_run"), 1)
			},
		},
		"windowed search (window_time)": {
			files: map[string][]byte{
				"start_time":               ehTime(start),
				"window_time":              ehTime(window),
				"cursor":                   []byte(key),
				"id":                       []byte(id),
				"session" + sidA:           ehIndex(3),
				"missing_recording" + sidC: ehMissing(t, 0, 2, uploaded),
				"session":                  {}, // the bare prefix key: skipped like GetSessions does
			},
			check: func(t *testing.T, r *Result) {
				st := r.State
				assert.Equal(t, KindWindowedSearch, r.Kind)
				assert.Equal(t, start, st.StartTime)
				assert.Equal(t, window, st.Search.WindowStart)
				// The window ends a window-size later, or at the import.
				assert.Equal(t, []*cursor.Window{{Start: window, End: now, Key: key, LastID: id, Limit: cursor.MaxSearchLimit}}, st.Search.Windows)
				assert.Equal(t, &cursor.Session{Next: 4, Announced: now}, st.Sessions[sidA])
				assert.Equal(t, &cursor.Session{Next: 0, Announced: uploaded}, st.Sessions[sidC])
				assert.Len(t, st.Sessions, 2)
				assert.Len(t, grep(r.Notes, "had not found it yet (2 attempts)"), 1)
			},
		},
		"bulk export (cursor_v2) beside an older search position": {
			files: map[string][]byte{
				"start_time":                            ehTime(start),
				"window_time":                           ehTime(window),
				"cursor":                                []byte(key),
				"id":                                    []byte(id),
				"session" + sidA:                        {}, // newer releases read an empty file as 0
				"cursor_v2/2024-04-30/":                 nil,
				"cursor_v2/2024-05-02/completed-chunks": []byte("chunk-a\nchunk-b\n"),
				"cursor_v2/2024-05-02/chunk-b.chunk":    []byte("cur-b"), // completed after the cursor was written
				"cursor_v2/2024-05-03/completed-chunks": []byte("chunk-c\n"),
				"cursor_v2/2024-05-03/chunk-d.chunk":    []byte("cur-d"),
				"cursor_v2/2024-05-03/chunk-e.chunk":    []byte(""), // no cursor yet: exported whole
				"cursor_v2/2024-05-04/":                 nil,
			},
			check: func(t *testing.T, r *Result) {
				st := r.State
				assert.Equal(t, KindExport, r.Kind)
				assert.Equal(t, cursor.ModeExport, st.Mode)
				assert.Nil(t, st.Search)
				done := func(names ...string) cursor.ChunkSet {
					var s cursor.ChunkSet
					for _, n := range names {
						s.Add(n)
					}
					return s
				}
				assert.Equal(t, &cursor.Export{NextDay: "2024-05-02", Days: map[string]*cursor.Day{
					"2024-05-02": {DoneSet: done("chunk-a", "chunk-b")},
					"2024-05-03": {DoneSet: done("chunk-c"), Cursors: map[string]string{"chunk-d": "cur-d"}},
					"2024-05-04": {},
				}}, st.Export)
				assert.Equal(t, &cursor.Session{Next: 0, Announced: now}, st.Sessions[sidA])
				assert.Len(t, grep(r.Notes, "before start_time"), 1, "2024-04-30 is dropped as the Event Handler does")
				assert.Len(t, grep(r.Notes, "older search position"), 1)
			},
		},
		"nothing sent yet": {
			files: map[string][]byte{"start_time": ehTime(start)},
			check: func(t *testing.T, r *Result) {
				assert.Equal(t, KindNothingSent, r.Kind)
				assert.Equal(t, cursor.New(start), r.State)
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, filepath.Join(root, tc.sub), tc.files)
			dir, err := Find(root)
			require.NoError(t, err)
			require.Equal(t, filepath.Join(root, tc.sub), dir)
			s, err := Read(dir)
			require.NoError(t, err)
			r, err := Convert(s, Options{Now: now})
			require.NoError(t, err)
			tc.check(t, r)

			// The plugin's store takes it and gives it back unchanged.
			store, err := cursor.Open(filepath.Join(root, "plugin"))
			require.NoError(t, err)
			defer store.Close()
			require.NoError(t, store.Save(r.State.Clone()))
			back, err := store.Load()
			require.NoError(t, err)
			assert.Equal(t, r.State, back)
		})
	}
}

// The window of a windowed search ends a window-size after window_time
// when that is before the import.
func TestImportWindowEnd(t *testing.T) {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	root := t.TempDir()
	writeTree(t, root, map[string][]byte{"start_time": ehTime(start), "window_time": ehTime(start), "cursor": []byte("k"), "id": []byte("i")})
	s, err := Read(root)
	require.NoError(t, err)
	for _, tc := range []struct {
		size time.Duration
		end  time.Time
	}{{0, start.Add(24 * time.Hour)}, {6 * time.Hour, start.Add(6 * time.Hour)}} {
		r, err := Convert(s, Options{Now: start.Add(72 * time.Hour), WindowSize: tc.size})
		require.NoError(t, err)
		assert.Equal(t, tc.end, r.State.Search.Windows[0].End)
	}
}

// Every file the importer cannot understand is refused with one line
// naming it; nothing is guessed.
func TestImportRefuses(t *testing.T) {
	start := ehTime(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	tests := map[string]struct {
		files map[string][]byte
		want  string // in the error, after the directory
	}{
		"start_time not a time":      {map[string][]byte{"start_time": []byte("yesterday")}, `start_time: "yesterday" is not an RFC 3339 time`},
		"window_time not a time":     {map[string][]byte{"start_time": start, "window_time": []byte("1714557600")}, `window_time: "1714557600" is not an RFC 3339 time`},
		"no start_time":              {map[string][]byte{"cursor": []byte("k"), "id": []byte("i")}, "start_time: missing or empty"},
		"empty start_time":           {map[string][]byte{"start_time": {}, "cursor": []byte("k")}, "start_time: missing or empty"},
		"short session index":        {map[string][]byte{"start_time": start, "session" + sidA: {0, 0, 1}}, "session" + sidA + ": 3 bytes, expected an 8-byte big-endian recording index"},
		"negative session index":     {map[string][]byte{"start_time": start, "session" + sidA: {0xff, 0, 0, 0, 0, 0, 0, 1}}, "session" + sidA + ": index 18374686479671623681 is out of range"},
		"missing recording not JSON": {map[string][]byte{"start_time": start, "missing_recording" + sidA: []byte("{")}, "missing_recording" + sidA + ": not the JSON of a missing recording"},
		"missing recording no index": {map[string][]byte{"start_time": start, "missing_recording" + sidA: []byte(`{"Attempt":1}`)}, "missing_recording" + sidA + `: no recording index ("Index")`},
		"unknown file":               {map[string][]byte{"start_time": start, "last_event": []byte("x")}, "last_event: not a file the Event Handler writes"},
		"unknown directory":          {map[string][]byte{"start_time": start, "cursor_v3/": nil}, "cursor_v3: a directory the Event Handler does not write"},
		"cursor not UTF-8":           {map[string][]byte{"start_time": start, "cursor": {0xff, 0xfe}}, "cursor: not valid UTF-8"},
		"cursor_v2 odd name":         {map[string][]byte{"start_time": start, "cursor_v2/latest/": nil}, "cursor_v2/latest: not a date directory"},
		"cursor_v2 bad date":         {map[string][]byte{"start_time": start, "cursor_v2/2024-13-01/": nil}, `cursor_v2/2024-13-01: "2024-13-01" is not a date`},
		"cursor_v2 odd file":         {map[string][]byte{"start_time": start, "cursor_v2/2024-05-01/notes.txt": []byte("x")}, "cursor_v2/2024-05-01/notes.txt: not a file of the bulk export cursor"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.files)
			s, err := Read(root)
			if err == nil {
				_, err = Convert(s, Options{Now: time.Now()})
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), root+string(filepath.Separator)+tc.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	_, err := Find(root)
	require.ErrorContains(t, err, "no Event Handler state in "+root)
	writeTree(t, root, map[string][]byte{"a.example.com_3025/start_time": []byte("x"), "b.example.com_443/start_time": []byte("x")})
	_, err = Find(root)
	require.ErrorContains(t, err, "several Auth Services (a.example.com_3025, b.example.com_443)")
	dir, err := Find(filepath.Join(root, "b.example.com_443"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "b.example.com_443"), dir)
	_, err = Find(filepath.Join(root, "missing"))
	require.ErrorContains(t, err, fmt.Sprintf("Event Handler storage %s: no such file or directory", filepath.Join(root, "missing")))
}

func grep(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
