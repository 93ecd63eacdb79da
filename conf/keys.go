package conf

import "time"

// kind is how a key's value is parsed.
type kind int

const (
	kindString   kind = iota // free text, trimmed
	kindPath                 // file or directory path; relative TOML values are resolved against the TOML file's directory
	kindBool                 // see parseBool
	kindInt                  // base-10 integer within [min, max]
	kindDuration             // Go duration, >= min
	kindSize                 // byte size, >= min
	kindList                 // comma-separated list (TOML: also an array of strings)
	kindTime                 // RFC 3339 (TOML: also an offset date-time)
)

// keyDef describes one configuration key and every name it is known by.
type keyDef struct {
	// prop is the Fluent Bit property name. It is also the key of
	// Config.Sources and the name used in messages about the key in
	// general.
	prop string
	// propAliases are further accepted property names (same meaning).
	propAliases []string
	// env are the accepted environment variables, preferred first.
	env []string
	// toml are the accepted dotted paths in the TOML file, documented form
	// first. Besides the documented form, the hyphenated top-level
	// spelling of the Event Handler's flag and its dotted equivalent are
	// accepted where they differ (e.g. "teleport-addr" next to
	// "teleport.addr"), as the Event Handler's TOML resolver looks both up.
	toml []string

	kind kind
	// min and max bound kindInt (max 0: unbounded); min bounds kindSize
	// (bytes) and kindDuration (nanoseconds: 1 means "> 0", 0 means ">= 0").
	min, max int64

	field func(*Config) any // pointer to the Config field
}

