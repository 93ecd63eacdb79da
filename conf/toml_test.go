package conf

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const eventHandlerTOML = `storage = "./storage"
timeout = "10s"
batch = 20
namespace = "default"
window-size = "24h"

[forward.fluentd]
ca = "/home/bob/event-handler/ca.crt"
cert = "/home/bob/event-handler/client.crt"
key = "/home/bob/event-handler/client.key"
url = "https://fluentd.example.com:8888/test.log"
session-url = "https://fluentd.example.com:8888/session"

[teleport]
addr = "example.teleport.com:443"
identity = "identity"
refresh.enabled = true
refresh.interval = "1m"
`

func fluentdNotice(path string) string {
	return "config file " + path + ": [forward.fluentd] is ignored: Fluent Bit's outputs deliver the records (see docs/configuration.md)"
}

func TestEventHandlerTOMLLoadsUnchanged(t *testing.T) {
	path := writeTOML(t, eventHandlerTOML)
	dir := filepath.Dir(path)

	cfg, notices, err := Load(lookup(map[string]string{"config": path}), lookup(nil))
	require.NoError(t, err)
	assert.Equal(t, []string{fluentdNotice(path)}, notices)

	assert.Equal(t, "example.teleport.com:443", cfg.TeleportAddr)
	assert.Equal(t, filepath.Join(dir, "identity"), cfg.Identity)
	assert.True(t, cfg.RefreshEnabled)
	assert.Equal(t, time.Minute, cfg.RefreshInterval)
	assert.Equal(t, filepath.Join(dir, "storage"), cfg.StorageDir)
	assert.Equal(t, 10*time.Second, cfg.PollInterval)
	assert.Equal(t, 20, cfg.Batch)
	assert.Equal(t, 24*time.Hour, cfg.WindowSize)
	// The Fluentd TLS files are not taken for Teleport's.
	assert.Empty(t, cfg.Cert)
	assert.Empty(t, cfg.Key)
	assert.Empty(t, cfg.CA)
	// Untouched keys keep their defaults.
	assert.Equal(t, DefaultConcurrency, cfg.Concurrency)
	assert.Equal(t, DefaultSkipSessionTypes, cfg.SkipSessionTypes)
	assert.Equal(t, path, cfg.ConfigFile)
	for _, k := range []string{"teleport_addr", "teleport_identity", "teleport_refresh_enabled",
		"teleport_refresh_interval", "storage_dir", "poll_interval", "batch", "window_size"} {
		assert.Equal(t, SourceTOML, cfg.Sources[k], k)
	}
	assert.Equal(t, SourceDefault, cfg.Sources["concurrency"])
	assert.Equal(t, SourceProperty, cfg.Sources["config"])
}

func TestEventHandlerTOMLEveryKey(t *testing.T) {
	path := writeTOML(t, `storage = "/var/lib/eh"
timeout = "10s"
batch = 20
namespace = "default"
window-size = "12h"
types = "user.login,session.start"
skip-event-types = ["cert.create"]
skip-session-types = "print"
start-time = "2024-01-02T03:04:05Z"
dry-run = true
debug = false
exit-on-last-event = true
concurrency = 3
lock-enabled = true
lock-failed-attempts-count = 5
lock-period = "2m"
lock-for = "1h"

[forward.fluentd]
url = "https://fluentd.example.com:8888/test.log"
session-url = "https://fluentd.example.com:8888/session"

[teleport]
addr = "example.teleport.com:443"
identity = "/etc/eh/identity"
debug = false
refresh.enabled = true
refresh.interval = "5m"
`)
	cfg, notices, err := Load(lookup(map[string]string{"config": path}), lookup(nil))
	require.NoError(t, err)
	require.Len(t, notices, 1)
	assert.Equal(t, fluentdNotice(path), notices[0])

	assert.Equal(t, "/var/lib/eh", cfg.StorageDir)
	assert.Equal(t, 12*time.Hour, cfg.WindowSize)
	assert.Equal(t, []string{"user.login", "session.start"}, cfg.Types)
	assert.Equal(t, []string{"cert.create"}, cfg.SkipEventTypes)
	assert.Equal(t, []string{"print"}, cfg.SkipSessionTypes)
	assert.Equal(t, "2024-01-02T03:04:05Z", startTime(cfg))
	assert.True(t, cfg.DryRun)
	assert.False(t, cfg.Debug)
	assert.Equal(t, SourceTOML, cfg.Sources["debug"])
	assert.True(t, cfg.ExitOnLastEvent)
	assert.Equal(t, 3, cfg.Concurrency)
	assert.True(t, cfg.LockEnabled)
	assert.Equal(t, 5, cfg.LockFailedAttempts)
	assert.Equal(t, 2*time.Minute, cfg.LockPeriod)
	assert.Equal(t, time.Hour, cfg.LockFor)
	assert.Equal(t, "/etc/eh/identity", cfg.Identity)
	assert.Equal(t, 5*time.Minute, cfg.RefreshInterval)
}

func TestHelmChartTOML(t *testing.T) {
	// As written by the Event Handler's Helm chart: debug under [teleport].
	path := writeTOML(t, `storage = "/var/lib/teleport/plugins/event-handler/storage"
timeout = "10s"
batch = 20
window-size = "24h"

[teleport]
addr = "teleport.example.com:443"
identity = "/var/lib/teleport/plugins/event-handler/teleport-identity/identity"
refresh.enabled = true
debug = true

[forward.fluentd]
url = "https://fluentd.fluentd.svc.cluster.local/events.log"
session-url = "https://fluentd.fluentd.svc.cluster.local/session.log"
ca = "/var/lib/teleport/plugins/event-handler/ca.crt"
cert = "/var/lib/teleport/plugins/event-handler/client.crt"
key = "/var/lib/teleport/plugins/event-handler/client.key"
`)
	cfg, notices, err := Load(lookup(map[string]string{"config": path}), lookup(nil))
	require.NoError(t, err)
	assert.Len(t, notices, 1)
	assert.True(t, cfg.Debug)
	assert.True(t, cfg.RefreshEnabled)
	assert.Equal(t, time.Minute, cfg.RefreshInterval)
}

func TestEmptyFluentdTableStillNoticed(t *testing.T) {
	path := writeTOML(t, "[forward.fluentd]\n")
	_, notices := mustLoad(t, map[string]string{"config": path, "teleport_addr": "a:1",
		"teleport_identity": "/i", "storage_dir": "/s"}, nil)
	assert.Equal(t, []string{fluentdNotice(path)}, notices)

	// [forward] alone is not the Fluentd section: no notice.
	path = writeTOML(t, "[forward]\n")
	_, notices = mustLoad(t, map[string]string{"config": path, "teleport_addr": "a:1",
		"teleport_identity": "/i", "storage_dir": "/s"}, nil)
	assert.Empty(t, notices)
}

func TestTOMLUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.toml")
	msg := loadErr(t, map[string]string{"config": missing}, nil)
	assert.Equal(t, "config file "+missing+": cannot read: no such file or directory", msg)

	msg = loadErr(t, nil, map[string]string{"FDFWD_CONFIG": dir})
	assert.Contains(t, msg, "config file "+dir+": cannot read")

	if os.Geteuid() != 0 {
		noread := writeTOML(t, "batch = 1\n")
		require.NoError(t, os.Chmod(noread, 0))
		msg = loadErr(t, map[string]string{"config": noread}, nil)
		assert.Equal(t, "config file "+noread+": cannot read: permission denied", msg)
	}
}
