// Package engine is the export engine: it opens the durable cursor, runs
// the Teleport sources that fill a bounded queue, and hands records to
// Fluent Bit one callback at a time, committing the cursor only for records
// Fluent Bit has taken.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

// Conn is a connection to the Auth Service.
type Conn interface {
	teleport.AuditLog
	teleport.SessionAPI
	teleport.LockAPI
	Ping(ctx context.Context) (proto.PingResponse, error)
	Close() error
}

// Options are the engine's collaborators; zero values get defaults.
type Options struct {
	Log *logging.Logger
	Now func() time.Time
	// Alloc returns n bytes for the records of one callback. The plugin
	// passes C memory, which Fluent Bit may free(); nil means Go memory.
	Alloc func(n int) []byte
	// Free releases a buffer from Alloc that is not handed over (a staged
	// buffer at Stop, or one an oversized record outgrew); nil for Go
	// memory.
	Free func([]byte)
	// OnDrained is called once when exit_on_last_event is set and the
	// backlog has been fetched and handed over.
	OnDrained func()
	// Connect dials the Auth Service; nil dials cfg.TeleportAddr with creds.
	Connect func(ctx context.Context) (Conn, error)
}

// Engine is one running export. Collect, Handed, Pause, Resume and Stop are
// called from Fluent Bit's input thread.
type Engine struct {
	cfg   *conf.Config
	opts  Options
	log   *logging.Logger
	store *cursor.Store
	// Audit events and recordings have a queue each, and every callback
	// gives each a share, so a million-event recording cannot starve audit
	// events (nor the reverse).
	queue    *Queue
	sessQ    *Queue
	sessions *teleport.SessionSource
	locker   *teleport.Locker
	creds    *teleport.Credentials

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	committed *cursor.State // what is durable in Fluent Bit; saved to disk
	pending   *handover     // returned by the last callback, awaiting cleanup
	// inflight are the callbacks Fluent Bit has taken, oldest first, that
	// may not be in a chunk yet: committed in order once durable.
	inflight []handover
	// ranFor is how long the input has run unpaused (up to runningSince
	// while it runs): the clock of the commit delay, which stops while
	// Fluent Bit's ring-buffer collector skips the paused input.
	ranFor       time.Duration
	runningSince time.Time
	// pausesInRow counts Pause calls since the last Resume: two mean
	// Fluent Bit's shutdown with this input running (see Stop).
	pausesInRow int
	lastPause   time.Time
	spare       []record.Item
	stage       stage // the next callback's records
	// recent are the sizes of the last callbacks (stageRoom).
	recent     [stageRoomHistory]int
	recentNext int
	scratch    []record.Item
	stageReady chan struct{}
	paused     bool
	stopping   bool
	stopped    bool
	saveErr    error // the last save failed: hand nothing over until it works
	drained    bool
	wantExit   bool // exit_on_last_event: everything up to now is handed over
	// auditCaughtUp: an audit source's caught-up marker was handed over.
	auditCaughtUp bool
	// uploadsHanded: a session.upload was handed over (UploadsSeen, not
	// committed yet), so a session.end no longer announces a recording.
	uploadsHanded bool
	flip          bool // which queue the stager takes from first next time
	// lastCollect and collectPeriod are when Fluent Bit last called
	// Collect and the period of its calls (zero until two came): polls are
	// timed to end just before a callback (pollWait).
	lastCollect   time.Time
	collectPeriod time.Duration
	pollWoke      time.Time // when the last timed poll began
	pollAim       time.Time // the callback the last timed poll was aimed at
	progress      progress

	// dedupe is the bulk export's memory of recent events (queued or
	// committed); committedIDs the committed ones, saved to the memory
	// file every cursor.MemoryEvery and at Stop.
	dedupe       *teleport.Dedupe
	committedIDs teleport.HashRing
	exported     exportedSessions
	memorySaved  time.Time
	memoryDirty  bool

	metrics     *metrics.Metrics // nil unless metrics_listen is set
	stopMetrics func()
	metricsAddr string
}

// maxActiveSessions bounds the recordings announced and not yet exported
// (waiting for a retry excepted) before audit hand-over waits for them.
// A variable so tests can lower it.
var maxActiveSessions = maxActiveSessionsDefault

const maxActiveSessionsDefault = 8192

