package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// A panic inside an exported function becomes a logged error and the
// failure code, never a crash of Fluent Bit.
func TestGuardTurnsPanicIntoErrorCode(t *testing.T) {
	var buf bytes.Buffer
	saved := log
	log = logging.New(&buf, "input:teleport")
	defer func() { log = saved }()

	rc := func() (rc int32) {
		var c cint
		defer func() { rc = int32(c) }()
		defer guard("FLBPluginInputCallback", &c, flbError)
		c = flbOK
		var m map[string]int
		m["boom"] = 1 // nil map write panics
		return
	}()
	assert.Equal(t, int32(flbError), rc)
	assert.Contains(t, buf.String(), "[error] [input:teleport] FLBPluginInputCallback: internal error: assignment to entry in nil map")
}

// Without an instance (Init failed or was never called) the callbacks hand
// over nothing and do not crash.
func TestCallbacksWithoutInstance(t *testing.T) {
	assert.Zero(t, inputs.Len())
	FLBPluginInputPause()
	FLBPluginInputResume()
	FLBPluginInputPreExit(0)
	assert.Equal(t, cint(flbOK), FLBPluginExit())
}
