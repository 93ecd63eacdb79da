package schema

import (
	"reflect"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMessageFieldsAndPresence(t *testing.T) {
	lock := &apievents.LockCreate{
		Metadata: apievents.Metadata{Type: "lock.created", Time: time.Date(2026, 11, 22, 2, 52, 15, 0, time.UTC)},
	}
	one, err := apievents.ToOneOf(lock)
	require.NoError(t, err)
	frame, err := one.Marshal()
	require.NoError(t, err)
	msg := Event(frame)
	require.NotEmpty(t, msg)

	keys := map[string][]uint64{}
	for _, f := range MessageFields(reflect.TypeOf(lock)) {
		keys[f.Key] = f.Path
	}
	for _, tc := range []struct {
		key     string
		present bool
	}{
		{"time", true},    // Metadata.Time, inside the embedded Metadata (1)
		{"expires", true}, // ResourceMetadata.Expires, zero but encoded
		{"target", true},
		{"lock", true}, // this schema has it
	} {
		path, ok := keys[tc.key]
		require.True(t, ok, tc.key)
		assert.Equal(t, tc.present, Present(msg, path), tc.key)
	}
	assert.NotContains(t, keys, "name", "strings are not message fields")
	assert.NotContains(t, keys, "ei")
	assert.Len(t, keys["time"], 2, "through the embedded Metadata")

	// A sender without "lock" (field 5) leaves it off the wire.
	var without []byte
	for p := msg; len(p) > 0; {
		n := fieldLen(t, p)
		if num := p[0] >> 3; num != 5 {
			without = append(without, p[:n]...)
		}
		p = p[n:]
	}
	assert.False(t, Present(without, keys["lock"]))
	assert.True(t, Present(without, keys["time"]))
	assert.False(t, Present([]byte{0xff}, keys["time"]), "malformed input is absent")
}

func fieldLen(t *testing.T, p []byte) int {
	t.Helper()
	// tag, then a length-delimited field (every field here is)
	require.Equal(t, byte(2), p[0]&7)
	l, k := int(p[1]), 2
	if p[1] >= 0x80 {
		l, k = int(p[1]&0x7f)|int(p[2])<<7, 3
	}
	return k + l
}
