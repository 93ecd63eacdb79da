package cursor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Search positions: windows finish in any order, the frontier moves only
// past the done windows that start at it, and the ids seen before the
// frontier are forgotten.
func TestApplySearch(t *testing.T) {
	t0 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	st := New(t0.Add(-time.Hour))
	apply := func(ps ...Pos) {
		for i := range ps {
			st.Apply(&ps[i])
		}
		require.NoError(t, st.Validate())
	}

	apply(Pos{Kind: PosSearchFrontier, WindowStart: h(0)},
		Pos{Kind: PosSearch, WindowStart: h(2), End: h(4), Key: "k2", ID: "b", Index: 10000},
		Pos{Kind: PosSearch, WindowStart: h(0), End: h(2), Key: "", ID: "a", Index: 10000})
	assert.Equal(t, ModeSearch, st.Mode)
	assert.Equal(t, h(0), st.Search.WindowStart, "the frontier starts where the source does")
	assert.Equal(t, []*Window{
		{Start: h(0), End: h(2), LastID: "a", Limit: 10000},
		{Start: h(2), End: h(4), Key: "k2", LastID: "b", Limit: 10000},
	}, st.Search.Windows)

	apply(Pos{Kind: PosWindowDone, WindowStart: h(2), End: h(4)})
	assert.Equal(t, h(0), st.Search.WindowStart, "an earlier window is not done")
	assert.True(t, st.Search.Windows[1].Done)

	apply(Pos{Kind: PosWindowDone, WindowStart: h(0), End: h(2)})
	assert.Equal(t, h(4), st.Search.WindowStart, "past both done windows")
	assert.Nil(t, st.Search.Windows)

	// Caught up: ids within the tolerance are kept, those before the
	// frontier are not.
	apply(Pos{Kind: PosSeen, ID: "late", WindowStart: h(3)},
		Pos{Kind: PosSeen, ID: "x", WindowStart: h(4)},
		Pos{Kind: PosSeen, ID: "y", WindowStart: h(5)})
	assert.Equal(t, []Seen{{ID: "x", Time: h(4)}, {ID: "y", Time: h(5)}}, st.Search.Seen)
	apply(Pos{Kind: PosSearchFrontier, WindowStart: h(5)})
	assert.Equal(t, []Seen{{ID: "y", Time: h(5)}}, st.Search.Seen)
	apply(Pos{Kind: PosSearchFrontier, WindowStart: h(1)})
	assert.Equal(t, h(5), st.Search.WindowStart, "the frontier never moves back")
	apply(Pos{Kind: PosSearchFrontier, WindowStart: h(6)})
	assert.Nil(t, st.Search.Seen)
}

// A version 1 position is replaced by the first window position, and
// forgotten once the frontier passes it.
func TestApplySearchReplacesVersion1(t *testing.T) {
	t0 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	st := fixtureSearch()
	st.Apply(&Pos{Kind: PosSearch, WindowStart: t0, End: t0.Add(time.Hour), Key: "k", ID: "i", Index: 500})
	assert.Empty(t, st.Search.Key)
	assert.Empty(t, st.Search.LastID)
	assert.Equal(t, []*Window{{Start: t0, End: t0.Add(time.Hour), Key: "k", LastID: "i", Limit: 500}}, st.Search.Windows)

	st = fixtureSearch()
	st.Apply(&Pos{Kind: PosSearchFrontier, WindowStart: t0.Add(time.Minute)})
	assert.Empty(t, st.Search.Key)
	assert.Empty(t, st.Search.LastID)
	require.NoError(t, st.Validate())
}

// Never more ids than MaxSeen: a state Save would refuse would stall the
// export.
func TestApplySeenBounded(t *testing.T) {
	t0 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	st := New(t0)
	st.Apply(&Pos{Kind: PosSearchFrontier, WindowStart: t0})
	st.Search.Seen = make([]Seen, MaxSeen)
	for i := range st.Search.Seen {
		st.Search.Seen[i] = Seen{ID: "i", Time: t0}
	}
	st.Apply(&Pos{Kind: PosSeen, ID: "one too many", WindowStart: t0})
	assert.Len(t, st.Search.Seen, MaxSeen)
	require.NoError(t, st.Validate())
}
