package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// With teleport_refresh_enabled, a short-lived identity that tbot replaces
// keeps working: after the first certificate expired and the connection was
// lost, the plugin reconnects with the renewed one. Without refresh it
// cannot, which shows the test can tell the two apart.
func TestIdentityRefresh(t *testing.T) {
	for _, refresh := range []bool{true, false} {
		name := map[bool]string{true: "refresh on", false: "refresh off"}[refresh]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, teleportd.Options{})
			require.NoError(t, r.auth.WriteIdentity(r.identity, 4*time.Second))
			r.generate(1000, time.Hour, 20)
			props := r.props("teleport_refresh_interval=200ms")
			if refresh {
				props = r.props("teleport_refresh_enabled=on", "teleport_refresh_interval=200ms")
			}
			h := r.host(hostOpts{props: props})
			r.waitCount(h, len(r.expected(nil)), 30*time.Second)

			// tbot renews the file (written aside, then renamed over it).
			renewed := filepath.Join(r.dir, "identity.new")
			require.NoError(t, r.auth.WriteIdentity(renewed, time.Hour))
			require.NoError(t, os.Rename(renewed, r.identity))
			time.Sleep(4500 * time.Millisecond) // the first certificate has expired

			r.auth.Stop() // connections drop; the next handshake needs a valid certificate
			require.NoError(t, r.auth.Restart())
			r.generate(500, 10*time.Minute, 21)
			want := r.expected(nil)
			if !refresh {
				time.Sleep(3 * time.Second)
				assert.Less(t, len(r.ingested()), len(want), "an expired certificate cannot reconnect")
				return
			}
			r.waitCount(h, len(want), 30*time.Second)
			require.NoError(t, h.Stop())
			exactlyOnce(t, want, r.ingested())
		})
	}
}
