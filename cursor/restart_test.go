package cursor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRestartForgetsProgressKeepsPendingLocks(t *testing.T) {
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	due := time.Date(2024, 1, 3, 0, 0, 0, 0, time.FixedZone("x", 3600))
	st := New(old)
	st.Mode = ModeSearch
	st.Search = &Search{WindowStart: old.Add(time.Hour), Key: "k", LastID: "id-1"}
	st.Sessions = map[string]*Session{"s1": {Next: 4, Announced: old}}
	st.UploadsSeen = true
	st.Locking = &Locking{
		Failures: map[string][]time.Time{"bob": {old}},
		Pending:  map[string]time.Time{"alice": due},
	}
	require.NoError(t, st.Validate())

	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.FixedZone("y", -7200))
	n := st.Restart(start)
	require.NoError(t, n.Validate())
	assert.True(t, n.StartTime.Equal(start))
	assert.Equal(t, time.UTC, n.StartTime.Location())
	assert.Empty(t, n.Mode)
	assert.Nil(t, n.Export)
	assert.Nil(t, n.Search)
	assert.Empty(t, n.Sessions)
	assert.False(t, n.UploadsSeen)
	require.NotNil(t, n.Locking)
	assert.Empty(t, n.Locking.Failures)
	assert.Equal(t, map[string]time.Time{"alice": due.UTC()}, n.Locking.Pending)
	// The original is untouched.
	assert.Equal(t, "id-1", st.Search.LastID)
	assert.Len(t, st.Locking.Pending, 1)

	// A nil state restarts like a first run.
	f := (*State)(nil).Restart(start)
	assert.Equal(t, New(start), f)
	assert.Nil(t, New(old).Restart(start).Locking)
}

func TestRestartSavesAndLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Open(dir)
	require.NoError(t, err)
	defer s.Close()
	st := New(time.Unix(100, 0))
	st.Mode, st.Export = ModeExport, &Export{NextDay: "1970-01-01", Days: map[string]*Day{"1970-01-01": {Cursors: map[string]string{"c": "x"}}}}
	require.NoError(t, s.Save(st))
	start := time.Date(2024, 5, 5, 5, 5, 5, 5, time.UTC)
	require.NoError(t, s.Save(st.Restart(start)))
	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, got.StartTime.Equal(start))
	assert.Empty(t, got.Mode)
	assert.Nil(t, got.Export)
}

func TestSummary(t *testing.T) {
	assert.Equal(t, "no state (first run)", (*State)(nil).Summary())
	st := New(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, "start_time 2024-01-02T00:00:00Z; nothing exported yet", st.Summary())
	st.Mode, st.Export = ModeExport, &Export{NextDay: "2024-01-03", Days: map[string]*Day{"2024-01-03": {Cursors: map[string]string{"a": "1", "b": "2"}}}}
	st.Sessions = map[string]*Session{"s": {}}
	st.Locking = &Locking{Pending: map[string]time.Time{"zed": {}, "amy": {}}}
	assert.Equal(t, "start_time 2024-01-02T00:00:00Z; bulk export resumes at day 2024-01-03 (2 chunks in progress); 1 session recordings in progress; locks pending for amy, zed", st.Summary())
	st.Mode, st.Export, st.Sessions, st.Locking = ModeSearch, nil, nil, nil
	st.Search = &Search{WindowStart: time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC), LastID: "u1"}
	assert.Equal(t, "start_time 2024-01-02T00:00:00Z; search resumes in the window starting 2024-01-04T00:00:00Z after event u1", st.Summary())
}
