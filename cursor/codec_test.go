package cursor

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hand-written encoder must write exactly what encoding/json would.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	emptyMaps := fixtureExport(0)
	emptyMaps.Export.Days["2024-03-02"] = &Day{Cursors: map[string]string{}, Done: map[string]bool{}}
	emptyMaps.Export.Days["2024-03-03"] = &Day{Done: map[string]bool{"x": true}}

	states := []*State{
		New(fixtureStart),
		fixtureExport(0),
		fixtureExport(7),
		fixtureSearch(),
		emptyMaps,
		{Format: Format, Version: Version, StartTime: fixtureStart, Mode: ModeExport, Export: &Export{NextDay: "2024-01-01", Days: map[string]*Day{}}},
		{Format: Format, Version: Version, StartTime: fixtureStart, Mode: ModeSearch, Search: &Search{WindowStart: fixtureStart, Key: "k"}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		states = append(states, randomState(rng))
	}
	var enc encoder
	for i, st := range states {
		want, err := json.MarshalIndent(st, "", "  ")
		require.NoError(t, err)
		got := enc.encode(st)
		require.Equal(t, string(want)+"\n", string(got), "state %d", i)
	}
}

// Every string encoding/json can be given, escaped the same way.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	var all []string
	for c := 0; c < 256; c++ {
		all = append(all, string([]byte{byte(c)}), "a"+string(rune(c))+"b")
	}
	all = append(all, "\u2028\u2029", "\xe2\x80", "\xff\xfe", "日本語", "\U0001F600", `\"/`, "")
	for _, s := range all {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendString(nil, s)), "%q", s)
	}
}

func randomString(rng *rand.Rand) string {
	const alphabet = "abcXYZ019 -_/+=\"\\<>&\n\t\x01é日\u2028😀"
	runes := []rune(alphabet)
	n := rng.IntN(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(runes[rng.IntN(len(runes))])
	}
	return b.String()
}

func randomState(rng *rand.Rand) *State {
	st := New(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)))
	if rng.IntN(2) == 0 {
		st.Mode = ModeSearch
		st.Search = &Search{WindowStart: time.Unix(rng.Int64N(4e9), int64(rng.IntN(3))*5e8).UTC()}
		if rng.IntN(2) == 0 {
			st.Search.Key = randomString(rng)
		}
		if rng.IntN(2) == 0 {
			st.Search.LastID = randomString(rng)
		}
		return st
	}
	st.Mode = ModeExport
	st.Export = &Export{NextDay: "2024-02-27"}
	if rng.IntN(4) > 0 {
		st.Export.Days = map[string]*Day{}
		for d := rng.IntN(4); d > 0; d-- {
			day := &Day{}
			for c := rng.IntN(5); c > 0; c-- {
				if day.Cursors == nil {
					day.Cursors = map[string]string{}
				}
				day.Cursors["c"+randomString(rng)] = randomString(rng)
			}
			for c := rng.IntN(3); c > 0; c-- {
				if day.Done == nil {
					day.Done = map[string]bool{}
				}
				day.Done["d"+randomString(rng)] = true
			}
			st.Export.Days[fmt.Sprintf("2024-02-%02d", 27+rng.IntN(3))] = day
		}
		if len(st.Export.Days) == 0 {
			st.Export.Days = nil // JSON cannot tell an empty map from none
		}
	}
	return st
}

func TestRandomStatesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var enc encoder
	for i := 0; i < 500; i++ {
		st := randomState(rng)
		require.NoError(t, st.Validate())
		got, derr := decode(enc.encode(st))
		require.Nil(t, derr, "state %d", i)
		require.Equal(t, st, got, "state %d", i)
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	st := fixtureExport(300)
	var enc encoder
	enc.encode(st)
	allocs := testing.AllocsPerRun(20, func() { enc.encode(st) })
	assert.Zero(t, allocs)
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, its
// errors are one line, and whatever it accepts is valid and survives an
// encode/decode round trip byte for byte.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validExportJSON))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z","mode":"search","search":{"window_start":"2024-03-02T00:00:00Z","key":"k","last_id":"i"}}`))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":99}`))
	f.Add([]byte(`{"foo":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z","mode":"export","export":{"next_day":"2024-03-01","days":{"2024-03-01":null}}}`))
	f.Add([]byte(validExportJSON[:100]))
	var enc encoder
	f.Fuzz(func(t *testing.T, data []byte) {
		st, derr := decode(data)
		if derr != nil {
			require.Nil(t, st)
			msg := derr.fileError("/x/state.json").Error()
			require.NotContains(t, msg, "\n")
			require.True(t, strings.HasPrefix(msg, "state file /x/state.json "))
			return
		}
		require.NoError(t, st.Validate())
		first := string(enc.encode(st))
		require.True(t, utf8.ValidString(first))
		again, derr := decode([]byte(first))
		require.Nil(t, derr, "re-decoding our own encoding: %s", first)
		require.Equal(t, first, string(enc.encode(again)))
		want, err := json.MarshalIndent(st, "", "  ")
		require.NoError(t, err)
		require.Equal(t, string(want)+"\n", first)
	})
}
