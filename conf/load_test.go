package conf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lookup turns a map into a property or environment lookup; missing keys
// read as "", as with Fluent Bit and os.Getenv.
func lookup(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeTOML writes content to a file in a fresh directory and returns its
// path.
func writeTOML(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "teleport-event-handler.toml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// baseProps are properties making a valid configuration, minus the key
// under test (and, when it is part of the cert/key/ca triple, with the
// triple instead of an identity).
func baseProps(except string) map[string]string {
	m := map[string]string{
		"teleport_addr": "base.example.com:443",
		"storage_dir":   "/base/storage",
	}
	switch except {
	case "teleport_cert", "teleport_key", "teleport_ca":
		m["teleport_cert"] = "/base/cert.pem"
		m["teleport_key"] = "/base/key.pem"
		m["teleport_ca"] = "/base/ca.pem"
	default:
		m["teleport_identity"] = "/base/identity"
	}
	delete(m, except)
	return m
}

func mustLoad(t *testing.T, props, env map[string]string) (*Config, []string) {
	t.Helper()
	cfg, notices, err := Load(lookup(props), lookup(env))
	require.NoError(t, err)
	require.NotNil(t, cfg)
	return cfg, notices
}

func loadErr(t *testing.T, props, env map[string]string) string {
	t.Helper()
	cfg, notices, err := Load(lookup(props), lookup(env))
	require.Error(t, err)
	assert.Nil(t, cfg)
	assert.Nil(t, notices)
	assert.NotContains(t, err.Error(), "\n", "the error must be one line")
	return err.Error()
}

func startTime(c *Config) any {
	if c.StartTime.IsZero() {
		return ""
	}
	return c.StartTime.UTC().Format(time.RFC3339Nano)
}

func TestLoadDefaults(t *testing.T) {
	cfg, notices := mustLoad(t, baseProps(""), nil)
	assert.Empty(t, notices)

	want := &Config{
		TeleportAddr:           "base.example.com:443",
		Identity:               "/base/identity",
		RefreshInterval:        time.Minute,
		StorageDir:             "/base/storage",
		Batch:                  500,
		WindowSize:             24 * time.Hour,
		Concurrency:            5,
		SearchLateTolerance:    5 * time.Minute,
		ExportLateHorizon:      15 * 24 * time.Hour,
		ExportLatePollMax:      time.Hour,
		ExportChunkMaxAttempts: 10,
		PollInterval:           5 * time.Second,
		SkipSessionTypes:       []string{"print", "desktop.recording"},
		SessionGiveUpAfter:     48 * time.Hour,
		SessionRetryInterval:   10 * time.Second,
		SessionMaxAttempts:     5,
		LockFailedAttempts:     3,
		LockPeriod:             time.Minute,
		ProgressInterval:       30 * time.Second,
		CallbackBytes:          1000 << 10,
		QueueBytes:             8 << 20,
		CommitDelay:            time.Second,
	}
	want.Sources = cfg.Sources
	assert.Equal(t, want, cfg)

	require.Len(t, cfg.Sources, len(Properties)-1) // "timeout" is an alias, not a key of its own
	for _, k := range Properties {
		if k == "timeout" {
			continue
		}
		wantSrc := SourceDefault
		if k == "teleport_addr" || k == "storage_dir" || k == "teleport_identity" {
			wantSrc = SourceProperty
		}
		assert.Equal(t, wantSrc, cfg.Sources[k], k)
	}
}

func TestLoadNilLookups(t *testing.T) {
	_, _, err := Load(nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "teleport_addr")
}

// keyCase sets one key in one source and checks the resulting field.
type keyCase struct {
	prop    string // property name (also the key of Sources)
	propAs  string // property name used, when an alias
	env     string
	tomlKey string // dotted TOML key
	text    string // value as property / environment variable
	tomlVal string // value as a TOML literal
	get     func(*Config) any
	want    any
}

var everyKey = []keyCase{
	{prop: "teleport_addr", env: "FDFWD_TELEPORT_ADDR", tomlKey: "teleport.addr",
		text: "t.example.com:3080", tomlVal: `"t.example.com:3080"`,
		get: func(c *Config) any { return c.TeleportAddr }, want: "t.example.com:3080"},
	{prop: "teleport_identity", env: "FDFWD_TELEPORT_IDENTITY", tomlKey: "teleport.identity",
		text: "/id/identity", tomlVal: `"/id/identity"`,
		get: func(c *Config) any { return c.Identity }, want: "/id/identity"},
	{prop: "teleport_cert", env: "FDFWD_TELEPORT_CERT", tomlKey: "teleport.cert",
		text: "/tls/cert.pem", tomlVal: `"/tls/cert.pem"`,
		get: func(c *Config) any { return c.Cert }, want: "/tls/cert.pem"},
	{prop: "teleport_key", env: "FDFWD_TELEPORT_KEY", tomlKey: "teleport.key",
		text: "/tls/key.pem", tomlVal: `"/tls/key.pem"`,
		get: func(c *Config) any { return c.Key }, want: "/tls/key.pem"},
	{prop: "teleport_ca", env: "FDFWD_TELEPORT_CA", tomlKey: "teleport.ca",
		text: "/tls/ca.pem", tomlVal: `"/tls/ca.pem"`,
		get: func(c *Config) any { return c.CA }, want: "/tls/ca.pem"},
	{prop: "teleport_refresh_enabled", env: "FDFWD_TELEPORT_REFRESH_ENABLED", tomlKey: "teleport.refresh.enabled",
		text: "on", tomlVal: `true`,
		get: func(c *Config) any { return c.RefreshEnabled }, want: true},
	{prop: "teleport_refresh_interval", env: "FDFWD_TELEPORT_REFRESH_INTERVAL", tomlKey: "teleport.refresh.interval",
		text: "90s", tomlVal: `"90s"`,
		get: func(c *Config) any { return c.RefreshInterval }, want: 90 * time.Second},
	{prop: "storage_dir", env: "FDFWD_STORAGE", tomlKey: "storage",
		text: "/var/lib/fdfwd", tomlVal: `"/var/lib/fdfwd"`,
		get: func(c *Config) any { return c.StorageDir }, want: "/var/lib/fdfwd"},
	{prop: "batch", env: "FDFWD_BATCH", tomlKey: "batch",
		text: "42", tomlVal: `42`,
		get: func(c *Config) any { return c.Batch }, want: 42},
	{prop: "window_size", env: "FDFWD_WINDOW_SIZE", tomlKey: "window-size",
		text: "1h30m", tomlVal: `"1h30m"`,
		get: func(c *Config) any { return c.WindowSize }, want: 90 * time.Minute},
	{prop: "concurrency", env: "FDFWD_CONCURRENCY", tomlKey: "concurrency",
		text: "12", tomlVal: `12`,
		get: func(c *Config) any { return c.Concurrency }, want: 12},
	{prop: "search_late_tolerance", env: "FDFWD_SEARCH_LATE_TOLERANCE", tomlKey: "search-late-tolerance",
		text: "10m", tomlVal: `"10m"`,
		get: func(c *Config) any { return c.SearchLateTolerance }, want: 10 * time.Minute},
	{prop: "export_late_horizon", env: "FDFWD_EXPORT_LATE_HORIZON", tomlKey: "export-late-horizon",
		text: "72h", tomlVal: `"72h"`,
		get: func(c *Config) any { return c.ExportLateHorizon }, want: 72 * time.Hour},
	{prop: "export_late_poll_max", env: "FDFWD_EXPORT_LATE_POLL_MAX", tomlKey: "export-late-poll-max",
		text: "2s", tomlVal: `"2s"`,
		get: func(c *Config) any { return c.ExportLatePollMax }, want: 2 * time.Second},
	{prop: "export_chunk_max_attempts", env: "FDFWD_EXPORT_CHUNK_MAX_ATTEMPTS", tomlKey: "export-chunk-max-attempts",
		text: "3", tomlVal: `3`,
		get: func(c *Config) any { return c.ExportChunkMaxAttempts }, want: 3},
	{prop: "types", env: "FDFWD_TYPES", tomlKey: "types",
		text: " user.login , ,session.start ", tomlVal: `["user.login", " session.start", ""]`,
		get: func(c *Config) any { return c.Types }, want: []string{"user.login", "session.start"}},
	{prop: "skip_event_types", env: "FDFWD_SKIP_EVENT_TYPES", tomlKey: "skip-event-types",
		text: "cert.create,app.session.chunk", tomlVal: `"cert.create,app.session.chunk"`,
		get: func(c *Config) any { return c.SkipEventTypes }, want: []string{"cert.create", "app.session.chunk"}},
	{prop: "skip_session_types", env: "FDFWD_SKIP_SESSION_TYPES", tomlKey: "skip-session-types",
		text: "print", tomlVal: `["print"]`,
		get: func(c *Config) any { return c.SkipSessionTypes }, want: []string{"print"}},
	{prop: "session_give_up_after", env: "FDFWD_SESSION_GIVE_UP_AFTER", tomlKey: "session-give-up-after",
		text: "72h", tomlVal: `"72h"`,
		get: func(c *Config) any { return c.SessionGiveUpAfter }, want: 72 * time.Hour},
	{prop: "session_retry_interval", env: "FDFWD_SESSION_RETRY_INTERVAL", tomlKey: "session-retry-interval",
		text: "250ms", tomlVal: `"250ms"`,
		get: func(c *Config) any { return c.SessionRetryInterval }, want: 250 * time.Millisecond},
	{prop: "session_max_attempts", env: "FDFWD_SESSION_MAX_ATTEMPTS", tomlKey: "session-max-attempts",
		text: "9", tomlVal: `9`,
		get: func(c *Config) any { return c.SessionMaxAttempts }, want: 9},
	{prop: "start_time", env: "FDFWD_START_TIME", tomlKey: "start-time",
		text: "2024-03-04T05:06:07Z", tomlVal: `2024-03-04T05:06:07Z`,
		get: startTime, want: "2024-03-04T05:06:07Z"},
	{prop: "poll_interval", env: "FDFWD_TIMEOUT", tomlKey: "timeout",
		text: "7s", tomlVal: `"7s"`,
		get: func(c *Config) any { return c.PollInterval }, want: 7 * time.Second},
	{prop: "dry_run", env: "FDFWD_DRY_RUN", tomlKey: "dry-run",
		text: "yes", tomlVal: `true`,
		get: func(c *Config) any { return c.DryRun }, want: true},
	{prop: "exit_on_last_event", env: "FDFWD_EXIT_ON_LAST_EVENT", tomlKey: "exit-on-last-event",
		text: "1", tomlVal: `true`,
		get: func(c *Config) any { return c.ExitOnLastEvent }, want: true},
	{prop: "debug", env: "FDFWD_DEBUG", tomlKey: "debug",
		text: "TRUE", tomlVal: `true`,
		get: func(c *Config) any { return c.Debug }, want: true},
	{prop: "lock_enabled", env: "FDFWD_LOCK_ENABLED", tomlKey: "lock-enabled",
		text: "true", tomlVal: `true`,
		get: func(c *Config) any { return c.LockEnabled }, want: true},
	{prop: "lock_failed_attempts_count", env: "FDFWD_LOCK_FAILED_ATTEMPTS_COUNT", tomlKey: "lock-failed-attempts-count",
		text: "7", tomlVal: `7`,
		get: func(c *Config) any { return c.LockFailedAttempts }, want: 7},
	{prop: "lock_period", env: "FDFWD_LOCK_PERIOD", tomlKey: "lock-period",
		text: "2m", tomlVal: `"2m"`,
		get: func(c *Config) any { return c.LockPeriod }, want: 2 * time.Minute},
	{prop: "lock_for", env: "FDFWD_LOCK_FOR", tomlKey: "lock-for",
		text: "1h", tomlVal: `"1h"`,
		get: func(c *Config) any { return c.LockFor }, want: time.Hour},
	{prop: "cluster", env: "FDFWD_CLUSTER", tomlKey: "cluster",
		text: "prod-eu", tomlVal: `"prod-eu"`,
		get: func(c *Config) any { return c.Cluster }, want: "prod-eu"},
	{prop: "metrics_listen", env: "FDFWD_METRICS_LISTEN", tomlKey: "metrics-listen",
		text: "127.0.0.1:2021", tomlVal: `"127.0.0.1:2021"`,
		get: func(c *Config) any { return c.MetricsListen }, want: "127.0.0.1:2021"},
	{prop: "progress_interval", env: "FDFWD_PROGRESS_INTERVAL", tomlKey: "progress-interval",
		text: "10s", tomlVal: `"10s"`,
		get: func(c *Config) any { return c.ProgressInterval }, want: 10 * time.Second},
	{prop: "callback_bytes", env: "FDFWD_CALLBACK_BYTES", tomlKey: "callback-bytes",
		text: "1M", tomlVal: `"1M"`,
		get: func(c *Config) any { return c.CallbackBytes }, want: 1 << 20},
	{prop: "queue_bytes", env: "FDFWD_QUEUE_BYTES", tomlKey: "queue-bytes",
		text: "64MiB", tomlVal: `67108864`,
		get: func(c *Config) any { return c.QueueBytes }, want: 64 << 20},
	{prop: "commit_delay", env: "FDFWD_COMMIT_DELAY", tomlKey: "commit-delay",
		text: "3s", tomlVal: `"3s"`,
		get: func(c *Config) any { return c.CommitDelay }, want: 3 * time.Second},
}

// aliasKeys are the other accepted names: property alias, Event Handler
// environment variables and TOML spellings.
var aliasKeys = []keyCase{
	{prop: "poll_interval", propAs: "timeout", env: "FDFWD_POLL_INTERVAL", tomlKey: "poll-interval",
		text: "11s", tomlVal: `"11s"`,
		get: func(c *Config) any { return c.PollInterval }, want: 11 * time.Second},
	{prop: "debug", env: "FDFWD_DEBUG", tomlKey: "teleport.debug",
		text: "on", tomlVal: `true`,
		get: func(c *Config) any { return c.Debug }, want: true},
	{prop: "teleport_cert", env: "FDWRD_TELEPORT_CERT", tomlKey: "teleport-cert",
		text: "/tls/c.pem", tomlVal: `"/tls/c.pem"`,
		get: func(c *Config) any { return c.Cert }, want: "/tls/c.pem"},
	{prop: "teleport_addr", env: "FDFWD_TELEPORT_ADDR", tomlKey: "teleport-addr",
		text: "a.example.com:443", tomlVal: `"a.example.com:443"`,
		get: func(c *Config) any { return c.TeleportAddr }, want: "a.example.com:443"},
	{prop: "lock_enabled", env: "FDFWD_LOCKING_ENABLED", tomlKey: "lock.enabled",
		text: "yes", tomlVal: `true`,
		get: func(c *Config) any { return c.LockEnabled }, want: true},
	{prop: "lock_failed_attempts_count", env: "FDFWD_LOCKING_FAILED_ATTEMPTS", tomlKey: "lock.failed.attempts.count",
		text: "9", tomlVal: `9`,
		get: func(c *Config) any { return c.LockFailedAttempts }, want: 9},
	{prop: "lock_period", env: "FDFWD_LOCKING_PERIOD", tomlKey: "lock.period",
		text: "3m", tomlVal: `"3m"`,
		get: func(c *Config) any { return c.LockPeriod }, want: 3 * time.Minute},
	{prop: "lock_for", env: "FDFWD_LOCKING_FOR", tomlKey: "lock.for",
		text: "5m", tomlVal: `"5m"`,
		get: func(c *Config) any { return c.LockFor }, want: 5 * time.Minute},
	{prop: "teleport_refresh_enabled", env: "FDFWD_TELEPORT_REFRESH_ENABLED", tomlKey: "teleport-refresh-enabled",
		text: "true", tomlVal: `true`,
		get: func(c *Config) any { return c.RefreshEnabled }, want: true},
	{prop: "window_size", env: "FDFWD_WINDOW_SIZE", tomlKey: "window.size",
		text: "2h", tomlVal: `"2h"`,
		get: func(c *Config) any { return c.WindowSize }, want: 2 * time.Hour},
	{prop: "start_time", env: "FDFWD_START_TIME", tomlKey: "start-time",
		text: "2024-03-04T07:06:07+02:00", tomlVal: `"2024-03-04T07:06:07+02:00"`,
		get: startTime, want: "2024-03-04T05:06:07Z"},
	{prop: "skip_event_types", env: "FDFWD_SKIP_EVENT_TYPES", tomlKey: "skip.event.types",
		text: "x", tomlVal: `"x"`,
		get: func(c *Config) any { return c.SkipEventTypes }, want: []string{"x"}},
}

func TestEveryKeyFromEachSource(t *testing.T) {
	// Every key must be covered.
	var covered []string
	for _, kc := range everyKey {
		covered = append(covered, kc.prop)
	}
	for _, d := range keyDefs {
		assert.Contains(t, covered, d.prop, "no test case for key %s", d.prop)
	}

	for _, cases := range [][]keyCase{everyKey, aliasKeys} {
		for _, kc := range cases {
			for _, src := range []string{SourceProperty, SourceEnv, SourceTOML} {
				name := kc.prop + "/" + src
				if src == SourceProperty && kc.propAs != "" {
					name += "/" + kc.propAs
				}
				t.Run(name, func(t *testing.T) {
					props := baseProps(kc.prop)
					env := map[string]string{}
					switch src {
					case SourceProperty:
						p := kc.prop
						if kc.propAs != "" {
							p = kc.propAs
						}
						props[p] = kc.text
					case SourceEnv:
						env[kc.env] = kc.text
					case SourceTOML:
						props["config"] = writeTOML(t, kc.tomlKey+" = "+kc.tomlVal+"\n")
					}
					cfg, notices := mustLoad(t, props, env)
					assert.Empty(t, notices)
					assert.Equal(t, kc.want, kc.get(cfg))
					assert.Equal(t, src, cfg.Sources[kc.prop])
				})
			}
		}
	}
}

func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     string
		props   map[string]string
		env     map[string]string
		toml    string
		get     func(*Config) any
		want    any
		wantSrc string
	}{
		{name: "batch property over env and toml", key: "batch",
			props: map[string]string{"batch": "1"}, env: map[string]string{"FDFWD_BATCH": "2"}, toml: "batch = 3",
			get: func(c *Config) any { return c.Batch }, want: 1, wantSrc: SourceProperty},
		{name: "batch env over toml", key: "batch",
			env: map[string]string{"FDFWD_BATCH": "2"}, toml: "batch = 3",
			get: func(c *Config) any { return c.Batch }, want: 2, wantSrc: SourceEnv},
		{name: "batch toml over default", key: "batch",
			toml: "batch = 3",
			get:  func(c *Config) any { return c.Batch }, want: 3, wantSrc: SourceTOML},
		{name: "batch default", key: "batch",
			get: func(c *Config) any { return c.Batch }, want: 500, wantSrc: SourceDefault},
		{name: "empty property is unset", key: "batch",
			props: map[string]string{"batch": ""}, env: map[string]string{"FDFWD_BATCH": "2"},
			get: func(c *Config) any { return c.Batch }, want: 2, wantSrc: SourceEnv},
		{name: "blank env is unset", key: "batch",
			env: map[string]string{"FDFWD_BATCH": "  "}, toml: "batch = 3",
			get: func(c *Config) any { return c.Batch }, want: 3, wantSrc: SourceTOML},
		{name: "empty toml string is unset", key: "batch",
			toml: `batch = ""`,
			get:  func(c *Config) any { return c.Batch }, want: 500, wantSrc: SourceDefault},
		{name: "timeout property over FDFWD_TIMEOUT over toml", key: "poll_interval",
			props: map[string]string{"timeout": "1s"}, env: map[string]string{"FDFWD_TIMEOUT": "2s"}, toml: `timeout = "3s"`,
			get: func(c *Config) any { return c.PollInterval }, want: time.Second, wantSrc: SourceProperty},
		{name: "FDFWD_POLL_INTERVAL over toml poll-interval", key: "poll_interval",
			env: map[string]string{"FDFWD_POLL_INTERVAL": "2s"}, toml: `poll-interval = "3s"`,
			get: func(c *Config) any { return c.PollInterval }, want: 2 * time.Second, wantSrc: SourceEnv},
		{name: "env false overrides toml true", key: "dry_run",
			env: map[string]string{"FDFWD_DRY_RUN": "off"}, toml: `dry-run = true`,
			get: func(c *Config) any { return c.DryRun }, want: false, wantSrc: SourceEnv},
		{name: "property storage not resolved against the toml directory", key: "storage_dir",
			props: map[string]string{"storage_dir": "rel/storage"}, toml: `storage = "other"`,
			get: func(c *Config) any { return c.StorageDir }, want: "rel/storage", wantSrc: SourceProperty},
		{name: "env list over toml list", key: "types",
			env: map[string]string{"FDFWD_TYPES": "a,b"}, toml: `types = ["c"]`,
			get: func(c *Config) any { return c.Types }, want: []string{"a", "b"}, wantSrc: SourceEnv},
		{name: "env explicitly empty skip-session-types over toml", key: "skip_session_types",
			env: map[string]string{"FDFWD_SKIP_SESSION_TYPES": ","}, toml: `skip-session-types = ["x"]`,
			get: func(c *Config) any { return c.SkipSessionTypes }, want: []string{}, wantSrc: SourceEnv},
		{name: "property start_time over env", key: "start_time",
			props: map[string]string{"start_time": "2020-01-01T00:00:00Z"}, env: map[string]string{"FDFWD_START_TIME": "2021-01-01T00:00:00Z"},
			get: startTime, want: "2020-01-01T00:00:00Z", wantSrc: SourceProperty},
		{name: "config file named by property over FDFWD_CONFIG", key: "batch",
			toml: "batch = 3", env: map[string]string{"FDFWD_CONFIG": "/nonexistent/ignored.toml"},
			get: func(c *Config) any { return c.Batch }, want: 3, wantSrc: SourceTOML},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := baseProps("")
			for k, v := range tc.props {
				props[k] = v
			}
			if tc.toml != "" {
				props["config"] = writeTOML(t, tc.toml+"\n")
			}
			cfg, _ := mustLoad(t, props, tc.env)
			assert.Equal(t, tc.want, tc.get(cfg))
			assert.Equal(t, tc.wantSrc, cfg.Sources[tc.key])
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	path := writeTOML(t, "batch = 33\n")
	cfg, _ := mustLoad(t, baseProps(""), map[string]string{"FDFWD_CONFIG": path})
	assert.Equal(t, 33, cfg.Batch)
	assert.Equal(t, path, cfg.ConfigFile)
	assert.Equal(t, SourceEnv, cfg.Sources["config"])
	assert.Equal(t, SourceTOML, cfg.Sources["batch"])

	props := baseProps("")
	props["config"] = path
	cfg, _ = mustLoad(t, props, nil)
	assert.Equal(t, SourceProperty, cfg.Sources["config"])

	cfg, _ = mustLoad(t, baseProps(""), nil)
	assert.Equal(t, "", cfg.ConfigFile)
	assert.Equal(t, SourceDefault, cfg.Sources["config"])
}

func TestSameValueUnderTwoNamesIsFine(t *testing.T) {
	props := baseProps("")
	props["poll_interval"] = "10s"
	props["timeout"] = "10s"
	cfg, _ := mustLoad(t, props, map[string]string{"FDFWD_TIMEOUT": "3s", "FDFWD_POLL_INTERVAL": "3s"})
	assert.Equal(t, 10*time.Second, cfg.PollInterval)

	props = baseProps("")
	props["config"] = writeTOML(t, "timeout = \"4s\"\npoll-interval = \"4s\"\ndebug = true\n[teleport]\ndebug = true\n")
	cfg, _ = mustLoad(t, props, nil)
	assert.Equal(t, 4*time.Second, cfg.PollInterval)
	assert.True(t, cfg.Debug)
}

func TestSkipSessionTypes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		props   map[string]string
		env     map[string]string
		toml    string
		want    []string
		wantSrc string
	}{
		{name: "unset: default", want: []string{"print", "desktop.recording"}, wantSrc: SourceDefault},
		{name: "empty property: default", props: map[string]string{"skip_session_types": ""},
			want: []string{"print", "desktop.recording"}, wantSrc: SourceDefault},
		{name: "empty env: default", env: map[string]string{"FDFWD_SKIP_SESSION_TYPES": ""},
			want: []string{"print", "desktop.recording"}, wantSrc: SourceDefault},
		{name: "comma property: skip nothing", props: map[string]string{"skip_session_types": ","},
			want: []string{}, wantSrc: SourceProperty},
		{name: "comma env: skip nothing", env: map[string]string{"FDFWD_SKIP_SESSION_TYPES": " , "},
			want: []string{}, wantSrc: SourceEnv},
		{name: "empty toml string: skip nothing", toml: `skip-session-types = ""`,
			want: []string{}, wantSrc: SourceTOML},
		{name: "empty toml array: skip nothing", toml: `skip-session-types = []`,
			want: []string{}, wantSrc: SourceTOML},
		{name: "toml string list", toml: `skip-session-types = "print, session.start"`,
			want: []string{"print", "session.start"}, wantSrc: SourceTOML},
		{name: "property list", props: map[string]string{"skip_session_types": "desktop.recording"},
			want: []string{"desktop.recording"}, wantSrc: SourceProperty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := baseProps("")
			for k, v := range tc.props {
				props[k] = v
			}
			if tc.toml != "" {
				props["config"] = writeTOML(t, tc.toml+"\n")
			}
			cfg, _ := mustLoad(t, props, tc.env)
			assert.Equal(t, tc.want, cfg.SkipSessionTypes)
			assert.NotNil(t, cfg.SkipSessionTypes)
			assert.Equal(t, tc.wantSrc, cfg.Sources["skip_session_types"])
		})
	}

	// The default is a copy: changing it does not change the package's.
	cfg, _ := mustLoad(t, baseProps(""), nil)
	cfg.SkipSessionTypes[0] = "changed"
	assert.Equal(t, []string{"print", "desktop.recording"}, DefaultSkipSessionTypes)
}

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		props    map[string]string
		toml     string
		callback int
		queue    int
	}{
		{callback: 1000 << 10, queue: 8 << 20},
		{props: map[string]string{"callback_bytes": "64K", "queue_bytes": "1M"}, callback: 64 << 10, queue: 1 << 20},
		{props: map[string]string{"callback_bytes": "65536", "queue_bytes": "1048576"}, callback: 65536, queue: 1 << 20},
		{props: map[string]string{"callback_bytes": "2mib", "queue_bytes": "1g"}, callback: 2 << 20, queue: 1 << 30},
		{props: map[string]string{"callback_bytes": "512KB", "queue_bytes": "4 MB"}, callback: 512 << 10, queue: 4 << 20},
		{toml: "callback-bytes = 131072\nqueue-bytes = \"8MiB\"", callback: 128 << 10, queue: 8 << 20},
		// queue_bytes may be below callback_bytes: only the minimums apply.
		{props: map[string]string{"callback_bytes": "64M", "queue_bytes": "2M"}, callback: 64 << 20, queue: 2 << 20},
	} {
		props := baseProps("")
		for k, v := range tc.props {
			props[k] = v
		}
		if tc.toml != "" {
			props["config"] = writeTOML(t, tc.toml+"\n")
		}
		cfg, _ := mustLoad(t, props, nil)
		assert.Equal(t, tc.callback, cfg.CallbackBytes, "%v %s", tc.props, tc.toml)
		assert.Equal(t, tc.queue, cfg.QueueBytes, "%v %s", tc.props, tc.toml)
	}
}