// endWithoutUploadWait is how long the recording of a session.end waits
// for its session.upload on a cluster that emits them, before it is tried
// anyway. A variable so tests can lower it.
var endWithoutUploadWait = 10 * time.Minute

// ErrStartTime is returned when start_time differs from the one fixed on the
// first run.
var ErrStartTime = errors.New("start_time differs from the stored start time")

// Start validates credentials, opens and locks the state in storage_dir,
// and starts fetching in the background. Every error is one line fit for the
// log, naming the key or file at fault.
func Start(cfg *conf.Config, opts Options) (*Engine, error) {
	if opts.Log == nil {
		opts.Log = logging.Default
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Alloc == nil {
		opts.Alloc = func(n int) []byte { return make([]byte, n) }
	}
	e := &Engine{cfg: cfg, opts: opts, log: opts.Log, stageReady: make(chan struct{}, 1), runningSince: opts.Now()}
	e.queue = NewQueue(cfg.QueueBytes/2, e.signalStager)
	e.sessQ = NewQueue(cfg.QueueBytes/2, e.signalStager)
	if cfg.MetricsListen != "" {
		e.metrics = metrics.New(opts.Now, cfg.Name())
	}
	e.progress = progress{log: opts.Log, m: e.metrics, every: cfg.ProgressInterval,
		behindAfter: max(time.Minute, 4*cfg.PollInterval), last: opts.Now()}
	e.sessions = &teleport.SessionSource{Metrics: e.metrics,
		Skip: cfg.SkipSessionTypes, Concurrency: cfg.Concurrency,
		GiveUpAfter: cfg.SessionGiveUpAfter, RetryInterval: cfg.SessionRetryInterval, MaxAttempts: cfg.SessionMaxAttempts,
		EndWait: 2*cfg.PollInterval + time.Second, EndWithoutUpload: endWithoutUploadWait, Log: opts.Log, Now: opts.Now,
	}
	if opts.Connect == nil {
		creds, err := teleport.LoadCredentials(cfg, opts.Now())
		if err != nil {
			return nil, err
		}
		e.creds = creds
		e.opts.Connect = func(ctx context.Context) (Conn, error) {
			return teleport.Dial(ctx, cfg.TeleportAddr, creds.Credentials)
		}
	}

	store, err := cursor.Open(cfg.StorageDir)
	if err != nil {
		return nil, err
	}
	st, err := store.Load()
	if err != nil {
		store.Close()
		return nil, err
	}
	fresh := false
	if st == nil {
		start := cfg.StartTime
		if start.IsZero() {
			// Like the Event Handler: without start_time, export from now on.
			start = opts.Now()
		}
		st = cursor.New(start)
		fresh = true
		e.log.Infof("first run: exporting events from %s (start_time)", st.StartTime.Format(time.RFC3339Nano))
	} else {
		if !cfg.StartTime.IsZero() && !cfg.StartTime.Equal(st.StartTime) {
			store.Close()
			return nil, fmt.Errorf("%w: start_time %s, but %s was fixed on the first run with %s; to export from a new start time run `teleport-fluent-bit cursor set --storage %s --start-time %s` (or remove start_time to resume where the export stopped)",
				ErrStartTime, cfg.StartTime.Format(time.RFC3339Nano), store.Path(), st.StartTime.Format(time.RFC3339Nano),
				cfg.StorageDir, cfg.StartTime.Format(time.RFC3339))
		}
		e.log.Infof("resuming from %s", describe(st))
	}
	e.locker = &teleport.Locker{For: cfg.LockFor, Attempts: cfg.LockFailedAttempts, Period: cfg.LockPeriod,
		Log: opts.Log, Now: opts.Now, Placed: e.lockPlaced, Metrics: e.metrics}
	e.store = store
	e.committed = st
	e.dedupe, e.committedIDs = newDedupe()
	e.memorySaved = time.Now()
	if err := e.loadMemory(); err != nil {
		store.Close()
		return nil, err
	}
	if st.Locking != nil {
		for user, at := range st.Locking.Pending {
			e.locker.Add(user, at)
		}
	}
	for id, ss := range st.Sessions {
		e.sessions.Add(id, *ss)
	}
	if n := len(st.Sessions); n > 0 {
		e.log.Infof("%d session recordings to export or resume", n)
	}
	if e.creds != nil {
		e.metrics.IdentityExpiry(e.creds.CertExpiry())
	}
	if e.metrics != nil {
		bound, stop, err := e.metrics.Serve(cfg.MetricsListen)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("invalid metrics_listen %q: %s", cfg.MetricsListen, logging.OneLine(err.Error()))
		}
		e.stopMetrics, e.metricsAddr = stop, bound
		e.log.Infof("serving Prometheus metrics on http://%s/metrics", bound)
	}
	if fresh && !cfg.DryRun {
		// Fix start_time now, so a later run with another one is refused.
		// Last of the checks: a run refused at Init leaves no state behind.
		if err := store.Save(st); err != nil {
			if e.stopMetrics != nil {
				e.stopMetrics()
			}
			store.Close()
			return nil, fmt.Errorf("storage_dir %s: cannot write the initial state: %w", cfg.StorageDir, err)
		}
	}

	e.ctx, e.cancel = context.WithCancel(context.Background())
	work := st.Clone()
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		e.run(work)
	}()
	go func() {
		defer e.wg.Done()
		e.runStager(e.ctx)
	}()
	if e.creds != nil && cfg.RefreshEnabled {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.creds.RunRefresh(e.ctx, cfg.RefreshInterval, e.log, e.metrics)
		}()
	}
	return e, nil
}

