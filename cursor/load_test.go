package cursor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validExportJSON is a correct state file; variants below break it.
const validExportJSON = `{
  "format": "teleport-fluent-bit/cursor",
  "version": 1,
  "start_time": "2024-03-01T00:00:00Z",
  "mode": "export",
  "export": {
    "next_day": "2024-03-01",
    "days": {
      "2024-03-01": {
        "cursors": {
          "c1": "cur"
        },
        "done": {
          "c2": true
        }
      }
    }
  }
}
`

func TestLoadAcceptsHandWrittenState(t *testing.T) {
	s := openTestStore(t)
	// Compact, with an offset time: accepted, time converted to UTC.
	in := `{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T01:00:00+01:00",` +
		`"mode":"search","search":{"window_start":"2024-03-02T00:00:00.5Z","last_id":"x"}}`
	require.NoError(t, os.WriteFile(s.Path(), []byte(in), 0o600))
	st, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, "2024-03-01T00:00:00Z", st.StartTime.Format("2006-01-02T15:04:05Z07:00"))
	assert.Equal(t, "x", st.Search.LastID)

	require.NoError(t, os.WriteFile(s.Path(), []byte(validExportJSON), 0o600))
	st, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, map[string]*Day{"2024-03-01": {Cursors: map[string]string{"c1": "cur"}, DoneSet: doneSet("c2")}}, st.Export.Days)
}