func TestBoundaries(t *testing.T) {
	for _, tc := range []struct {
		prop, value string
		get         func(*Config) any
		want        any
	}{
		{"batch", "1", func(c *Config) any { return c.Batch }, 1},
		{"batch", "10000", func(c *Config) any { return c.Batch }, 10000},
		{"concurrency", "1", func(c *Config) any { return c.Concurrency }, 1},
		{"concurrency", "256", func(c *Config) any { return c.Concurrency }, 256},
		{"lock_failed_attempts_count", "1", func(c *Config) any { return c.LockFailedAttempts }, 1},
		{"lock_for", "0", func(c *Config) any { return c.LockFor }, time.Duration(0)},
		{"lock_for", "0s", func(c *Config) any { return c.LockFor }, time.Duration(0)},
		{"poll_interval", "1ns", func(c *Config) any { return c.PollInterval }, time.Nanosecond},
	} {
		props := baseProps("")
		props[tc.prop] = tc.value
		cfg, _ := mustLoad(t, props, nil)
		assert.Equal(t, tc.want, tc.get(cfg), "%s=%s", tc.prop, tc.value)
	}
}

func TestCredentials(t *testing.T) {
	// Identity alone.
	cfg, _ := mustLoad(t, map[string]string{
		"teleport_addr": "a:443", "storage_dir": "/s", "teleport_identity": "/id",
		"teleport_refresh_enabled": "true",
	}, nil)
	assert.Equal(t, "/id", cfg.Identity)
	assert.True(t, cfg.RefreshEnabled)
	assert.Empty(t, cfg.Cert+cfg.Key+cfg.CA)

	// The triple from three sources.
	path := writeTOML(t, "[teleport]\nca = \"/tls/ca.pem\"\n")
	cfg, _ = mustLoad(t, map[string]string{
		"teleport_addr": "a:443", "storage_dir": "/s", "teleport_cert": "/tls/cert.pem", "config": path,
	}, map[string]string{"FDFWD_TELEPORT_KEY": "/tls/key.pem"})
	assert.Equal(t, "/tls/cert.pem", cfg.Cert)
	assert.Equal(t, "/tls/key.pem", cfg.Key)
	assert.Equal(t, "/tls/ca.pem", cfg.CA)
	assert.Empty(t, cfg.Identity)
	assert.Equal(t, SourceProperty, cfg.Sources["teleport_cert"])
	assert.Equal(t, SourceEnv, cfg.Sources["teleport_key"])
	assert.Equal(t, SourceTOML, cfg.Sources["teleport_ca"])
}

