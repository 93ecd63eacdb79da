// Package metrics exposes the plugin's progress in Prometheus form on an
// opt-in address (metrics_listen): what was handed over, how far behind
// Teleport the export is, recordings, locks, errors and cursor commits.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

const ns = "teleport_fluent_bit"

// Error kinds counted by teleport_fluent_bit_errors_total.
const (
	ErrConnect    = "connect"
	ErrExport     = "export"
	ErrSearch     = "search"
	ErrSession    = "session"
	ErrLock       = "lock"
	ErrCursorSave = "cursor_save"
)

// Metrics holds every series. A nil *Metrics is valid and records nothing,
// so callers need no checks when metrics are off.
type Metrics struct {
	reg      *prometheus.Registry
	events   *prometheus.CounterVec
	bytes    prometheus.Counter
	errs     *prometheus.CounterVec
	givenUp  prometheus.Counter
	locks    prometheus.Counter
	late     prometheus.Counter
	stalled  prometheus.Counter
	setAside prometheus.Counter
	dups     prometheus.Counter
	commit   prometheus.Histogram
	caughtUp atomic.Bool
	newest   atomic.Int64 // unix nanoseconds of the newest handed-over audit event
	expiry   atomic.Int64 // unix seconds
	pending  atomic.Int64
	inFlight atomic.Int64
	now      func() time.Time
}

// New returns the metrics with their own registry (never the global one:
// the plugin shares a process with Fluent Bit and maybe other Go plugins).
// Every series carries the label cluster="<cluster>" (left out when
// cluster is ""), so the teleport inputs of one Fluent Bit can share an
// address.
func New(now func() time.Time, cluster string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: now}
	var reg prometheus.Registerer = m.reg
	if cluster != "" {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"cluster": cluster}, m.reg)
	}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_handed_over_total",
		Help: "Records handed over to Fluent Bit, by class: audit events or session recording events."}, []string{"class"})
	m.bytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "handed_over_bytes_total",
		Help: "Bytes of msgpack records handed over to Fluent Bit."})
	m.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "errors_total",
		Help: "Failures by kind (connect, export, search, session, lock, cursor_save); each is retried."}, []string{"kind"})
	m.givenUp = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sessions_given_up_total",
		Help: "Session recordings given up (missing too long, or failing too often)."})
	m.locks = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "locks_placed_total",
		Help: "Teleport locks placed on users after repeated failed logins."})
	m.late = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "search_late_events_total",
		Help: "Events the search path found stored more than search_late_tolerance after their time (exported late, out of order)."})
	m.stalled = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "search_stalled_pages_total",
		Help: "Search pages that made no progress (empty with the key they were asked with, or the same page again); each is asked again after a backoff."})
	m.setAside = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "export_chunks_set_aside_total",
		Help: "Bulk export chunks set aside after failing for a reason retrying does not fix (cursor show lists them; export --chunk re-exports one)."})
	m.dups = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "export_duplicates_dropped_total",
		Help: "Audit events the bulk export read a second time (stored twice by the Auth Service) and did not hand over again."})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "cursor_commit_seconds",
		Help: "Time to save the cursor durably after a hand-over.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f)
	}
	reg.MustRegister(m.events, m.bytes, m.errs, m.givenUp, m.locks, m.late, m.stalled, m.setAside, m.dups, m.commit,
		gauge("lag_seconds", "Now minus the time of the newest audit event handed over (0 before the first).", func() float64 {
			n := m.newest.Load()
			if n == 0 {
				return 0
			}
			return m.now().Sub(time.Unix(0, n)).Seconds()
		}),
		gauge("caught_up", "1 when every event up to now has been handed over, 0 while catching up.", func() float64 {
			if m.caughtUp.Load() {
				return 1
			}
			return 0
		}),
		gauge("sessions_pending", "Session recordings known and not finished (in flight or waiting).", func() float64 { return float64(m.pending.Load()) }),
		gauge("sessions_in_flight", "Session recordings being streamed now.", func() float64 { return float64(m.inFlight.Load()) }),
		gauge("identity_expiry_timestamp_seconds", "Expiry of the Teleport client certificate (unix time; 0 when unknown).", func() float64 { return float64(m.expiry.Load()) }),
	)
	m.events.WithLabelValues("audit")
	m.events.WithLabelValues("session")
	for _, k := range []string{ErrConnect, ErrExport, ErrSearch, ErrSession, ErrLock, ErrCursorSave} {
		m.errs.WithLabelValues(k)
	}
	return m
}

