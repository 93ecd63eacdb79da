package cursor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var fixtureStart = time.Date(2024, 3, 1, 12, 30, 15, 123456789, time.UTC)

// fixtureExport returns a valid export-mode state with nChunks chunk cursors
// spread over two days, plus a few done chunks.
func fixtureExport(nChunks int) *State {
	st := New(fixtureStart)
	st.Mode = ModeExport
	st.Export = &Export{NextDay: "2024-03-01", Days: map[string]*Day{
		"2024-03-01": {Cursors: map[string]string{}, DoneSet: doneSet("done-a", "done-b")},
		"2024-03-02": {Cursors: map[string]string{}},
	}}
	for i := 0; i < nChunks; i++ {
		day := "2024-03-01"
		if i%2 == 1 {
			day = "2024-03-02"
		}
		st.Export.Days[day].Cursors[fmt.Sprintf("chunk-%04d-7f3c9a1e", i)] =
			fmt.Sprintf(`{"offset":%d,"token":"c2VjcmV0LWN1cnNvci12YWx1ZS0%04d"}`, i*1000, i)
	}
	for _, d := range st.Export.Days {
		if len(d.Cursors) == 0 {
			d.Cursors = nil // as after a JSON round trip
		}
	}
	return st
}

func fixtureSearch() *State {
	st := New(fixtureStart)
	st.Mode = ModeSearch
	st.Search = &Search{
		WindowStart: time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC),
		Key:         `{"id":"abc","time":"2024-03-02T00:00:01Z"}`,
		LastID:      "5b1c3e2a-0000-4000-8000-000000000001",
	}
	return st
}

// fixtureSearchV2 is a search position of this version: two backlog
// windows (one in progress, one done ahead of it) and ids seen.
func fixtureSearchV2() *State {
	st := New(fixtureStart)
	st.Mode = ModeSearch
	day := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	st.Search = &Search{
		WindowStart: day,
		Windows: []*Window{
			{Start: day, End: day.Add(24 * time.Hour), Key: "k1", LastID: "id-1", Limit: 10000},
			{Start: day.Add(24 * time.Hour), End: day.Add(48 * time.Hour), Done: true},
		},
		Seen: []Seen{{ID: "s-1", Time: day.Add(time.Second)}, {ID: "s-2", Time: day.Add(2 * time.Second)}},
	}
	return st
}

// openTestStore opens a fresh store in a new directory and closes it at the end
// of the test.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "storage"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// dirNames returns the sorted names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func filePerm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// requireOneLine checks that an error message is a single line.
func requireOneLine(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "\n", "error must be one line")
}

// restoreSaveHooks puts the failure-injection hooks back after the test.
func restoreSaveHooks(t *testing.T) {
	ct, wf, sf, cf, rf, sd := createTemp, writeFile, syncFile, closeFile, renameFile, syncDir
	t.Cleanup(func() {
		createTemp, writeFile, syncFile, closeFile, renameFile, syncDir = ct, wf, sf, cf, rf, sd
	})
}

func requireContainsAll(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		require.True(t, strings.Contains(s, sub), "%q\ndoes not contain\n%q", s, sub)
	}
}

// doneSet is a ChunkSet of names.
func doneSet(names ...string) ChunkSet {
	var s ChunkSet
	for _, n := range names {
		s.Add(n)
	}
	return s
}