// MetricsAddr is the address metrics are served on ("" when off).
func (e *Engine) MetricsAddr() string { return e.metricsAddr }

// lockPlaced forgets a pending lock once placed, and saves that.
func (e *Engine) lockPlaced(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.committed.LockPlaced(user)
	if !e.cfg.DryRun && e.saveErr == nil && !e.stopped {
		if err := e.store.Save(e.committed); err != nil {
			e.saveErr = err
			e.log.Errorf("cannot save the cursor to %s: %s; handing over nothing until it can be saved (the last good state is kept)", e.store.Path(), logging.OneLine(err.Error()))
		}
	}
}

// describe says where a state resumes, for the log.
func describe(st *cursor.State) string {
	switch {
	case st.Mode == cursor.ModeExport && st.Export != nil:
		n := 0
		for _, d := range st.Export.Days {
			n += len(d.Cursors)
		}
		return fmt.Sprintf("bulk export at day %s (%d chunks in progress)", st.Export.NextDay, n)
	case st.Mode == cursor.ModeSearch && st.Search != nil:
		return fmt.Sprintf("search from %s (%d backlog windows in progress, %d events within the late tolerance)",
			st.Search.WindowStart.Format(time.RFC3339), len(st.Search.Windows), len(st.Search.Seen))
	default:
		return fmt.Sprintf("start_time %s", st.StartTime.Format(time.RFC3339Nano))
	}
}

// run connects (retrying with backoff) and runs the right source until the
// engine stops.
func (e *Engine) run(work *cursor.State) {
	conn := e.connect()
	if conn == nil {
		return
	}
	defer conn.Close()

	e.locker.API = conn
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.locker.Run(e.ctx)
	}()
	// What this connection's Auth Service answers (legacy RPCs or not) is
	// learnt once, by the recordings and the search alike.
	compat := &teleport.Compat{Log: e.log}
	e.sessions.API, e.sessions.Compat = conn, compat
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = e.sessions.Run(e.ctx, e.sessQ)
	}()

	filter := teleport.NewFilter(e.cfg.Types, e.cfg.SkipEventTypes, work.StartTime)
	filter.LoginFailures = e.cfg.LockEnabled
	for e.ctx.Err() == nil {
		switch work.Mode {
		case cursor.ModeSearch:
			if work.Search == nil {
				work.Search = &cursor.Search{WindowStart: work.StartTime}
			}
			src := &teleport.SearchSource{API: conn, Filter: filter, Metrics: e.metrics, Types: e.cfg.Types, Batch: e.cfg.Batch,
				WindowSize: e.cfg.WindowSize, Concurrency: e.cfg.Concurrency, Poll: e.cfg.PollInterval,
				LateTolerance: e.cfg.SearchLateTolerance, Log: e.log, Now: e.opts.Now, Compat: compat}
			_ = src.Run(e.ctx, work.Search, e.queue)
			return
		default:
			if work.Export == nil {
				work.Export = &cursor.Export{NextDay: work.StartTime.UTC().Format(cursor.DayLayout)}
			}
			src := &teleport.ExportSource{API: conn, Filter: filter, Metrics: e.metrics, Concurrency: e.cfg.Concurrency,
				Poll: e.cfg.PollInterval, Log: e.log, Now: e.opts.Now,
				LateHorizon: e.cfg.ExportLateHorizon, LatePollMax: e.cfg.ExportLatePollMax,
				ChunkMaxAttempts: e.cfg.ExportChunkMaxAttempts, Dedupe: e.dedupe,
				Wait: e.pollWait}
			err := src.Run(e.ctx, work.Export, e.queue)
			if !errors.Is(err, teleport.ErrNotImplemented) {
				return
			}
			if work.Mode == cursor.ModeExport {
				// The server lost the API under an export cursor: resume the
				// search at the first unfinished day; events of that day
				// already handed over may come again, none is skipped.
				from, _ := time.Parse(cursor.DayLayout, work.Export.NextDay)
				if from.Before(work.StartTime) {
					from = work.StartTime
				}
				e.log.Warnf("the Auth Service no longer offers bulk export; switching to search from %s (events of that day may be exported again)", from.Format(time.RFC3339))
				work.Search = &cursor.Search{WindowStart: from}
			} else {
				e.log.Infof("the Auth Service does not offer bulk export (NotImplemented); using SearchUnstructuredEvents with window_size %s", e.cfg.WindowSize)
			}
			work.Mode, work.Export = cursor.ModeSearch, nil
		}
	}
}

