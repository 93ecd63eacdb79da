package flbhost_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
)

// --ingest-times writes "<unix_ns> <records> <bytes> <cpu_ns>" per ingested
// buffer, in order, and matches what the summary counts.
func TestIngestTimes(t *testing.T) {
	times := filepath.Join(t.TempDir(), "times")
	before := time.Now().UnixNano()
	r := start(t, flbhost.Options{Props: [][2]string{{"records", "3"}}, ExtraArgs: []string{"--ingest-times", times}})
	require.NoError(t, r.h.WaitReady(10*time.Second))
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, r.h.Stop())
	sum, ok := r.h.Summary()
	require.True(t, ok)
	after := time.Now().UnixNano()

	data, err := os.ReadFile(times)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Equal(t, sum["nonempty"], int64(len(lines)))
	var records, bytes, prevT, prevCPU int64
	for _, l := range lines {
		f := strings.Fields(l)
		require.Len(t, f, 4, l)
		var v [4]int64
		for i := range f {
			v[i], err = strconv.ParseInt(f[i], 10, 64)
			require.NoError(t, err, l)
		}
		assert.GreaterOrEqual(t, v[0], prevT)
		assert.Greater(t, v[0], before)
		assert.Less(t, v[0], after)
		assert.Equal(t, int64(3), v[1])
		assert.GreaterOrEqual(t, v[3], prevCPU)
		prevT, prevCPU = v[0], v[3]
		records += v[1]
		bytes += v[2]
	}
	assert.Equal(t, sum["records"], records)
	assert.Equal(t, sum["bytes"], bytes)
}
