package cursor

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The memory file round-trips, is private, and one that is not ours or is
// broken is refused with its name.
func TestMemoryFile(t *testing.T) {
	s := openTestStore(t)
	m, err := s.LoadMemory()
	require.NoError(t, err)
	assert.Empty(t, m.Events, "none yet")

	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	in := &Memory{Events: []uint64{3, 1, 2}, Sessions: []SessionMemory{{Hash: 9, At: at}}}
	require.NoError(t, s.SaveMemory(in))
	fi, err := os.Stat(s.MemoryPath())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	m, err = s.LoadMemory()
	require.NoError(t, err)
	assert.Equal(t, in, m)

	raw, err := os.ReadFile(s.MemoryPath())
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"foreign":   []byte(`{"format":"x"}`),
		"truncated": raw[:len(raw)-3],
		"trailing":  append(append([]byte{}, raw...), 0),
	} {
		require.NoError(t, os.WriteFile(s.MemoryPath(), bad, 0o600), name)
		_, err := s.LoadMemory()
		require.ErrorContains(t, err, "memory file "+s.MemoryPath()+" is invalid", name)
	}
}
