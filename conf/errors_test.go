package conf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestErrors checks that every invalid configuration fails with one line
// naming the key as set and the value. In want, FILE stands for the path of
// the TOML file.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props map[string]string // on top of baseProps("") unless noBase
		env   map[string]string
		toml  string
		// noBase starts from no property at all.
		noBase bool
		// exact, when set, is the whole message; want are substrings.
		exact string
		want  []string
	}{
		// Durations.
		{name: "property duration unparseable", props: map[string]string{"window_size": "1 day"},
			exact: `invalid window_size "1 day": must be a duration such as "30s", "5m" or "24h"`},
		{name: "env duration without unit", env: map[string]string{"FDFWD_TIMEOUT": "5"},
			want: []string{`invalid FDFWD_TIMEOUT "5"`, "duration"}},
		{name: "toml duration unparseable", toml: `timeout = "soon"`,
			exact: `config file FILE: invalid timeout "soon": must be a duration such as "30s", "5m" or "24h"`},
		{name: "toml duration as integer", toml: `timeout = 10`,
			exact: `config file FILE: invalid timeout "10": must be a duration string such as "30s", "5m" or "24h"`},
		{name: "toml dotted duration", toml: "[teleport]\nrefresh.interval = \"1x\"",
			want: []string{`config file FILE: invalid teleport.refresh.interval "1x"`}},
		{name: "zero poll interval", props: map[string]string{"poll_interval": "0s"},
			exact: `invalid poll_interval "0s": must be greater than 0`},
		{name: "negative window", props: map[string]string{"window_size": "-1h"},
			exact: `invalid window_size "-1h": must be greater than 0`},
		{name: "zero refresh interval", env: map[string]string{"FDFWD_TELEPORT_REFRESH_INTERVAL": "0"},
			exact: `invalid FDFWD_TELEPORT_REFRESH_INTERVAL "0": must be greater than 0`},
		{name: "zero lock period", props: map[string]string{"lock_period": "0m"},
			exact: `invalid lock_period "0m": must be greater than 0`},
		{name: "late tolerance below a second", props: map[string]string{"search_late_tolerance": "100ms"},
			exact: `invalid search_late_tolerance "100ms": must be at least 1s`},
		{name: "commit delay below Fluent Bit's ring-buffer timer", props: map[string]string{"commit_delay": "100ms"},
			exact: `invalid commit_delay "100ms": must be at least 500ms`},
		{name: "negative lock for", props: map[string]string{"lock_for": "-1m"},
			exact: `invalid lock_for "-1m": must not be negative`},

		// Integers.
		{name: "zero batch", props: map[string]string{"batch": "0"},
			exact: `invalid batch "0": must be between 1 and 10000`},
		{name: "negative batch", env: map[string]string{"FDFWD_BATCH": "-5"},
			exact: `invalid FDFWD_BATCH "-5": must be between 1 and 10000`},
		{name: "batch too large", props: map[string]string{"batch": "10001"},
			exact: `invalid batch "10001": must be between 1 and 10000`},
		{name: "batch not a number", props: map[string]string{"batch": "ten"},
			exact: `invalid batch "ten": must be an integer`},
		{name: "toml zero batch", toml: `batch = 0`,
			exact: `config file FILE: invalid batch "0": must be between 1 and 10000`},
		{name: "toml float batch", toml: `batch = 1.5`,
			exact: `config file FILE: invalid batch "1.5": must be an integer`},
		{name: "concurrency not an integer", props: map[string]string{"concurrency": "2.5"},
			exact: `invalid concurrency "2.5": must be an integer`},
		{name: "concurrency zero", env: map[string]string{"FDFWD_CONCURRENCY": "0"},
			exact: `invalid FDFWD_CONCURRENCY "0": must be between 1 and 256`},
		{name: "concurrency too large", props: map[string]string{"concurrency": "257"},
			exact: `invalid concurrency "257": must be between 1 and 256`},
		{name: "toml concurrency string", toml: `concurrency = "many"`,
			exact: `config file FILE: invalid concurrency "many": must be an integer`},
		{name: "lock attempts zero", props: map[string]string{"lock_failed_attempts_count": "0"},
			exact: `invalid lock_failed_attempts_count "0": must be at least 1`},

		// Start time.
		{name: "start time not RFC 3339", props: map[string]string{"start_time": "2024-01-02 03:04:05"},
			exact: `invalid start_time "2024-01-02 03:04:05": must be an RFC 3339 time such as "2024-01-02T15:04:05Z"`},
		{name: "env start time", env: map[string]string{"FDFWD_START_TIME": "yesterday"},
			want: []string{`invalid FDFWD_START_TIME "yesterday"`, "RFC 3339"}},
		{name: "toml start time string", toml: `start-time = "2024-01-02"`,
			want: []string{`config file FILE: invalid start-time "2024-01-02"`, "RFC 3339"}},
		{name: "toml local date-time", toml: `start-time = 2024-01-02T03:04:05`,
			want: []string{`config file FILE: invalid start-time "2024-01-02T03:04:05"`, "UTC offset"}},
		{name: "toml local date", toml: `start-time = 2024-01-02`,
			want: []string{`config file FILE: invalid start-time "2024-01-02"`, "UTC offset"}},
		{name: "toml start time number", toml: `start-time = 1700000000`,
			want: []string{`config file FILE: invalid start-time "1700000000"`, "RFC 3339"}},

		// Booleans.
		{name: "bad bool property", props: map[string]string{"dry_run": "maybe"},
			exact: `invalid dry_run "maybe": must be a boolean (true/false, on/off, yes/no, 1/0)`},
		{name: "bad bool env", env: map[string]string{"FDFWD_TELEPORT_REFRESH_ENABLED": "enabled"},
			want: []string{`invalid FDFWD_TELEPORT_REFRESH_ENABLED "enabled"`, "boolean"}},
		{name: "bad bool toml string", toml: `dry-run = "maybe"`,
			want: []string{`config file FILE: invalid dry-run "maybe"`, "boolean"}},
		{name: "bad bool toml number", toml: `debug = 1`,
			exact: `config file FILE: invalid debug "1": must be a boolean`},

		// Sizes.
		{name: "callback bytes too small", props: map[string]string{"callback_bytes": "1K"},
			exact: `invalid callback_bytes "1K": must be at least 64KiB`},
		{name: "callback bytes bad unit", props: map[string]string{"callback_bytes": "12X"},
			want: []string{`invalid callback_bytes "12X"`, "size"}},
		{name: "queue bytes too small", env: map[string]string{"FDFWD_QUEUE_BYTES": "512K"},
			exact: `invalid FDFWD_QUEUE_BYTES "512K": must be at least 1MiB`},
		{name: "toml size wrong type", toml: `callback-bytes = true`,
			want: []string{`config file FILE: invalid callback-bytes "true"`}},
		{name: "toml size too small", toml: `queue-bytes = 1024`,
			exact: `config file FILE: invalid queue-bytes "1024": must be at least 1MiB`},

		// Lists and strings of the wrong TOML type.
		{name: "toml list of numbers", toml: `types = [1, 2]`,
			exact: `config file FILE: invalid types "[1, 2]": must be a comma-separated string or an array of strings`},
		{name: "toml list wrong type", toml: `skip-session-types = true`,
			want: []string{`config file FILE: invalid skip-session-types "true"`}},
		{name: "toml string as number", toml: "[teleport]\naddr = 443",
			exact: `config file FILE: invalid teleport.addr "443": must be a string`},

		// Unknown and misplaced TOML keys, namespace, syntax.
		{name: "unknown key in table", toml: "[teleport]\nadress = \"x\"",
			want: []string{`config file FILE: unknown key "teleport.adress"`, "known keys of [teleport]: addr, identity"}},
		{name: "unknown top-level key with suggestion", toml: `storge = "x"`,
			exact: `config file FILE: unknown key "storge" (did you mean "storage"?)`},
		{name: "unknown top-level key", toml: `output = "stdout"`,
			exact: `config file FILE: unknown key "output"`},
		{name: "unknown fluentd key", toml: "[forward.fluentd]\nmax-connections = 3",
			want: []string{`config file FILE: unknown key "forward.fluentd.max-connections"`}},
		{name: "unknown forward table", toml: "[forward.splunk]\nurl = \"x\"",
			want: []string{`config file FILE: unknown key "forward.splunk"`}},
		{name: "unknown dotted key", toml: "[teleport]\nrefresh.enable = true",
			want: []string{`config file FILE: unknown key "teleport.refresh.enable"`, `did you mean "teleport.refresh.enabled"?`}},
		{name: "table where a value belongs", toml: `teleport = "x"`,
			exact: `config file FILE: "teleport" must be a table`},
		{name: "value where a table belongs", toml: "[teleport.addr]\nhost = \"x\"",
			exact: `config file FILE: "teleport.addr" must be a value, not a table`},
		{name: "array of tables", toml: "[[teleport]]\naddr = \"x\"",
			exact: `config file FILE: "teleport" must be a table`},
		{name: "namespace not default", toml: `namespace = "prod"`,
			exact: `config file FILE: invalid namespace "prod": only "default" is supported`},
		{name: "namespace not a string", toml: `namespace = 1`,
			exact: `config file FILE: invalid namespace "1": only "default" is supported`},
		{name: "syntax error", toml: "batch = 20\nstorage = = \"x\"",
			want: []string{"config file FILE: line 2, column"}},
		{name: "duplicate key", toml: "batch = 20\nbatch = 30",
			want: []string{"config file FILE: line 2, column", "batch"}},
		{name: "unterminated string", toml: "storage = \"x\nbatch = 1",
			want: []string{"config file FILE: line 1, column"}},

		// Aliases that disagree.
		{name: "poll_interval and timeout properties differ", props: map[string]string{"poll_interval": "5s", "timeout": "10s"},
			exact: `conflicting poll_interval "5s" and timeout "10s": set only one`},
		{name: "env aliases differ", env: map[string]string{"FDFWD_TIMEOUT": "5s", "FDFWD_POLL_INTERVAL": "6s"},
			exact: `conflicting FDFWD_TIMEOUT "5s" and FDFWD_POLL_INTERVAL "6s": set only one`},
		{name: "toml aliases differ", toml: "timeout = \"5s\"\npoll-interval = \"6s\"",
			exact: `config file FILE: conflicting timeout "5s" and poll-interval "6s": set only one`},
		{name: "toml debug in two places differs", toml: "debug = true\n[teleport]\ndebug = false",
			exact: `config file FILE: conflicting debug "true" and teleport.debug "false": set only one`},

		// Credentials.
		{name: "identity and cert", props: map[string]string{"teleport_cert": "/c.pem"},
			exact: "conflicting Teleport credentials: teleport_identity and teleport_cert are both set: use either teleport_identity, or teleport_cert, teleport_key and teleport_ca"},
		{name: "identity in toml and cert, key in env", noBase: true,
			props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s"},
			env:   map[string]string{"FDFWD_TELEPORT_CERT": "/c.pem", "FDFWD_TELEPORT_KEY": "/k.pem"},
			toml:  "[teleport]\nidentity = \"/id\"",
			exact: "conflicting Teleport credentials: teleport.identity in config file FILE and FDFWD_TELEPORT_CERT and FDFWD_TELEPORT_KEY are both set: use either teleport_identity, or teleport_cert, teleport_key and teleport_ca"},
		{name: "no credentials", noBase: true, props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s"},
			exact: "no Teleport credentials: set teleport_identity, or teleport_cert, teleport_key and teleport_ca"},
		{name: "cert only", noBase: true, props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s", "teleport_cert": "/c"},
			exact: "incomplete Teleport credentials: teleport_cert is set but teleport_key and teleport_ca are missing: set all three, or teleport_identity instead"},
		{name: "cert and key", noBase: true,
			props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s", "teleport_cert": "/c"},
			env:   map[string]string{"FDFWD_TELEPORT_KEY": "/k"},
			exact: "incomplete Teleport credentials: teleport_cert and FDFWD_TELEPORT_KEY are set but teleport_ca is missing: set all three, or teleport_identity instead"},
		{name: "refresh with cert, key and ca", noBase: true,
			props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s", "teleport_cert": "/c",
				"teleport_key": "/k", "teleport_ca": "/ca", "teleport_refresh_enabled": "true"},
			exact: `invalid teleport_refresh_enabled "true": refresh re-reads the teleport_identity file and cannot be used with teleport_cert, teleport_key and teleport_ca`},
		{name: "refresh in toml with cert, key and ca", noBase: true,
			props: map[string]string{"teleport_addr": "a:1", "storage_dir": "/s"},
			toml:  "[teleport]\ncert = \"c\"\nkey = \"k\"\nca = \"ca\"\nrefresh.enabled = true",
			want:  []string{`config file FILE: invalid teleport.refresh.enabled "true"`, "teleport_identity"}},

		// Required keys.
		{name: "no address", noBase: true, props: map[string]string{"teleport_identity": "/id", "storage_dir": "/s"},
			exact: "no teleport_addr: set the teleport_addr property, FDFWD_TELEPORT_ADDR, or addr under [teleport] in the config file"},
		{name: "no storage", noBase: true, props: map[string]string{"teleport_identity": "/id", "teleport_addr": "a:1"},
			exact: "no storage_dir: set the storage_dir property, FDFWD_STORAGE, or storage in the config file"},
		{name: "empty storage in toml", noBase: true, props: map[string]string{"teleport_identity": "/id", "teleport_addr": "a:1"},
			toml:  `storage = ""`,
			exact: "no storage_dir: set the storage_dir property, FDFWD_STORAGE, or storage in the config file"},

		// Misspelled properties, checked before anything else.
		{name: "misspelled property", props: map[string]string{"storage": "/s"},
			exact: `unknown property "storage": did you mean "storage_dir"?`},
		{name: "two misspelled properties", noBase: true, props: map[string]string{"addr": "a:1", "identity_file": "/id"},
			exact: `unknown property "addr": did you mean "teleport_addr"?; unknown property "identity_file": did you mean "teleport_identity"?`},
		{name: "misspelling wins over a bad toml", props: map[string]string{"dry-run": "true"}, toml: "nonsense = 1",
			exact: `unknown property "dry-run": did you mean "dry_run"?`},

		// A value is checked even when a source of higher precedence
		// overrides it.
		{name: "overridden env value", props: map[string]string{"batch": "5"}, env: map[string]string{"FDFWD_BATCH": "x"},
			exact: `invalid FDFWD_BATCH "x": must be an integer`},
		{name: "overridden toml value", env: map[string]string{"FDFWD_WINDOW_SIZE": "1h"}, toml: `window-size = "1d"`,
			want: []string{`config file FILE: invalid window-size "1d"`}},

		// Values are shown on one line, however they are written.
		{name: "newline in value", props: map[string]string{"batch": "1\n2"},
			exact: `invalid batch "1\n2": must be an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := map[string]string{}
			if !tc.noBase {
				props = baseProps("")
			}
			for k, v := range tc.props {
				props[k] = v
			}
			file := ""
			if tc.toml != "" {
				file = writeTOML(t, tc.toml+"\n")
				props["config"] = file
			}
			msg := loadErr(t, props, tc.env)
			if tc.exact != "" {
				assert.Equal(t, strings.ReplaceAll(tc.exact, "FILE", file), msg)
			}
			for _, w := range tc.want {
				assert.Contains(t, msg, strings.ReplaceAll(w, "FILE", file))
			}
			assert.True(t, tc.exact != "" || len(tc.want) > 0, "the case checks nothing")
		})
	}
}
