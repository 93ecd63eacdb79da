// Package conf holds the plugin's configuration: Fluent Bit properties,
// FDFWD_* environment variables and an Event Handler compatible TOML file,
// merged with the precedence property > environment > TOML > default.
package conf

import (
	"net"
	"strings"
	"time"
)

// Config is the validated configuration of one plugin instance.
type Config struct {
	// Teleport connection.
	TeleportAddr    string        // teleport_addr / [teleport] addr
	Identity        string        // teleport_identity / [teleport] identity
	Cert            string        // teleport_cert / [teleport] cert
	Key             string        // teleport_key / [teleport] key
	CA              string        // teleport_ca / [teleport] ca
	RefreshEnabled  bool          // teleport_refresh_enabled / [teleport] refresh.enabled
	RefreshInterval time.Duration // teleport_refresh_interval / [teleport] refresh.interval

	// Export.
	StorageDir  string        // storage_dir / storage
	Batch       int           // batch: events per search page (limit)
	WindowSize  time.Duration // window_size / window-size
	Concurrency int           // concurrency: chunks (search: backlog windows) exported at once
	// SearchLateTolerance is how long after its own time an event may be
	// stored and still be exported by the search path: once caught up,
	// every poll reads that span again.
	SearchLateTolerance time.Duration // search_late_tolerance
	// ExportLateHorizon is how long after a UTC day ends its chunk list
	// is still read again for chunks written late (Athena: SQS redelivery
	// and dead-letter redrive, up to SQS's 14-day retention); polls of a
	// day grow sparser with its age, up to ExportLatePollMax apart.
	ExportLateHorizon time.Duration // export_late_horizon
	ExportLatePollMax time.Duration // export_late_poll_max
	// ExportChunkMaxAttempts bounds the tries of a chunk failing for a
	// reason retrying does not fix (NotFound, a refused cursor, ...)
	// before it is set aside.
	ExportChunkMaxAttempts int           // export_chunk_max_attempts
	Types                  []string      // types: export only these event types (empty: all)
	SkipEventTypes         []string      // skip_event_types / skip-event-types
	StartTime              time.Time     // start_time / start-time; zero when unset
	PollInterval           time.Duration // poll_interval (alias timeout)
	DryRun                 bool          // dry_run / dry-run
	ExitOnLastEvent        bool          // exit_on_last_event / exit-on-last-event
	Debug                  bool          // debug

	// Session recordings and locking.
	SkipSessionTypes []string // skip_session_types / skip-session-types
	// A recording still missing (NotFound) this long after the event that
	// announced it is given up; until then it is retried, starting every
	// SessionRetryInterval and backing off. Other failures of one session
	// are retried SessionMaxAttempts times.
	SessionGiveUpAfter   time.Duration // session_give_up_after
	SessionRetryInterval time.Duration // session_retry_interval
	SessionMaxAttempts   int           // session_max_attempts
	LockEnabled          bool          // lock_enabled / lock-enabled
	LockFailedAttempts   int           // lock_failed_attempts_count / lock-failed-attempts-count
	LockPeriod           time.Duration // lock_period / lock-period
	LockFor              time.Duration // lock_for / lock-for; 0 = permanent

	// Observability.
	// Cluster names the input in its log lines and in the cluster label of
	// its metrics; "" when unset (Name then gives teleport_addr's host).
	Cluster          string        // cluster
	MetricsListen    string        // metrics_listen: host:port for Prometheus metrics; "" = nothing listens
	ProgressInterval time.Duration // progress_interval: how often a progress line is logged while events flow

	// Engine limits (plugin-only keys).
	CallbackBytes int // callback_bytes: byte budget handed to Fluent Bit per callback (one chunk append, see chunk.go)
	QueueBytes    int // queue_bytes: bound on records fetched but not yet handed over
	// CommitDelay is how long (while the input is not paused) a callback's
	// records stay uncommitted after Fluent Bit took them: Fluent Bit copies
	// them into the input thread's ring buffer and puts them into a chunk
	// only on a later 250 ms timer (see docs/design.md#when-the-cursor-moves).
	CommitDelay time.Duration // commit_delay

	// ConfigFile is the TOML file read (config / FDFWD_CONFIG), as named;
	// "" when none.
	ConfigFile string

	// Sources tells where each key's value came from ("property", "env",
	// "toml", "default"); used for debug output and error messages.
	Sources map[string]string
}

// Defaults.
const (
	DefaultBatch               = 500
	DefaultWindowSize          = 24 * time.Hour
	DefaultSearchLateTolerance = 5 * time.Minute
	DefaultConcurrency         = 5
	// DefaultExportLateHorizon covers Athena's worst case: an event's SQS
	// message kept (and redriven from the dead-letter queue) for SQS's
	// maximum retention of 14 days, plus a day of margin.
	DefaultExportLateHorizon      = 15 * 24 * time.Hour
	DefaultExportLatePollMax      = time.Hour
	DefaultExportChunkMaxAttempts = 10
	DefaultPollInterval           = 5 * time.Second
	DefaultRefreshInterval        = time.Minute
	DefaultCallbackBytes          = FluentBitChunkBytes / 2 // 1000K: two callbacks fill one of Fluent Bit's chunks (chunk.go)
	DefaultQueueBytes             = 8 << 20                 // the stager takes records as they arrive: more only waits on the Go heap (docs/benchmarks.md)
	DefaultProgressInterval       = 30 * time.Second
	DefaultLockAttempts           = 3
	DefaultCommitDelay            = time.Second
	// MinCommitDelay is above Fluent Bit's ring-buffer timer (250 ms) with
	// room for a busy main thread.
	MinCommitDelay = 500 * time.Millisecond

	DefaultSessionGiveUpAfter   = 48 * time.Hour
	DefaultSessionRetryInterval = 10 * time.Second
	DefaultSessionMaxAttempts   = 5
	DefaultLockPeriod           = time.Minute
)

// DefaultSkipSessionTypes are dropped from recordings unless configured.
var DefaultSkipSessionTypes = []string{"print", "desktop.recording"}

// Name is how the input is named in its log lines and metrics: the cluster
// key, or else the host of teleport_addr.
func (c *Config) Name() string {
	if c.Cluster != "" {
		return c.Cluster
	}
	addr := c.TeleportAddr
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	addr, _, _ = strings.Cut(addr, "/")
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