// HandedOver counts one callback's records.
func (m *Metrics) HandedOver(audit, session, bytes int, newestAudit time.Time) {
	if m == nil {
		return
	}
	m.events.WithLabelValues("audit").Add(float64(audit))
	m.events.WithLabelValues("session").Add(float64(session))
	m.bytes.Add(float64(bytes))
	if n := newestAudit.UnixNano(); !newestAudit.IsZero() && n > m.newest.Load() {
		m.newest.Store(n)
	}
}

// Error counts a failure of kind.
func (m *Metrics) Error(kind string) {
	if m != nil {
		m.errs.WithLabelValues(kind).Inc()
	}
}

// CaughtUp sets the backlog state.
func (m *Metrics) CaughtUp(v bool) {
	if m != nil {
		m.caughtUp.Store(v)
	}
}

// Sessions sets the recording gauges.
func (m *Metrics) Sessions(pending, inFlight int) {
	if m != nil {
		m.pending.Store(int64(pending))
		m.inFlight.Store(int64(inFlight))
	}
}

// SessionGivenUp counts a given-up recording.
func (m *Metrics) SessionGivenUp() {
	if m != nil {
		m.givenUp.Inc()
	}
}

// ChunkSetAside counts a bulk export chunk set aside.
func (m *Metrics) ChunkSetAside() {
	if m != nil {
		m.setAside.Inc()
	}
}

// DuplicatesDropped counts events read again and not handed over.
func (m *Metrics) DuplicatesDropped(n int) {
	if m != nil {
		m.dups.Add(float64(n))
	}
}

// LateEvents counts events stored later than the search path's tolerance.
func (m *Metrics) LateEvents(n int) {
	if m != nil {
		m.late.Add(float64(n))
	}
}

// StalledPage counts a search page that made no progress.
func (m *Metrics) StalledPage() {
	if m != nil {
		m.stalled.Inc()
	}
}

// LockPlaced counts a lock.
func (m *Metrics) LockPlaced() {
	if m != nil {
		m.locks.Inc()
	}
}

// Commit observes one cursor save.
func (m *Metrics) Commit(d time.Duration) {
	if m != nil {
		m.commit.Observe(d.Seconds())
	}
}

// IdentityExpiry records the client certificate's expiry.
func (m *Metrics) IdentityExpiry(t time.Time) {
	if m != nil && !t.IsZero() {
		m.expiry.Store(t.Unix())
	}
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// server is one listening /metrics endpoint, shared by every Metrics of
// the process served on the same metrics_listen value (one per teleport
// input): their series differ by the cluster label.
type server struct {
	bound string
	regs  map[*prometheus.Registry]bool
	stop  func()
}

var (
	serversMu sync.Mutex
	servers   = map[string]*server{}
)

// Serve serves /metrics on addr until the returned stop is called; bound is
// the address actually bound (addr may have port 0). Metrics given the same
// addr share one listener. The listen error is returned at once, so a bad
// address fails Init.
func (m *Metrics) Serve(addr string) (bound string, stop func(), err error) {
	serversMu.Lock()
	defer serversMu.Unlock()
	s := servers[addr]
	if s == nil {
		if s, err = listen(addr); err != nil {
			return "", nil, err
		}
		servers[addr] = s
	}
	s.regs[m.reg] = true
	var once sync.Once
	return s.bound, func() {
		once.Do(func() {
			serversMu.Lock()
			delete(s.regs, m.reg)
			last := len(s.regs) == 0
			if last {
				delete(servers, addr)
			}
			serversMu.Unlock()
			if last {
				s.stop()
			}
		})
	}, nil
}

func listen(addr string) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &server{bound: ln.Addr().String(), regs: map[*prometheus.Registry]bool{}}
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		serversMu.Lock()
		gs := make(prometheus.Gatherers, 0, len(s.regs))
		for r := range s.regs {
			gs = append(gs, r)
		}
		serversMu.Unlock()
		return gs.Gather()
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is ours; nothing else can close it
		}
	}()
	s.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return s, nil
}