func TestLoadRejects(t *testing.T) {
	variant := func(old, new string) string {
		if !strings.Contains(validExportJSON, old) {
			panic("variant: " + old)
		}
		return strings.Replace(validExportJSON, old, new, 1)
	}
	const (
		corrupt = "is corrupt ("
		foreign = "is not a teleport-fluent-bit cursor file ("
		invalid = "is invalid ("
		fixIt   = "; refusing to start rather than restart from the beginning: fix or move the file away"
	)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode // 0600 if zero
		kind    error
		want    []string
	}{
		{"truncated JSON", `{"format": "teleport-fluent-bit/cursor", "vers`, 0, ErrCorrupt,
			[]string{corrupt + "unexpected end of JSON input)" + fixIt}},
		{"truncated state", validExportJSON[:len(validExportJSON)/2], 0, ErrCorrupt,
			[]string{corrupt + "unexpected end of JSON input)" + fixIt}},
		{"bad syntax", `{"format" x}`, 0, ErrCorrupt,
			[]string{corrupt + "invalid character 'x' after object key at byte 11)" + fixIt}},
		{"garbage", "\x00\x01\x02binary", 0, ErrCorrupt, []string{corrupt + "invalid character"}},
		{"empty file", "", 0, ErrCorrupt, []string{corrupt + "the file is empty)" + fixIt}},
		{"blank file", " \n\t\n", 0, ErrCorrupt, []string{corrupt + "the file is empty)"}},
		{"trailing data", validExportJSON + "x", 0, ErrCorrupt, []string{corrupt + "invalid character 'x' after top-level value"}},
		{"two objects", validExportJSON + validExportJSON, 0, ErrCorrupt, []string{corrupt + "invalid character '{' after top-level value"}},
		{"foreign object", `{"foo":1}`, 0, ErrForeign,
			[]string{foreign + `there is no "format" field); refusing to start rather than overwrite it: give the plugin a storage_dir of its own or move the file away`}},
		{"foreign array", `[1,2]`, 0, ErrForeign, []string{foreign + "the content is a JSON array, not an object)"}},
		{"foreign null", `null`, 0, ErrForeign, []string{foreign + `there is no "format" field)`}},
		{"foreign string", `"hello"`, 0, ErrForeign, []string{foreign + "the content is a JSON string, not an object)"}},
		{"other tool", `{"format":"fluent-bit/tail-db","version":1,"offsets":{}}`, 0, ErrForeign,
			[]string{foreign + `format "fluent-bit/tail-db", expected "teleport-fluent-bit/cursor")`}},
		{"format not a string", variant(`"format": "teleport-fluent-bit/cursor"`, `"format": 1`), 0, ErrForeign,
			[]string{foreign + `"format" is not a string)`}},
		{"future version", variant(`"version": 1`, `"version": 99`), 0, ErrNewerVersion,
			[]string{"has version 99 but this plugin supports up to version 3; refusing to start: upgrade the plugin (downgrading is not supported)"}},
		{"version zero", variant(`"version": 1`, `"version": 0`), 0, ErrInvalid,
			[]string{invalid + "version 0 is not supported (this plugin reads versions 1 to 3))" + fixIt}},
		{"version string", variant(`"version": 1`, `"version": "1"`), 0, ErrInvalid,
			[]string{invalid + `version "\"1\"" is not an integer)`}},
		{"version fraction", variant(`"version": 1`, `"version": 1.5`), 0, ErrInvalid,
			[]string{invalid + `version "1.5" is not an integer)`}},
		{"no version", variant(`"version": 1,`, ``), 0, ErrInvalid, []string{invalid + `there is no "version" field)`}},
		{"unknown field", variant(`"version": 1,`, `"version": 1, "extra": true,`), 0, ErrInvalid,
			[]string{invalid + `unknown field "extra")` + fixIt}},
		{"unknown nested field", variant(`"next_day"`, `"cursor": "x", "next_day"`), 0, ErrInvalid,
			[]string{invalid + `unknown field "cursor")`}},
		{"bad next_day", variant(`"next_day": "2024-03-01"`, `"next_day": "2024-13-01"`), 0, ErrInvalid,
			[]string{invalid + `export.next_day "2024-13-01" is not a YYYY-MM-DD date)` + fixIt}},
		{"next_day wrong type", variant(`"next_day": "2024-03-01"`, `"next_day": 20240301`), 0, ErrInvalid,
			[]string{invalid + "cannot unmarshal number"}},
		{"export mode without export", `{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z","mode":"export"}`, 0, ErrInvalid,
			[]string{invalid + `mode is "export" but there is no export position)`}},
		{"export null", variant(`"export": {`, `"export": null, "x": {`), 0, ErrInvalid, []string{invalid}},
		{"unknown mode", variant(`"mode": "export"`, `"mode": "tail"`), 0, ErrInvalid,
			[]string{invalid + `mode "tail" is unknown (expected "export" or "search"))`}},
		{"day key not a date", variant(`"2024-03-01": {`, `"yesterday": {`), 0, ErrInvalid,
			[]string{invalid + `export.days key "yesterday" is not a YYYY-MM-DD date)`}},
		{"day before next_day", variant(`"2024-03-01": {`, `"2024-02-29": {`), 0, ErrInvalid,
			[]string{invalid + `export.days["2024-02-29"] is before export.next_day "2024-03-01"`}},
		{"day null", variant(`"2024-03-01": {`, `"2024-03-01": null, "2024-03-09": {`), 0, ErrInvalid,
			[]string{invalid + `export.days["2024-03-01"] is null)`}},
		{"chunk done and cursor", variant(`"c2": true`, `"c1": true`), 0, ErrInvalid,
			[]string{invalid + `export.days["2024-03-01"]: chunk "c1" is both done and holding a cursor)`}},
		{"empty done chunk name (migrated form)", variant(`"c2": true`, `"": true`), 0, ErrInvalid,
			[]string{invalid + `export.days["2024-03-01"].done has an empty chunk name)`}},
		{"empty chunk name", variant(`"c1": "cur"`, `"": "cur"`), 0, ErrInvalid,
			[]string{invalid + `export.days["2024-03-01"].cursors has an empty chunk name)`}},
		{"start_time missing", variant(`"start_time": "2024-03-01T00:00:00Z",`, ``), 0, ErrInvalid,
			[]string{invalid + "start_time is not set)"}},
		{"start_time not a time", variant(`"2024-03-01T00:00:00Z"`, `"yesterday"`), 0, ErrInvalid,
			[]string{invalid + `parsing time`}},
		{"start_time out of range", variant(`"2024-03-01T00:00:00Z"`, `"0000-01-01T00:00:00+01:00"`), 0, ErrInvalid,
			[]string{invalid + "start_time is out of range (year -1))"}},
		{"search seen id empty", `{"format":"teleport-fluent-bit/cursor","version":2,"start_time":"2024-03-01T00:00:00Z","mode":"search","search":{"window_start":"2024-03-02T00:00:00Z","seen":[{"id":"","time":"2024-03-02T00:00:01Z"}]}}`, 0, ErrInvalid,
			[]string{invalid + "search.seen[0] has an empty, overlong or invalid id)" + fixIt}},
		{"search window limit", `{"format":"teleport-fluent-bit/cursor","version":2,"start_time":"2024-03-01T00:00:00Z","mode":"search","search":{"window_start":"2024-03-02T00:00:00Z","windows":[{"start":"2024-03-02T00:00:00Z","end":"2024-03-03T00:00:00Z","limit":-5}]}}`, 0, ErrInvalid,
			[]string{invalid + "search.windows[0].limit -5 is out of range (0 to 10000))" + fixIt}},
		{"search window zero", `{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z","mode":"search","search":{"window_start":"0001-01-01T00:00:00Z"}}`, 0, ErrInvalid,
			[]string{invalid + "search.window_start is not set)"}},
		{"mode 0644", validExportJSON, 0o644, ErrPermissions, nil},
		{"mode 0640", validExportJSON, 0o640, ErrPermissions, nil},
		{"mode 0604", validExportJSON, 0o604, ErrPermissions, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			mode := tt.mode
			if mode == 0 {
				mode = 0o600
			}
			require.NoError(t, os.WriteFile(s.Path(), []byte(tt.content), 0o600))
			require.NoError(t, os.Chmod(s.Path(), mode))

			st, err := s.Load()
			require.Nil(t, st)
			requireOneLine(t, err)
			assert.ErrorIs(t, err, tt.kind)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "state file "+s.Path()+" "), "names the file: %s", msg)
			requireContainsAll(t, msg, tt.want...)
			if tt.kind == ErrPermissions {
				assert.Equal(t, fmt.Sprintf(
					"state file %s has mode %s; it must not be accessible to group or others (chmod 600 %s)",
					s.Path(), modeString(mode), s.Path()), msg)
			}

			// Peek says the same.
			_, perr := Peek(s.Dir())
			require.Error(t, perr)
			assert.Equal(t, msg, perr.Error())

			// Nothing was changed: not the content, not the mode, no new file.
			after, err := os.ReadFile(s.Path())
			require.NoError(t, err)
			assert.Equal(t, tt.content, string(after))
			assert.Equal(t, mode, filePerm(t, s.Path()))
			assert.Equal(t, []string{"lock", "state.json"}, dirNames(t, s.Dir()))
		})
	}
}

