package teleportd

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drain pages through [from, to) with pages of limit, as a client following
// the keys does, and returns the uids in the order returned.
func drain(t *testing.T, s *Server, from, to time.Time, limit int) []string {
	t.Helper()
	clt := identityClient(t, s)
	var out []string
	key := ""
	for calls := 0; ; calls++ {
		require.Less(t, calls, 1000, "no end")
		items, next, err := clt.SearchUnstructuredEvents(context.Background(), from, to, "default", nil, limit, types.EventOrderAscending, key)
		require.NoError(t, err)
		for _, it := range items {
			out = append(out, it.GetId())
		}
		if next == "" {
			return out
		}
		key = next
	}
}

// Each backend selects a superset of [from, to) by its unit, both ends
// inclusive, and a key chain returns every selected event once.
func TestBackendRangesAndKeys(t *testing.T) {
	from := base.Add(10*time.Second + 500*time.Millisecond + 1234)
	to := base.Add(20*time.Second + 250*time.Millisecond + 567)
	tests := []struct {
		backend    string
		start, end time.Time // what it selects: start <= t < end
	}{
		{BackendIdeal, from, to},
		{BackendDynamo, base.Add(10 * time.Second), base.Add(21 * time.Second)},
		{BackendFirestore, base.Add(10 * time.Second), base.Add(21 * time.Second)},
		{BackendAthena, from.Truncate(time.Millisecond), to.Truncate(time.Millisecond).Add(time.Millisecond)},
		{BackendPostgres, from.Truncate(time.Microsecond), to.Truncate(time.Microsecond).Add(time.Microsecond)},
		{BackendFile, from, to.Add(1)},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			s := startServer(t, Options{Backend: tc.backend, SearchRate: -1, BackendCost: -1, VisibilityLag: -1})
			// 3,000 events over 30 s at 10 ms: 100 a second, many per
			// second and per millisecond boundary; plus events exactly at
			// from and to.
			s.Generate(GenSpec{Start: base, Count: 3000, Span: 30 * time.Second, Seed: 7, Precision: time.Millisecond})
			s.Add(Event{Fields: map[string]any{"event": "user.login", "uid": "00000000-0000-4000-8000-000000000001", "time": from}},
				Event{Fields: map[string]any{"event": "user.login", "uid": "00000000-0000-4000-8000-000000000002", "time": to}})
			want := s.UIDs(func(m EventMeta) bool { return !m.Time.Before(tc.start) && m.Time.Before(tc.end) })
			for _, limit := range []int{7, 100, 5000} {
				got := drain(t, s, from, to, limit)
				assert.ElementsMatch(t, want, got, "limit %d", limit)
			}
		})
	}
}

func TestBackendLimitsAndFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("file refuses a limit above 10000 and answers an unknown key with an empty last page", func(t *testing.T) {
		s := startServer(t, Options{Backend: BackendFile, BackendCost: -1})
		s.Generate(GenSpec{Start: base, Count: 100, Span: time.Minute, Seed: 1})
		clt := identityClient(t, s)
		_, _, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10001, types.EventOrderAscending, "")
		require.True(t, trace.IsBadParameter(err), "%v", err)
		items, next, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, "no-such-uid")
		require.NoError(t, err)
		assert.Empty(t, items)
		assert.Empty(t, next)
	})
	t.Run("dynamo fault is an empty page with the key asked with, three times, then the page", func(t *testing.T) {
		s := startServer(t, Options{Backend: BackendDynamo, FaultEvery: 1, VisibilityLag: -1, BackendCost: -1})
		s.Generate(GenSpec{Start: base, Count: 100, Span: time.Minute, Seed: 1})
		clt := identityClient(t, s)
		first, key, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, "")
		require.NoError(t, err)
		require.Len(t, first, 10)
		var dk dynamoKey
		require.NoError(t, json.Unmarshal([]byte(key), &dk), "a dynamoevents checkpointKey")
		assert.Equal(t, base.Format("2006-01-02"), dk.Date)
		for i := 0; i < 3; i++ {
			items, next, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, key)
			require.NoError(t, err)
			assert.Empty(t, items)
			assert.Equal(t, key, next)
		}
		items, next, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, key)
		require.NoError(t, err)
		assert.Len(t, items, 10)
		assert.NotEqual(t, key, next)
	})
	t.Run("the legacy GetEvents answers the same pages and keys", func(t *testing.T) {
		for _, b := range []string{BackendDynamo, BackendFile, BackendAthena} {
			s := startServer(t, Options{Backend: b, VisibilityLag: -1, SearchRate: -1, BackendCost: -1})
			s.Generate(GenSpec{Start: base, Count: 300, Span: 10 * time.Second, Seed: 3, Precision: time.Millisecond})
			clt := identityClient(t, s)
			key, lkey := "", ""
			for page := 0; ; page++ {
				items, next, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Minute), "default", nil, 40, types.EventOrderAscending, key)
				require.NoError(t, err)
				legacy, lnext, err := clt.SearchEvents(ctx, base, base.Add(time.Minute), "default", nil, 40, types.EventOrderAscending, lkey)
				require.NoError(t, err, b)
				require.Len(t, legacy, len(items), b)
				for i := range items {
					assert.Equal(t, items[i].GetId(), legacy[i].GetID(), "%s page %d", b, page)
				}
				assert.Equal(t, next, lnext, b)
				if next == "" {
					break
				}
				key, lkey = next, lnext
			}
		}
	})
	t.Run("athena rate limit is LimitExceeded saying so", func(t *testing.T) {
		s := startServer(t, Options{Backend: BackendAthena, SearchRate: 0.001, SearchBurst: 1, VisibilityLag: -1, BackendCost: -1})
		clt := identityClient(t, s)
		_, _, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, "")
		require.NoError(t, err)
		_, _, err = clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "default", nil, 10, types.EventOrderAscending, "")
		require.True(t, trace.IsLimitExceeded(err), "%v", err)
		assert.Contains(t, err.Error(), "rate limit exceeded for searching events")
	})
	t.Run("an event is searchable only the visibility lag after it is stored", func(t *testing.T) {
		s := startServer(t, Options{Backend: BackendDynamo, VisibilityLag: time.Minute, BackendCost: -1})
		now := time.Now()
		s.Generate(GenSpec{Start: now.Add(-time.Hour), Count: 10, Span: time.Minute, Seed: 1})                // a backlog: stored at its time
		s.Generate(GenSpec{Start: now.Add(-time.Hour), Count: 10, Span: time.Minute, Seed: 2, StoredAt: now}) // stored just now
		got := drain(t, s, now.Add(-2*time.Hour), now, 100)
		assert.Len(t, got, 10)
	})
}