// keyDefs lists every key in the order they are processed.
var keyDefs = []keyDef{
	{prop: "teleport_addr", env: []string{"FDFWD_TELEPORT_ADDR"},
		toml: []string{"teleport.addr", "teleport-addr"},
		kind: kindString, field: func(c *Config) any { return &c.TeleportAddr }},
	{prop: "teleport_identity", env: []string{"FDFWD_TELEPORT_IDENTITY"},
		toml: []string{"teleport.identity", "teleport-identity"},
		kind: kindPath, field: func(c *Config) any { return &c.Identity }},
	// FDWRD_TELEPORT_CERT is the (misspelled) variable the Event Handler
	// reads; accepted so an existing environment keeps working.
	{prop: "teleport_cert", env: []string{"FDFWD_TELEPORT_CERT", "FDWRD_TELEPORT_CERT"},
		toml: []string{"teleport.cert", "teleport-cert"},
		kind: kindPath, field: func(c *Config) any { return &c.Cert }},
	{prop: "teleport_key", env: []string{"FDFWD_TELEPORT_KEY"},
		toml: []string{"teleport.key", "teleport-key"},
		kind: kindPath, field: func(c *Config) any { return &c.Key }},
	{prop: "teleport_ca", env: []string{"FDFWD_TELEPORT_CA"},
		toml: []string{"teleport.ca", "teleport-ca"},
		kind: kindPath, field: func(c *Config) any { return &c.CA }},
	{prop: "teleport_refresh_enabled", env: []string{"FDFWD_TELEPORT_REFRESH_ENABLED"},
		toml: []string{"teleport.refresh.enabled", "teleport-refresh-enabled"},
		kind: kindBool, field: func(c *Config) any { return &c.RefreshEnabled }},
	{prop: "teleport_refresh_interval", env: []string{"FDFWD_TELEPORT_REFRESH_INTERVAL"},
		toml: []string{"teleport.refresh.interval", "teleport-refresh-interval"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.RefreshInterval }},

	{prop: "storage_dir", env: []string{"FDFWD_STORAGE"},
		toml: []string{"storage"},
		kind: kindPath, field: func(c *Config) any { return &c.StorageDir }},
	{prop: "batch", env: []string{"FDFWD_BATCH"},
		toml: []string{"batch"},
		kind: kindInt, min: 1, max: 10000, field: func(c *Config) any { return &c.Batch }},
	{prop: "window_size", env: []string{"FDFWD_WINDOW_SIZE"},
		toml: []string{"window-size", "window.size"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.WindowSize }},
	{prop: "concurrency", env: []string{"FDFWD_CONCURRENCY"},
		toml: []string{"concurrency"},
		kind: kindInt, min: 1, max: 256, field: func(c *Config) any { return &c.Concurrency }},
	{prop: "search_late_tolerance", env: []string{"FDFWD_SEARCH_LATE_TOLERANCE"},
		toml: []string{"search-late-tolerance", "search.late.tolerance"},
		kind: kindDuration, min: int64(MinSearchLateTolerance), field: func(c *Config) any { return &c.SearchLateTolerance }},
	{prop: "export_late_horizon", env: []string{"FDFWD_EXPORT_LATE_HORIZON"},
		toml: []string{"export-late-horizon", "export.late.horizon"},
		kind: kindDuration, min: int64(time.Hour), field: func(c *Config) any { return &c.ExportLateHorizon }},
	{prop: "export_late_poll_max", env: []string{"FDFWD_EXPORT_LATE_POLL_MAX"},
		toml: []string{"export-late-poll-max", "export.late.poll.max"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.ExportLatePollMax }},
	{prop: "export_chunk_max_attempts", env: []string{"FDFWD_EXPORT_CHUNK_MAX_ATTEMPTS"},
		toml: []string{"export-chunk-max-attempts", "export.chunk.max.attempts"},
		kind: kindInt, min: 1, max: 1000, field: func(c *Config) any { return &c.ExportChunkMaxAttempts }},
	{prop: "types", env: []string{"FDFWD_TYPES"},
		toml: []string{"types"},
		kind: kindList, field: func(c *Config) any { return &c.Types }},
	{prop: "skip_event_types", env: []string{"FDFWD_SKIP_EVENT_TYPES"},
		toml: []string{"skip-event-types", "skip.event.types"},
		kind: kindList, field: func(c *Config) any { return &c.SkipEventTypes }},
	// skip_session_types defaults to DefaultSkipSessionTypes. An explicitly
	// empty list means "skip nothing". Fluent Bit returns "" both for a
	// missing and for an empty property, and the environment lookup does
	// the same for unset and empty variables, so "" is "unset" there; to
	// skip nothing from a property or the environment, give a value made
	// only of commas, e.g. ",". In TOML, skip-session-types = "" or [] is
	// explicitly empty.
	{prop: "skip_session_types", env: []string{"FDFWD_SKIP_SESSION_TYPES"},
		toml: []string{"skip-session-types", "skip.session.types"},
		kind: kindList, field: func(c *Config) any { return &c.SkipSessionTypes }},
	{prop: "session_give_up_after", env: []string{"FDFWD_SESSION_GIVE_UP_AFTER"},
		toml: []string{"session-give-up-after"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.SessionGiveUpAfter }},
	{prop: "session_retry_interval", env: []string{"FDFWD_SESSION_RETRY_INTERVAL"},
		toml: []string{"session-retry-interval"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.SessionRetryInterval }},
	{prop: "session_max_attempts", env: []string{"FDFWD_SESSION_MAX_ATTEMPTS"},
		toml: []string{"session-max-attempts"},
		kind: kindInt, min: 1, max: 1000, field: func(c *Config) any { return &c.SessionMaxAttempts }},
	{prop: "start_time", env: []string{"FDFWD_START_TIME"},
		toml: []string{"start-time", "start.time"},
		kind: kindTime, field: func(c *Config) any { return &c.StartTime }},
	{prop: "poll_interval", propAliases: []string{"timeout"}, env: []string{"FDFWD_TIMEOUT", "FDFWD_POLL_INTERVAL"},
		toml: []string{"timeout", "poll-interval"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.PollInterval }},
	{prop: "dry_run", env: []string{"FDFWD_DRY_RUN"},
		toml: []string{"dry-run", "dry.run"},
		kind: kindBool, field: func(c *Config) any { return &c.DryRun }},
	{prop: "exit_on_last_event", env: []string{"FDFWD_EXIT_ON_LAST_EVENT"},
		toml: []string{"exit-on-last-event", "exit.on.last.event"},
		kind: kindBool, field: func(c *Config) any { return &c.ExitOnLastEvent }},
	// The Event Handler's Helm chart writes debug under [teleport] (its
	// flag is teleport-debug); both places are accepted.
	{prop: "debug", env: []string{"FDFWD_DEBUG"},
		toml: []string{"debug", "teleport.debug", "teleport-debug"},
		kind: kindBool, field: func(c *Config) any { return &c.Debug }},

	// FDFWD_LOCKING_* are the variables the Event Handler reads.
	{prop: "lock_enabled", env: []string{"FDFWD_LOCK_ENABLED", "FDFWD_LOCKING_ENABLED"},
		toml: []string{"lock-enabled", "lock.enabled"},
		kind: kindBool, field: func(c *Config) any { return &c.LockEnabled }},
	{prop: "lock_failed_attempts_count", env: []string{"FDFWD_LOCK_FAILED_ATTEMPTS_COUNT", "FDFWD_LOCKING_FAILED_ATTEMPTS"},
		toml: []string{"lock-failed-attempts-count", "lock.failed.attempts.count"},
		kind: kindInt, min: 1, field: func(c *Config) any { return &c.LockFailedAttempts }},
	{prop: "lock_period", env: []string{"FDFWD_LOCK_PERIOD", "FDFWD_LOCKING_PERIOD"},
		toml: []string{"lock-period", "lock.period"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.LockPeriod }},
	{prop: "lock_for", env: []string{"FDFWD_LOCK_FOR", "FDFWD_LOCKING_FOR"},
		toml: []string{"lock-for", "lock.for"},
		kind: kindDuration, min: 0, field: func(c *Config) any { return &c.LockFor }},

	// cluster names this input among the teleport inputs of one Fluent
	// Bit: its log lines and the cluster label of its metrics.
	{prop: "cluster", env: []string{"FDFWD_CLUSTER"},
		toml: []string{"cluster"},
		kind: kindString, field: func(c *Config) any { return &c.Cluster }},
	{prop: "metrics_listen", env: []string{"FDFWD_METRICS_LISTEN"},
		toml: []string{"metrics-listen"},
		kind: kindString, field: func(c *Config) any { return &c.MetricsListen }},
	{prop: "progress_interval", env: []string{"FDFWD_PROGRESS_INTERVAL"},
		toml: []string{"progress-interval"},
		kind: kindDuration, min: 1, field: func(c *Config) any { return &c.ProgressInterval }},
	{prop: "callback_bytes", env: []string{"FDFWD_CALLBACK_BYTES"},
		toml: []string{"callback-bytes"},
		kind: kindSize, min: MinCallbackBytes, field: func(c *Config) any { return &c.CallbackBytes }},
	{prop: "queue_bytes", env: []string{"FDFWD_QUEUE_BYTES"},
		toml: []string{"queue-bytes"},
		kind: kindSize, min: MinQueueBytes, field: func(c *Config) any { return &c.QueueBytes }},
	{prop: "commit_delay", env: []string{"FDFWD_COMMIT_DELAY"},
		toml: []string{"commit-delay"},
		kind: kindDuration, min: int64(MinCommitDelay), field: func(c *Config) any { return &c.CommitDelay }},
}

