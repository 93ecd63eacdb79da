package cursor

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(st *State) *State
		want   string // "" for valid
	}{
		{"export", func(st *State) *State { return st }, ""},
		{"new", func(*State) *State { return New(fixtureStart) }, ""},
		{"search", func(*State) *State { return fixtureSearch() }, ""},
		{"export keeps stale search", func(st *State) *State { st.Search = fixtureSearch().Search; return st }, ""},
		{"day after next_day", func(st *State) *State { st.Export.Days["2030-12-31"] = &Day{}; return st }, ""},
		{"done false (version 2)", func(st *State) *State {
			st.Version = 2
			st.Export.Days["2024-03-02"].Done = map[string]bool{"z": false}
			return st
		}, ""},
		{"done in version 3", func(st *State) *State { st.Export.Days["2024-03-02"].Done = map[string]bool{"z": true}; return st }, `export.days["2024-03-02"].done is a version 2 field (version 3 keeps done_set)`},
		{"done_set unsorted", func(st *State) *State { st.Export.Days["2024-03-02"].DoneSet = ChunkSet{5, 3}; return st }, `export.days["2024-03-02"].done_set is not sorted or repeats a hash`},
		{"set aside", func(st *State) *State {
			st.SetAside = []SetAsideChunk{{Day: "2024-03-01", Chunk: "c", Reason: "gone", At: fixtureStart}}
			return st
		}, ""},
		{"set aside bad day", func(st *State) *State {
			st.SetAside = []SetAsideChunk{{Day: "2024-3-01", Chunk: "c", At: fixtureStart}}
			return st
		}, `set_aside[0].day "2024-3-01" is not a YYYY-MM-DD date`},
		{"set aside without time", func(st *State) *State {
			st.SetAside = []SetAsideChunk{{Day: "2024-03-01", Chunk: "c"}}
			return st
		}, `set_aside[0].at is not set`},
		{"empty cursor value", func(st *State) *State { st.Export.Days["2024-03-02"].Cursors["z"] = ""; return st }, ""},
		{"nil", func(*State) *State { return nil }, "state is null"},
		{"no format", func(st *State) *State { st.Format = ""; return st }, `format is "", expected "teleport-fluent-bit/cursor"`},
		{"version 4", func(st *State) *State { st.Version = 4; return st }, "version 4 is not supported (this plugin reads versions 1 to 3)"},
		{"version -1", func(st *State) *State { st.Version = -1; return st }, "version -1 is not supported (this plugin reads versions 1 to 3)"},
		{"no start", func(st *State) *State { st.StartTime = time.Time{}; return st }, "start_time is not set"},
		{"start year 10000", func(st *State) *State { st.StartTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return st }, "start_time is out of range (year 10000)"},
		{"no mode with export", func(st *State) *State { st.Mode = ""; return st }, "mode is not set but an export or search position is"},
		{"bad mode", func(st *State) *State { st.Mode = "Export"; return st }, `mode "Export" is unknown (expected "export" or "search")`},
		{"export without export", func(st *State) *State { st.Export = nil; return st }, `mode is "export" but there is no export position`},
		{"search without search", func(*State) *State { st := fixtureSearch(); st.Search = nil; return st }, `mode is "search" but there is no search position`},
		{"empty next_day", func(st *State) *State { st.Export.NextDay = ""; return st }, `export.next_day "" is not a YYYY-MM-DD date`},
		{"next_day with time", func(st *State) *State { st.Export.NextDay = "2024-03-01T00:00:00Z"; return st }, `export.next_day "2024-03-01T00:00:00Z" is not a YYYY-MM-DD date`},
		{"next_day Feb 30", func(st *State) *State { st.Export.NextDay = "2024-02-30"; return st }, `export.next_day "2024-02-30" is not a YYYY-MM-DD date`},
		{"next_day sign", func(st *State) *State { st.Export.NextDay = "+024-02-03"; return st }, `export.next_day "+024-02-03" is not a YYYY-MM-DD date`},
		{"day key", func(st *State) *State { st.Export.Days["2024/03/05"] = &Day{}; return st }, `export.days key "2024/03/05" is not a YYYY-MM-DD date`},
		{"finished day kept", func(st *State) *State { st.Export.NextDay = "2024-03-02"; return st }, `export.days["2024-03-01"] is before export.next_day "2024-03-02" (finished days must be removed)`},
		{"nil day", func(st *State) *State { st.Export.Days["2024-03-02"] = nil; return st }, `export.days["2024-03-02"] is null`},
		{"empty chunk", func(st *State) *State { st.Export.Days["2024-03-02"].Cursors[""] = "x"; return st }, `export.days["2024-03-02"].cursors has an empty chunk name`},
		{"empty done chunk", func(st *State) *State {
			st.Version = 2
			st.Export.Days["2024-03-02"].Done = map[string]bool{"": true}
			return st
		}, `export.days["2024-03-02"].done has an empty chunk name`},
		{"done with cursor", func(st *State) *State { st.Export.Days["2024-03-01"].Cursors["done-a"] = "x"; return st }, `export.days["2024-03-01"]: chunk "done-a" is both done and holding a cursor`},
		{"bad utf8 cursor", func(st *State) *State { st.Export.Days["2024-03-02"].Cursors["k"] = "\xff"; return st }, `export.days["2024-03-02"].cursors["k"] is not valid UTF-8`},
		{"bad utf8 chunk", func(st *State) *State { st.Export.Days["2024-03-02"].Cursors["\xff"] = "v"; return st }, `export.days["2024-03-02"].cursors has a chunk name "\xff" that is not valid UTF-8`},
		{"bad utf8 done", func(st *State) *State {
			st.Version = 2
			st.Export.Days["2024-03-02"].Done = map[string]bool{"\xfe": true}
			return st
		}, `export.days["2024-03-02"].done has a chunk name "\xfe" that is not valid UTF-8`},
		{"search zero window", func(*State) *State { st := fixtureSearch(); st.Search.WindowStart = time.Time{}; return st }, "search.window_start is not set"},
		{"search bad key", func(*State) *State { st := fixtureSearch(); st.Search.Key = "\xc3"; return st }, `search.key "\xc3" is not valid UTF-8`},
		{"search bad id", func(*State) *State { st := fixtureSearch(); st.Search.LastID = "\xc3"; return st }, `search.last_id "\xc3" is not valid UTF-8`},
		{"given up", func(st *State) *State { st.GivenUp = []GivenUpSession{givenUp("s-1")}; return st }, ""},
		{"given up twice", func(st *State) *State { st.GivenUp = []GivenUpSession{givenUp("s-1"), givenUp("s-1")}; return st }, `given_up lists session "s-1" twice`},
		{"given up without id", func(st *State) *State { st.GivenUp = []GivenUpSession{givenUp("")}; return st }, `given_up[0] has an empty or invalid session_id ""`},
		{"given up without time", func(st *State) *State {
			g := givenUp("s-1")
			g.At = time.Time{}
			st.GivenUp = []GivenUpSession{g}
			return st
		}, "given_up[0].at is not set"},
		{"given up too many", func(st *State) *State {
			for i := 0; i <= MaxGivenUp; i++ {
				st.GivenUp = append(st.GivenUp, givenUp(fmt.Sprint("s-", i)))
			}
			return st
		}, "given_up lists 101 sessions, at most 100"},
		{"search windows and seen", func(*State) *State { return fixtureSearchV2() }, ""},
		{"window null", func(*State) *State { st := fixtureSearchV2(); st.Search.Windows[1] = nil; return st }, "search.windows[1] is null"},
		{"window without end", func(*State) *State { st := fixtureSearchV2(); st.Search.Windows[0].End = time.Time{}; return st }, "search.windows[0].end is not set"},
		{"window backwards", func(*State) *State {
			st := fixtureSearchV2()
			w := st.Search.Windows[1]
			w.Start, w.End = w.End, w.Start
			return st
		}, "search.windows[1] ends (2024-03-03T00:00:00Z) before it starts (2024-03-04T00:00:00Z)"},
		{"window before the frontier", func(*State) *State {
			st := fixtureSearchV2()
			st.Search.WindowStart = st.Search.WindowStart.Add(time.Hour)
			return st
		}, "search.windows[0] starts before search.window_start"},
		{"windows overlap", func(*State) *State {
			st := fixtureSearchV2()
			st.Search.Windows[1].Start = st.Search.Windows[1].Start.Add(-time.Hour)
			return st
		}, "search.windows[1] overlaps the window before it (windows must be in time order)"},
		{"window limit", func(*State) *State {
			st := fixtureSearchV2()
			st.Search.Windows[0].Limit = MaxSearchLimit + 1
			return st
		}, "search.windows[0].limit 10001 is out of range (0 to 10000)"},
		{"window bad key", func(*State) *State { st := fixtureSearchV2(); st.Search.Windows[0].Key = "\xff"; return st }, "search.windows[0] has a key or last_id that is not valid UTF-8"},
		{"too many windows", func(*State) *State {
			st := fixtureSearchV2()
			for i := 0; len(st.Search.Windows) <= MaxWindows; i++ {
				at := st.Search.Windows[len(st.Search.Windows)-1].End
				st.Search.Windows = append(st.Search.Windows, &Window{Start: at, End: at.Add(time.Minute)})
			}
			return st
		}, "search.windows holds 4097 windows (at most 4096)"},
		{"seen empty id", func(*State) *State { st := fixtureSearchV2(); st.Search.Seen[1].ID = ""; return st }, "search.seen[1] has an empty, overlong or invalid id"},
		{"seen long id", func(*State) *State {
			st := fixtureSearchV2()
			st.Search.Seen[0].ID = strings.Repeat("x", 513)
			return st
		}, "search.seen[0] has an empty, overlong or invalid id"},
		{"seen before the frontier", func(*State) *State {
			st := fixtureSearchV2()
			st.Search.Seen[0].Time = st.Search.WindowStart.Add(-time.Nanosecond)
			return st
		}, "search.seen[0].time is before search.window_start (ids before it must be removed)"},
		{"seen without time", func(*State) *State { st := fixtureSearchV2(); st.Search.Seen[1].Time = time.Time{}; return st }, "search.seen[1].time is not set"},
		{"too many seen", func(*State) *State {
			st := fixtureSearchV2()
			for len(st.Search.Seen) <= MaxSeen {
				st.Search.Seen = append(st.Search.Seen, Seen{ID: fmt.Sprint("x", len(st.Search.Seen)), Time: st.Search.WindowStart})
			}
			return st
		}, "search.seen holds 200001 events (at most 200000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.modify(fixtureExport(4))
			err := st.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			requireOneLine(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestClone(t *testing.T) {
	assert.Nil(t, (*State)(nil).Clone())

	for _, orig := range []*State{New(fixtureStart), fixtureExport(10), fixtureSearch(), fixtureSearchV2()} {
		want, err := json.Marshal(orig) // snapshot independent of Clone
		require.NoError(t, err)
		c := orig.Clone()
		require.Equal(t, orig, c)
		require.NotSame(t, orig, c)

		// Mutate everything reachable from the clone.
		c.StartTime = c.StartTime.Add(time.Hour)
		c.Mode = "changed"
		if c.Search != nil {
			c.Search.Key = "changed"
			c.Search.LastID = "changed"
			c.Search.WindowStart = time.Time{}
			for _, w := range c.Search.Windows {
				w.Key, w.Done = "changed", !w.Done
			}
			for i := range c.Search.Seen {
				c.Search.Seen[i].ID = "changed"
			}
		}
		if c.Export != nil {
			c.Export.NextDay = "2099-01-01"
			for _, d := range c.Export.Days {
				for k := range d.Cursors {
					d.Cursors[k] = "changed"
				}
				for i := range d.DoneSet {
					d.DoneSet[i]++
				}
				if d.Cursors == nil {
					d.Cursors = map[string]string{}
				}
				d.Cursors["new"] = "x"
				d.DoneSet.Add("new")
			}
			c.Export.Days["2099-01-01"] = &Day{}
			delete(c.Export.Days, "2024-03-01")
		}
		got, err := json.Marshal(orig)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got), "the original is unchanged")
		require.NoError(t, orig.Validate())
	}
}

func TestCloneKeepsNilAndEmptyMaps(t *testing.T) {
	st := fixtureExport(0)
	st.Export.Days["2024-03-02"] = &Day{Cursors: map[string]string{}}
	st.Export.Days["2024-03-03"] = nil
	c := st.Clone()
	assert.Equal(t, st, c)
	assert.NotNil(t, c.Export.Days["2024-03-02"].Cursors)
	assert.Nil(t, c.Export.Days["2024-03-02"].Done)
	assert.Nil(t, c.Export.Days["2024-03-03"])
}

// BenchmarkSave measures a full durable Save (encode, write, fsync, rename,
// directory fsync) of a state with 300 chunk cursors.
func BenchmarkSave(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "s"))
	require.NoError(b, err)
	defer s.Close()
	st := fixtureExport(300)
	cursors := make([]string, 64)
	for i := range cursors {
		cursors[i] = fmt.Sprintf(`{"offset":%d}`, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Export.Days["2024-03-02"].Cursors["chunk-0001-7f3c9a1e"] = cursors[i%len(cursors)]
		if err := s.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode is Save without the file system.
func BenchmarkEncode(b *testing.B) {
	st := fixtureExport(300)
	var enc encoder
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		data, _ := enc.encode(st)
		n = len(data)
	}
	b.SetBytes(int64(n))
}

// BenchmarkSaveValidate is the validation Save does before writing.
func BenchmarkValidate(b *testing.B) {
	st := fixtureExport(300)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := st.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func givenUp(id string) GivenUpSession {
	return GivenUpSession{SessionID: id, Reason: "exporting the recording failed 5 times", At: fixtureStart.Add(time.Hour), Next: 3}
}

// A recording given up moves from the sessions in progress to the given-up
// ones, newest last and at most MaxGivenUp (older ones counted); exported
// after all (announced again), it leaves the list.
func TestGivenUpSessions(t *testing.T) {
	st := New(fixtureStart)
	at := fixtureStart.Add(time.Hour)
	for i := 0; i < MaxGivenUp+5; i++ {
		id := fmt.Sprint("s-", i)
		st.AnnounceSession(Announce{SessionID: id, At: at})
		st.Apply(&Pos{Kind: PosSession, ID: id, Index: 7})
		st.Apply(&Pos{Kind: PosSessionDone, ID: id, GivenUp: &GivenUp{Reason: "why " + id, At: at.Add(time.Duration(i) * time.Second), Next: 7}})
	}
	require.NoError(t, st.Validate())
	assert.Empty(t, st.Sessions)
	require.Len(t, st.GivenUp, MaxGivenUp)
	assert.Equal(t, int64(5), st.GivenUpDropped)
	assert.Equal(t, "s-5", st.GivenUp[0].SessionID, "the oldest went first")
	last := st.GivenUp[MaxGivenUp-1]
	assert.Equal(t, GivenUpSession{SessionID: "s-104", Reason: "why s-104", At: at.Add(104 * time.Second), Next: 7}, last)
	assert.Contains(t, st.Summary(), "105 session recordings given up")

	st.AnnounceSession(Announce{SessionID: "s-50", At: at})
	st.Apply(&Pos{Kind: PosSessionDone, ID: "s-50"})
	assert.Len(t, st.GivenUp, MaxGivenUp-1, "exported after all")
	for _, g := range st.GivenUp {
		assert.NotEqual(t, "s-50", g.SessionID)
	}

	// They survive a save and a load, and a cursor set/reset.
	dir := filepath.Join(t.TempDir(), "s")
	store, err := Open(dir)
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Save(st))
	got, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, st.GivenUp, got.GivenUp)
	assert.Equal(t, st.GivenUpDropped, got.GivenUpDropped)
	r := got.Restart(fixtureStart)
	assert.Equal(t, st.GivenUp, r.GivenUp)
	assert.Equal(t, st.GivenUp, st.Clone().GivenUp)
}
