package logging

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFormatLikeFluentBit(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "input:teleport")
	l.now = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.Local) }

	l.Infof("connected to %s", "acc")
	l.Debugf("hidden")
	l.SetDebug(true)
	l.Debugf("shown %d", 1)
	l.Warnf("multi\nline")
	l.Errorf("bad")

	assert.Equal(t,
		"[2026/11/22 10:00:00] [ info] [input:teleport] connected to acc\n"+
			"[2026/11/22 10:00:00] [debug] [input:teleport] shown 1\n"+
			"[2026/11/22 10:00:00] [ warn] [input:teleport] multi line\n"+
			"[2026/11/22 10:00:00] [error] [input:teleport] bad\n",
		buf.String())
}