// Lower bounds of the size keys.
const (
	MinCallbackBytes = 64 << 10
	MinQueueBytes    = 1 << 20
)

// MinSearchLateTolerance: below a second the search path would hardly read
// anything again.
const MinSearchLateTolerance = time.Second

// Upper bounds of the integer keys.
const (
	MaxBatch       = 10000
	MaxConcurrency = 256
)

// The config file is named by a property or a variable, never by the file
// itself.
const (
	configProp = "config"
	configEnv  = "FDFWD_CONFIG"
)

// Properties lists every property name the plugin reads, including the
// alias timeout (of poll_interval) and config.
var Properties = func() []string {
	var out []string
	for _, d := range keyDefs {
		out = append(out, d.prop)
		out = append(out, d.propAliases...)
	}
	return append(out, configProp)
}()

// Misspelling is a property name the plugin does not read but that a user
// is likely to write, with the property meant.
type Misspelling struct {
	Property string // the wrong name
	Use      string // the property to use instead
}

// Misspellings are the wrong property names Load probes for. Fluent Bit
// passes every property of the [INPUT] section to the plugin but its API
// can only look a property up by name, so unknown properties cannot be
// listed; probing a fixed list of likely mistakes (Event Handler flag and
// TOML spellings, hyphens for underscores, near synonyms) catches the
// common ones. None of these names is in Properties.
var Misspellings = []Misspelling{
	{"addr", "teleport_addr"},
	{"address", "teleport_addr"},
	{"teleport-addr", "teleport_addr"},
	{"teleport_address", "teleport_addr"},
	{"teleport-address", "teleport_addr"},
	{"teleport.addr", "teleport_addr"},
	{"identity", "teleport_identity"},
	{"identity_file", "teleport_identity"},
	{"identity-file", "teleport_identity"},
	{"teleport-identity", "teleport_identity"},
	{"teleport_identity_file", "teleport_identity"},
	{"teleport-identity-file", "teleport_identity"},
	{"teleport.identity", "teleport_identity"},
	{"cert", "teleport_cert"},
	{"teleport-cert", "teleport_cert"},
	{"teleport_crt", "teleport_cert"},
	{"key", "teleport_key"},
	{"teleport-key", "teleport_key"},
	{"ca", "teleport_ca"},
	{"teleport-ca", "teleport_ca"},
	{"teleport_cas", "teleport_ca"},
	{"refresh", "teleport_refresh_enabled"},
	{"refresh_enabled", "teleport_refresh_enabled"},
	{"refresh-enabled", "teleport_refresh_enabled"},
	{"teleport_refresh", "teleport_refresh_enabled"},
	{"teleport-refresh-enabled", "teleport_refresh_enabled"},
	{"refresh_interval", "teleport_refresh_interval"},
	{"refresh-interval", "teleport_refresh_interval"},
	{"teleport-refresh-interval", "teleport_refresh_interval"},
	{"storage", "storage_dir"},
	{"storage-dir", "storage_dir"},
	{"storage_path", "storage_dir"},
	{"storage-path", "storage_dir"},
	{"batch_size", "batch"},
	{"batch-size", "batch"},
	{"window-size", "window_size"},
	{"window", "window_size"},
	{"search-late-tolerance", "search_late_tolerance"},
	{"late_tolerance", "search_late_tolerance"},
	{"start-time", "start_time"},
	{"start_date", "start_time"},
	{"start-date", "start_time"},
	{"event_types", "types"},
	{"event-types", "types"},
	{"skip-event-types", "skip_event_types"},
	{"skip_types", "skip_event_types"},
	{"skip-types", "skip_event_types"},
	{"skip-session-types", "skip_session_types"},
	{"poll-interval", "poll_interval"},
	{"polling_interval", "poll_interval"},
	{"dry-run", "dry_run"},
	{"dryrun", "dry_run"},
	{"exit-on-last-event", "exit_on_last_event"},
	{"teleport-debug", "debug"},
	{"teleport_debug", "debug"},
	{"lock-enabled", "lock_enabled"},
	{"lock-failed-attempts-count", "lock_failed_attempts_count"},
	{"lock_failed_attempts", "lock_failed_attempts_count"},
	{"lock-period", "lock_period"},
	{"lock-for", "lock_for"},
	{"callback-bytes", "callback_bytes"},
	{"queue-bytes", "queue_bytes"},
	{"cluster_name", "cluster"},
	{"cluster-name", "cluster"},
	{"config_file", "config"},
	{"config-file", "config"},
}
