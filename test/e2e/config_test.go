package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// Bad configuration fails Init with one line naming the key and the value,
// and Fluent Bit exits 1.
func TestBadConfigFailsInit(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	toml := filepath.Join(r.dir, "bad.toml")
	require.NoError(t, os.WriteFile(toml, []byte("storage = \"x\"\n[teleport]\nadress = \"a:1\"\n"), 0o600))
	expired := filepath.Join(r.dir, "expired")
	require.NoError(t, r.auth.WriteIdentity(expired, -time.Minute))
	for _, tc := range []struct {
		name  string
		props []string
		want  string
	}{
		{"unparseable duration", []string{"poll_interval=5 seconds"}, `invalid poll_interval "5 seconds"`},
		{"negative batch", []string{"batch=-3"}, `invalid batch "-3"`},
		{"identity and key pair", []string{"teleport_cert=/c", "teleport_key=/k", "teleport_ca=/ca"}, "teleport_identity"},
		{"no credentials", []string{"teleport_identity="}, "no Teleport credentials"},
		{"start_time not RFC 3339", []string{"start_time=yesterday"}, `invalid start_time "yesterday"`},
		{"unknown TOML key", []string{"config=" + toml}, `unknown key "teleport.adress"`},
		{"misspelled property", []string{"storage=/tmp/x"}, `unknown property "storage"`},
		{"missing identity file", []string{"teleport_identity=" + filepath.Join(r.dir, "nope")}, "teleport_identity " + filepath.Join(r.dir, "nope")},
		{"expired identity", []string{"teleport_identity=" + expired}, "expired"},
		{"corrupt state file", []string{"storage_dir=" + corruptState(t, r.dir)}, "is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := r.host(hostOpts{props: r.props(tc.props...)})
			code, err := h.WaitTimeout(30 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, 1, code, "Init fails and the host exits 1")
			assert.Contains(t, h.Log(), "[error] [input:teleport] ")
			assert.Contains(t, h.Log(), tc.want)
			assert.Contains(t, h.Log(), "initialization failed")
		})
	}
}

func corruptState(t *testing.T, dir string) string {
	d := filepath.Join(dir, "corrupt")
	require.NoError(t, os.MkdirAll(d, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d, "state.json"), []byte(`{"format":"teleport-fluent-bit/cursor","vers`), 0o600))
	return d
}

// Logs look like Fluent Bit's and never carry key material.
func TestLogsLookLikeFluentBitAndHoldNoSecrets(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(500, time.Hour, 13)
	h := r.host(hostOpts{props: r.props("debug=on")})
	r.waitCount(h, len(r.expected(nil)), 30*time.Second)
	require.NoError(t, h.Stop())
	log := h.Log()
	assert.Regexp(t, `(?m)^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] \[ info\] \[input:teleport\] connected to Teleport cluster`, log)
	assert.Regexp(t, `(?m)^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] \[debug\] \[input:teleport\] `, log)
	identity, err := os.ReadFile(r.identity)
	require.NoError(t, err)
	assert.NotContains(t, log, "PRIVATE KEY")
	assert.NotContains(t, log, "CERTIFICATE")
	for _, line := range strings.Split(string(identity), "\n") {
		if len(line) > 40 {
			assert.NotContains(t, log, line, "identity file content in the log")
		}
	}
}