func TestEventHandlerEnvNotice(t *testing.T) {
	_, notices := mustLoad(t, baseProps(""), map[string]string{
		"FDFWD_FLUENTD_URL": "https://f:8888/test.log", "FDWRD_FLUENTD_CA": "/ca",
	})
	require.Len(t, notices, 1)
	assert.Equal(t, "environment FDFWD_FLUENTD_URL, FDWRD_FLUENTD_CA are ignored: Fluent Bit's outputs deliver the records (see docs/configuration.md)", notices[0])
}

func TestPropertiesAndMisspellings(t *testing.T) {
	assert.Len(t, Properties, len(keyDefs)+2) // + timeout + config
	for _, p := range []string{"teleport_addr", "storage_dir", "poll_interval", "timeout", "config", "queue_bytes"} {
		assert.Contains(t, Properties, p)
	}
	seen := map[string]bool{}
	for _, p := range Properties {
		assert.False(t, seen[p], "duplicate property %s", p)
		seen[p] = true
	}
	wrong := map[string]bool{}
	for _, m := range Misspellings {
		assert.False(t, seen[m.Property], "%s is both a property and a misspelling", m.Property)
		assert.True(t, seen[m.Use], "%s suggests unknown property %s", m.Property, m.Use)
		assert.False(t, wrong[m.Property], "duplicate misspelling %s", m.Property)
		wrong[m.Property] = true
	}
	for _, p := range []string{"addr", "identity", "storage", "teleport-addr", "teleport-identity", "storage-dir",
		"start-time", "window-size", "skip-event-types", "skip-session-types", "dry-run", "exit-on-last-event",
		"poll-interval", "refresh-enabled", "teleport_refresh", "start_date", "teleport_identity_file",
		"identity_file", "ca", "cert", "key", "teleport_address", "skip_types", "event_types"} {
		assert.True(t, wrong[p], "%s is not probed", p)
	}

	// Every misspelling is caught, whatever else is set.
	for _, m := range Misspellings {
		props := baseProps("")
		props[m.Property] = "x"
		msg := loadErr(t, props, nil)
		assert.Equal(t, `unknown property "`+m.Property+`": did you mean "`+m.Use+`"?`, msg)
	}
}