// connect dials until it works or the engine stops.
func (e *Engine) connect() Conn {
	f := 0
	bo := 500 * time.Millisecond
	for {
		conn, err := e.opts.Connect(e.ctx)
		if err == nil {
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			pong, perr := conn.Ping(ctx)
			cancel()
			if perr == nil {
				e.log.Infof("connected to Teleport cluster %q (Teleport %s) at %s", pong.ClusterName, pong.ServerVersion, e.cfg.TeleportAddr)
				return conn
			}
			conn.Close()
			err = perr
		}
		if e.ctx.Err() != nil {
			return nil
		}
		f++
		e.metrics.Error(metrics.ErrConnect)
		if f == 1 {
			e.log.Warnf("cannot connect to Teleport at %s, retrying with backoff: %s", e.cfg.TeleportAddr, logging.OneLine(err.Error()))
		} else {
			e.log.Debugf("connecting to %s failed again (%d): %s", e.cfg.TeleportAddr, f, logging.OneLine(err.Error()))
		}
		select {
		case <-e.ctx.Done():
			return nil
		case <-time.After(bo):
		}
		bo = min(2*bo, 30*time.Second)
	}
}

// SoftMemoryLimit is the Go memory limit the plugin asks for: the live
// heap it expects, what the configuration bounds (the queues, and the
// positions of a staged callback, merged per chunk and recording; the
// staged records themselves are in C memory) plus baseLive, with GCPercent
// of room above it for the GC's pacing, and the runtime's own. Go's GC
// otherwise lets the heap grow to twice what is live; a limit at the live
// heap itself makes the GC run back to back instead (make bench at
// callback_bytes 20M, queue_bytes 4M: at 46.5 MiB, 55 collections a second
// and 32.5 host CPU-s per million events; at 52 MiB 27 a second and 24.1).
func SoftMemoryLimit(cfg *conf.Config) int64 {
	live := int64(cfg.QueueBytes) + int64(cfg.CallbackBytes)/8 + baseLive
	return live + live*GCPercent/100 + runtimeOverhead
}

// baseLive is the Go heap live beside what the configuration bounds: the
// client and the gRPC streams' buffers, the memory of recent events,
// 8,192 recordings in flight (make bench, GODEBUG=gctrace=1: 29-33 MiB live
// at 20M / 4M, of which 6.5 MiB are the queues and staged positions).
const baseLive = 26 << 20

// runtimeOverhead is what the Go runtime counts against the limit beside
// the heap: goroutine stacks, span and GC metadata.
const runtimeOverhead = 4 << 20

// GCPercent is the plugin's GOGC: the Go heap grows to 1.5 times what is
// live before a collection, not twice. Fluent Bit's process holds the
// plugin's heap beside its own copies of every callback, and the heap's
// high-water mark is most of what the plugin adds to Fluent Bit's RSS:
// make bench, 1M events at 64M callbacks, peak RSS 169-184 -> 142-149 MB
// for about twice as many (cheap) collections, 22 MB live on average.
const GCPercent = 50
