package teleport

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLockNameDeterministicAndDistinct(t *testing.T) {
	assert.Equal(t, LockName("alice"), LockName("alice"))
	assert.NotEqual(t, LockName("alice@example.com"), LockName("alice-example.com"))
	assert.Regexp(t, `^teleport-fluent-bit-failed-logins-alice-example\.com-[0-9a-f]{8}$`, LockName("alice@example.com"))
	assert.LessOrEqual(t, len(LockName(string(make([]byte, 500)))), 100)
}