func TestRelativePathsResolvedAgainstTOML(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "conf")
	require.NoError(t, os.Mkdir(sub, 0o700))

	path := filepath.Join(sub, "eh.toml")
	require.NoError(t, os.WriteFile(path, []byte(`
storage = "./storage"
[teleport]
addr = "a:443"
identity = "../secrets/identity"
`), 0o600))
	cfg, _ := mustLoad(t, map[string]string{"config": path}, nil)
	assert.Equal(t, filepath.Join(sub, "storage"), cfg.StorageDir)
	assert.Equal(t, filepath.Join(dir, "secrets", "identity"), cfg.Identity)
	assert.Equal(t, "a:443", cfg.TeleportAddr) // not a path

	require.NoError(t, os.WriteFile(path, []byte(`
storage = "/abs/storage"
[teleport]
addr = "a:443"
cert = "tls/cert.pem"
key = "tls/key.pem"
ca = "/etc/ca.pem"
`), 0o600))
	cfg, _ = mustLoad(t, map[string]string{"config": path}, nil)
	assert.Equal(t, "/abs/storage", cfg.StorageDir)
	assert.Equal(t, filepath.Join(sub, "tls", "cert.pem"), cfg.Cert)
	assert.Equal(t, filepath.Join(sub, "tls", "key.pem"), cfg.Key)
	assert.Equal(t, "/etc/ca.pem", cfg.CA)

	// Properties and environment variables are taken as given.
	cfg, _ = mustLoad(t, map[string]string{"config": path, "teleport_cert": "rel/cert.pem"},
		map[string]string{"FDFWD_STORAGE": "rel/storage"})
	assert.Equal(t, "rel/cert.pem", cfg.Cert)
	assert.Equal(t, "rel/storage", cfg.StorageDir)
	assert.Equal(t, filepath.Join(sub, "tls", "key.pem"), cfg.Key)

	// A relative config path is resolved against the working directory,
	// the paths inside it against the file's (absolute) directory.
	t.Chdir(dir)
	cfg, _ = mustLoad(t, map[string]string{"config": "conf/eh.toml"}, nil)
	assert.Equal(t, "conf/eh.toml", cfg.ConfigFile)
	assert.Equal(t, filepath.Join(sub, "tls", "cert.pem"), cfg.Cert)
}

