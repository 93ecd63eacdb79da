package cursor

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

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
				day.DoneSet.Add("d" + randomString(rng))
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
		data, err := enc.encode(st)
		require.NoError(t, err)
		got, derr := decode(data)
		require.Nil(t, derr, "state %d", i)
		require.Equal(t, st, got, "state %d", i)
	}
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
		firstB, err := enc.encode(st)
		require.NoError(t, err)
		first := string(firstB)
		require.True(t, utf8.ValidString(first))
		again, derr := decode([]byte(first))
		require.Nil(t, derr, "re-decoding our own encoding: %s", first)
		againB, err := enc.encode(again)
		require.NoError(t, err)
		require.Equal(t, first, string(againB))
		want, err := json.MarshalIndent(st, "", "  ")
		require.NoError(t, err)
		require.Equal(t, string(want)+"\n", first)
	})
}
