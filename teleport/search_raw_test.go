package teleport

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// A backlog window searched through the real client gives the same items
// and positions whether its pages are read raw or decoded by the client,
// from the window's start and resumed inside a page.
func TestRawSearchMatchesTypedSearch(t *testing.T) {
	s, clt := standIn(t)
	ctx := context.Background()
	day := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	s.Generate(teleportd.GenSpec{Start: day.Add(time.Hour), Count: 6000, Span: 20 * time.Hour, Seed: 7, Precision: time.Millisecond})
	f := NewFilter(nil, []string{"cert.create"}, day.Add(time.Hour+10*time.Minute))
	run := func(api AuditLog, w cursor.Window) []record.Item {
		c := &collect{}
		src := &SearchSource{API: api, Filter: f, Batch: 500, WindowSize: 24 * time.Hour, Log: quiet, Now: time.Now}
		require.NoError(t, src.searchWindow(ctx, w, c))
		return c.items
	}
	require.NotNil(t, legacyConn(clt), "the client's pages are read raw")
	require.Nil(t, legacyConn(typedOnly{clt}), "typedOnly's are decoded by the client")
	w := cursor.Window{Start: day, End: day.Add(24 * time.Hour)}
	raw, typed := run(clt, w), run(typedOnly{clt}, w)
	require.Len(t, raw, len(typed))
	kept, pages := 0, map[string]bool{}
	for i := range typed {
		sameItem(t, typed[i], raw[i], i)
		if typed[i].Data != nil {
			kept++
		}
		pages[typed[i].Pos.Key] = true
	}
	assert.Greater(t, kept, 4000, "records kept")
	assert.Less(t, kept, 6000, "cert.create and events before the start time are not")
	assert.Greater(t, len(pages), 2, "several pages (the stand-in stops a page at 1 MiB)")
	assert.Equal(t, cursor.PosWindowDone, typed[len(typed)-1].Pos.Kind)

	// Resumed inside a page, after the event the cursor names.
	at := typed[len(typed)/2].Pos
	require.Equal(t, cursor.PosSearch, at.Kind)
	w2 := cursor.Window{Start: w.Start, End: w.End, Key: at.Key, LastID: at.ID, Limit: int(at.Index)}
	raw, typed = run(clt, w2), run(typedOnly{clt}, w2)
	require.Len(t, raw, len(typed))
	require.NotEmpty(t, typed)
	assert.NotEqual(t, at.ID, typed[0].Pos.ID)
	for i := range typed {
		sameItem(t, typed[i], raw[i], i)
	}
}