func TestLoadRejectsSpecialFiles(t *testing.T) {
	s := openTestStore(t)

	target := filepath.Join(t.TempDir(), "elsewhere.json")
	require.NoError(t, os.WriteFile(target, []byte(validExportJSON), 0o600))
	require.NoError(t, os.Symlink(target, s.Path()))
	_, err := s.Load()
	requireOneLine(t, err)
	assert.Equal(t, "state file "+s.Path()+" is a symbolic link; refusing to follow it: replace it with the file it points to", err.Error())
	require.NoError(t, os.Remove(s.Path()))

	require.NoError(t, syscall.Mkfifo(s.Path(), 0o600))
	_, err = s.Load() // must not hang
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "state file "+s.Path()+" is not a regular file")
	require.NoError(t, os.Remove(s.Path()))

	require.NoError(t, os.Mkdir(s.Path(), 0o700))
	_, err = s.Load()
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "state file "+s.Path()+" is not a regular file")
}

func TestPeekWithoutState(t *testing.T) {
	st, err := Peek(filepath.Join(t.TempDir(), "never-created"))
	require.NoError(t, err)
	assert.Nil(t, st)
}

// A version 1 search state (the window, the page and the last id) loads as
// it was written: the source resumes it as its first window.
func TestLoadVersion1Search(t *testing.T) {
	s := openTestStore(t)
	in := `{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z",` +
		`"mode":"search","search":{"window_start":"2024-03-02T00:00:00Z","key":"tdk1.1.u","last_id":"u-9"}}`
	require.NoError(t, os.WriteFile(s.Path(), []byte(in), 0o600))
	st, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, Version, st.Version, "migrated on load")
	assert.Equal(t, &Search{WindowStart: time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC), Key: "tdk1.1.u", LastID: "u-9"}, st.Search)
	require.NoError(t, s.Save(st))
	again, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, Version, again.Version, "saved in the current version")
	assert.Equal(t, st.Search, again.Search)
}