func TestRedacted(t *testing.T) {
	path := writeTOML(t, "batch = 20\n")
	props := baseProps("")
	props["config"] = path
	props["types"] = "a,b"
	props["start_time"] = "2024-01-02T03:04:05Z"
	cfg, _ := mustLoad(t, props, map[string]string{"FDFWD_DEBUG": "1"})

	red := cfg.Redacted()
	assert.Equal(t, path, red["config"])
	assert.Equal(t, "base.example.com:443", red["teleport_addr"])
	assert.Equal(t, "/base/identity", red["teleport_identity"])
	assert.Equal(t, "", red["teleport_key"])
	assert.Equal(t, "20", red["batch"])
	assert.Equal(t, "a,b", red["types"])
	assert.Equal(t, "print,desktop.recording", red["skip_session_types"])
	assert.Equal(t, "2024-01-02T03:04:05Z", red["start_time"])
	assert.Equal(t, "5s", red["poll_interval"])
	assert.Equal(t, "true", red["debug"])
	assert.Equal(t, "1000KiB", red["callback_bytes"])
	assert.Equal(t, "8MiB", red["queue_bytes"])
	assert.Len(t, red, len(keyDefs)+1)

	s := cfg.String()
	assert.NotContains(t, s, "\n")
	assert.Contains(t, s, "batch=20[toml]")
	assert.Contains(t, s, "debug=true[env]")
	assert.Contains(t, s, "teleport_addr=base.example.com:443[property]")
	assert.Contains(t, s, `teleport_key=""`)
	assert.Contains(t, s, "window_size=24h0m0s ")
	assert.True(t, strings.HasPrefix(s, "config="+path+"[property] "), s)

	var nilCfg *Config
	assert.Equal(t, "<nil>", nilCfg.String())
	assert.True(t, slices.Contains(Properties, "config"))
}

