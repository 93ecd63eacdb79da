package teleportd

import (
	"context"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The Athena mode through the real client: row-count cursors, rows out of
// time order, late chunks of a past day and repeated events appearing
// later, BadParameter for a refused cursor, NotFound for a removed chunk.
func TestAthenaMode(t *testing.T) {
	s := startServer(t, Options{Backend: BackendAthena, Athena: AthenaOptions{LateChunks: 1, LateDelay: 600 * time.Millisecond, RepeatShare: 0.1}})
	clt := identityClient(t, s)
	ctx := context.Background()
	past := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	s.Generate(GenSpec{Start: past, Count: 300, Span: time.Hour, Seed: 3, ChunkSize: 100})

	list := func() []string {
		var out []string
		str := clt.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(past)})
		for str.Next() {
			out = append(out, str.Item().GetChunk())
		}
		require.NoError(t, str.Done())
		return out
	}
	export := func(chunk, cur string) (uids []string, curs []string, err error) {
		str := clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(past), Chunk: chunk, Cursor: cur})
		var last time.Time
		ordered := true
		for str.Next() {
			ev := str.Item()
			uids = append(uids, ev.GetEvent().GetId())
			curs = append(curs, ev.GetCursor())
			if ev.GetEvent().GetTime().AsTime().Before(last) {
				ordered = false
			}
			last = ev.GetEvent().GetTime().AsTime()
		}
		if len(uids) > 8 {
			assert.False(t, ordered, "rows come in receive order")
		}
		return uids, curs, str.Done()
	}
	early := list()
	require.Len(t, early, 2, "the last chunk of the past day is held back")
	uids, curs, err := export(early[0], "")
	require.NoError(t, err)
	assert.Len(t, uids, 100)
	assert.Equal(t, "a1:1", curs[0])
	rest, _, err := export(early[0], "a1:40")
	require.NoError(t, err)
	assert.Equal(t, uids[40:], rest, "a cursor is a row count")

	time.Sleep(700 * time.Millisecond)
	all := list()
	require.Len(t, all, 4, "the late chunk and the repeats appear")
	assert.Equal(t, early, all[:2], "listed as written")
	seen := map[string]int{}
	for _, c := range all {
		u, _, err := export(c, "")
		require.NoError(t, err)
		for _, x := range u {
			seen[x]++
		}
	}
	assert.Len(t, seen, 300)
	twice := 0
	for _, n := range seen {
		if n == 2 {
			twice++
		}
	}
	assert.Equal(t, 30, twice, "a tenth stored twice")

	s.RejectCursors(all[0])
	_, _, err = export(all[0], "a1:5")
	assert.True(t, trace.IsBadParameter(err), "%v", err)
	_, _, err = export(all[1], "x:5")
	assert.True(t, trace.IsBadParameter(err), "%v", err)
	s.RemoveChunk(all[1])
	_, _, err = export(all[1], "")
	assert.True(t, trace.IsNotFound(err), "%v", err)
	assert.NotContains(t, list(), all[1])
	s.RestoreChunk(all[1])
	assert.Contains(t, list(), all[1])

	// UploadCompleter: a session.upload now, a session.end in the old day.
	late := s.CompleteUpload("sess-x", past.Add(time.Hour))
	require.Len(t, late, 2)
	var inOld []string
	for _, c := range list() {
		u, _, err := export(c, "")
		require.NoError(t, err)
		inOld = append(inOld, u...)
	}
	assert.Contains(t, inOld, late[1], "the session.end lands in a chunk of its old day")
	assert.NotContains(t, inOld, late[0], "the session.upload is stamped now")

	// A recording stream call stores session.recording.access, NotFound too.
	_, errs := clt.StreamUnstructuredSessionEvents(ctx, "no-such-session", 0)
	assert.True(t, trace.IsNotFound(<-errs))
	assert.Equal(t, int64(1), s.RecordingAccesses())
}