// A version 2 export state's done chunk names are hashed into done_set on
// load: the same chunks count as done, and the next save writes version 3
// without the names.
func TestLoadMigratesVersion2DoneChunks(t *testing.T) {
	s := openTestStore(t)
	in := `{"format":"teleport-fluent-bit/cursor","version":2,"start_time":"2024-03-01T00:00:00Z","mode":"export",` +
		`"export":{"next_day":"2024-03-01","days":{"2024-03-01":{"cursors":{"c1":"a1:5"},"done":{"c2":true,"c3":true}}}}}`
	require.NoError(t, os.WriteFile(s.Path(), []byte(in), 0o600))
	st, err := s.Load()
	require.NoError(t, err)
	d := st.Export.Days["2024-03-01"]
	assert.True(t, d.DoneSet.Has("c2"))
	assert.True(t, d.DoneSet.Has("c3"))
	assert.False(t, d.DoneSet.Has("c1"))
	assert.Nil(t, d.Done)
	assert.Equal(t, map[string]string{"c1": "a1:5"}, d.Cursors)
	require.NoError(t, s.Save(st))
	raw, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"version": 3`)
	assert.NotContains(t, string(raw), `"c2"`)

	// A version 3 file with the old field is refused, naming it.
	bad := strings.Replace(strings.Replace(in, `"version":2`, `"version":3`, 1), `"done":`, `"done":`, 1)
	require.NoError(t, os.WriteFile(s.Path(), []byte(bad), 0o600))
	_, err = s.Load()
	require.ErrorContains(t, err, `export.days["2024-03-01"].done is a version 2 field`)
}

// A set-aside chunk is done for the export and listed, newest last, at
// most MaxSetAside.
func TestSetAsideChunks(t *testing.T) {
	st := fixtureExport(2)
	at := time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)
	st.Apply(&Pos{Kind: PosChunk, Day: "2024-03-02", Chunk: "x", Cursor: "a1:3"})
	st.Apply(&Pos{Kind: PosChunkSetAside, Day: "2024-03-02", Chunk: "x", Cursor: "a1:3", GivenUp: &GivenUp{Reason: "gone", At: at}})
	assert.True(t, st.Export.Days["2024-03-02"].DoneSet.Has("x"))
	assert.NotContains(t, st.Export.Days["2024-03-02"].Cursors, "x")
	assert.Equal(t, []SetAsideChunk{{Day: "2024-03-02", Chunk: "x", Reason: "gone", At: at, Cursor: "a1:3"}}, st.SetAside)
	for i := 0; i < MaxSetAside+5; i++ {
		st.Apply(&Pos{Kind: PosChunkSetAside, Day: "2024-03-02", Chunk: fmt.Sprint("y", i), GivenUp: &GivenUp{Reason: "r", At: at}})
	}
	require.Len(t, st.SetAside, MaxSetAside)
	assert.Equal(t, int64(6), st.SetAsideDropped)
	assert.Equal(t, fmt.Sprint("y", MaxSetAside+4), st.SetAside[MaxSetAside-1].Chunk)
	require.NoError(t, st.Validate())
}