// The cluster key names the input; without it the name is teleport_addr's
// host. A name unfit for a log tag or a label value is refused.
func TestClusterName(t *testing.T) {
	for _, tc := range []struct {
		addr, cluster, want, err string
	}{
		{addr: "teleport.example.com:443", want: "teleport.example.com"},
		{addr: "https://auth.example.com:3025/", want: "auth.example.com"},
		{addr: "10.0.0.7:3025", want: "10.0.0.7"},
		{addr: "[::1]:3025", want: "::1"},
		{addr: "teleport.example.com", want: "teleport.example.com"},
		{addr: "a:443", cluster: "prod_eu-1.a", want: "prod_eu-1.a"},
		{addr: "a:443", cluster: "prod eu", err: `invalid cluster "prod eu": must be 1 to 63 letters, digits, '.', '_' or '-'`},
		{addr: "a:443", cluster: "prod]", err: `invalid cluster "prod]"`},
		{addr: "a:443", cluster: strings.Repeat("x", 64), err: "invalid cluster"},
	} {
		t.Run(tc.addr+"/"+tc.cluster, func(t *testing.T) {
			props := baseProps("")
			props["teleport_addr"] = tc.addr
			if tc.cluster != "" {
				props["cluster"] = tc.cluster
			}
			cfg, _, err := Load(func(k string) string { return props[k] }, nil)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.Name())
		})
	}
}
