package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommandRecordings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	addr, dir := runCmd(t, "--events", "2000", "--days", "1", "--recording-events", "9")
	clt := dial(t, addr, client.LoadIdentityFile(filepath.Join(dir, "identity")))
	ctx := context.Background()
	now := time.Now()
	items, _, err := clt.SearchUnstructuredEvents(ctx, now.Add(-48*time.Hour), now.Add(time.Minute), "", []string{"session.upload"}, 5, types.EventOrderAscending, "")
	require.NoError(t, err)
	require.Len(t, items, 5)
	for _, it := range items {
		sid := it.GetUnstructured().AsMap()["sid"].(string)
		ch, errc := clt.StreamUnstructuredSessionEvents(ctx, sid, 0)
		var typs []string
	loop:
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					break loop
				}
				typs = append(typs, ev.GetType())
			case err := <-errc:
				require.NoError(t, err)
			}
		}
		require.Len(t, typs, 9, sid)
		assert.Equal(t, "session.start", typs[0])
		assert.Equal(t, "session.end", typs[8])
	}
	_, errc := clt.StreamUnstructuredSessionEvents(ctx, "no-such-session", 0)
	assert.True(t, trace.IsNotFound(<-errc))
}
