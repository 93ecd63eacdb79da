package teleportd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gravitational/teleport/api/client/proto"
)

// DefaultSearchMaxBytes caps the size of one GetUnstructuredEvents response
// like Teleport's events.MaxEventBytesInResponse (1 MiB); the client's default
// gRPC receive limit is 4 MiB, so a full 10000-event page would not fit.
const DefaultSearchMaxBytes = 1 << 20

// MaxSearchLimit is the default and maximum GetUnstructuredEvents limit.
const MaxSearchLimit = 10000

// Options configure Start.
type Options struct {
	Addr                string // "" = 127.0.0.1:0
	Dir                 string // where CA/server material lives (created 0700); "" = a temporary directory removed by Close
	ClusterName         string // default "acc"
	ServerVersion       string // default "17.2.0"
	ExportUnimplemented bool   // GetEventExportChunks/ExportUnstructuredEvents answer codes.Unimplemented
	// RecordingsUnimplemented makes StreamUnstructuredSessionEvents answer
	// codes.Unimplemented, like Teleport before the unstructured API: the
	// recordings are then read with the legacy AuthService/StreamSessionEvents.
	RecordingsUnimplemented bool
	// SearchUnimplemented makes GetUnstructuredEvents answer
	// codes.Unimplemented: search is then AuthService/GetEvents only.
	SearchUnimplemented bool
	Logf                func(format string, args ...any)

	// ChunkSize is the maximum number of events per chunk formed by Add
	// (default DefaultChunkSize). Generate uses GenSpec.ChunkSize.
	ChunkSize int
	// SearchMaxBytes caps the protobuf size of the events of one
	// GetUnstructuredEvents response (default DefaultSearchMaxBytes, < 0 = no
	// cap). A page cut by the cap has fewer than limit events and a LastKey.
	SearchMaxBytes int
	// SearchPageDelay makes every GetUnstructuredEvents call take at least
	// this long, for benchmarks: Teleport's file backend reads every file of
	// the queried days for each page (lib/events/filelog.go, SearchEvents),
	// about 0.2 s a page on a 20,000-event log. The delay is a wait, not
	// CPU: it models a server on a machine of its own. 0 = none.
	SearchPageDelay time.Duration
	// NoRecordings makes every recording answer codes.NotFound (not
	// uploaded yet), for benchmarks of the audit events alone.
	NoRecordings bool
	// RecordingEvents is the number of events of the recording of every
	// generated session and AddSession session (min 2; its session.end
	// then has "ei" RecordingEvents-1). 0 = 4 to 63, hashed per session.
	RecordingEvents int
	// NoSessions generates no SSH sessions: the session slots of every
	// block layout hold logins and other non-session events instead, for
	// benchmarks of the audit search alone (no recordings to track).
	NoSessions bool

	// Backend makes search (GetUnstructuredEvents, legacy GetEvents) answer
	// as that Teleport audit backend does (backends.go; "" = BackendIdeal).
	Backend string
	// VisibilityLag is how long after it is stored an event becomes
	// searchable (0 = the backend's: dynamo 500ms, athena 1m, others none;
	// < 0 = none).
	VisibilityLag time.Duration
	// FaultEvery gives every FaultEvery-th search asked with a key the
	// backend's fault (dynamo: an empty page with the same key, three
	// times; file: an unknown key). 0 = none.
	FaultEvery int
	// SearchRate and SearchBurst are athena's search rate limit (calls a
	// second, bucket size); 0 = 5 and 10, < 0 = none.
	SearchRate  float64
	SearchBurst int
	// BackendCost scales the backend's cost model (0 = 1, < 0 = none).
	BackendCost float64
	// BackendCPUs is how many file-log pages the Auth Service reads at a
	// time (0 = 2: the files are parsed on its CPUs).
	BackendCPUs int
	// Athena holds the bulk export's Athena behaviour (Backend "athena":
	// athena.go): late chunks, repeated events, row-count cursors.
	Athena AthenaOptions
}

// Server is a running (or stopped) Auth Service stand-in.
type Server struct {
	opts    Options
	dir     string
	tempDir bool
	ca      *authority
	tlsConf *tls.Config
	store   *store

	exportUnimpl atomic.Bool
	recUnimpl    atomic.Bool
	searchUnimpl atomic.Bool

	mu     sync.Mutex
	addr   string
	grpc   *grpc.Server
	done   chan struct{}
	closed bool

	st counters

	rec     recState     // session recordings, their faults and counters (recordings.go)
	locks   lockState    // UpsertLock calls (locks.go)
	backend backendState // the backend's faults and rate limit (backends.go)
	acl     accessState  // per-user rights (access.go)
}

// Start creates the CA (or loads it from opts.Dir), issues the server
// certificate and starts serving.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "acc"
	}
	if opts.ServerVersion == "" {
		opts.ServerVersion = "17.2.0"
	}
	if opts.Backend == "" {
		opts.Backend = BackendIdeal
	}
	if _, ok := backendSpecs[opts.Backend]; !ok && opts.Backend != BackendIdeal {
		return nil, fmt.Errorf("unknown backend %q (one of %s)", opts.Backend, strings.Join(Backends, ", "))
	}
	if opts.SearchMaxBytes == 0 {
		opts.SearchMaxBytes = DefaultSearchMaxBytes
	}
	s := &Server{opts: opts, store: newStore(opts.ClusterName, opts.ChunkSize)}
	s.store.recEvents = opts.RecordingEvents
	s.store.noSessions = opts.NoSessions
	if opts.Backend == BackendAthena {
		s.store.athena = &athenaState{opts: opts.Athena.withDefaults(), removed: map[string]bool{}, rejects: map[string]bool{}}
	}
	s.st.calls = map[string]*atomic.Int64{}
	switch opts.Backend {
	case BackendDynamo, BackendFile, BackendPostgres, BackendFirestore:
		// These audit backends have no bulk export: their
		// GetEventExportChunks/ExportUnstructuredEvents answer
		// trace.NotImplemented (lib/events/dynamoevents, filelog.go,
		// pgevents, firestoreevents), Unimplemented on the wire.
		opts.ExportUnimplemented = true
	}
	s.exportUnimpl.Store(opts.ExportUnimplemented)
	s.recUnimpl.Store(opts.RecordingsUnimplemented)
	s.searchUnimpl.Store(opts.SearchUnimplemented)

	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "teleportd-")
		if err != nil {
			return nil, err
		}
		s.dir, s.tempDir = d, true
	} else {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, err
		}
		s.dir = opts.Dir
	}
	fail := func(err error) (*Server, error) {
		if s.tempDir {
			os.RemoveAll(s.dir)
		}
		return nil, err
	}
	ca, err := loadOrCreateAuthority(s.dir, opts.ClusterName)
	if err != nil {
		return fail(err)
	}
	s.ca = ca
	cert, err := ca.serverTLSCert(s.dir)
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.tlsCert)
	s.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}

	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fail(err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	s.logf("teleportd: cluster %q listening on %s (dir %s)", opts.ClusterName, s.addr, s.dir)
	return s, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// serve starts a new gRPC server on lis. Caller holds mu or is Start.
func (s *Server) serve(lis net.Listener) {
	gs := grpc.NewServer(
		grpc.Creds(&countingCreds{TransportCredentials: credentials.NewTLS(s.tlsConf), s: s}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.UnknownServiceHandler(s.unknownHandler),
		grpc.ForceServerCodecV2(newRawCodec()),
		// Streams run on reused goroutines, whose stacks have grown
		// already: a fresh goroutine per recording stream spent ~5% of
		// the CPU growing its stack.
		grpc.NumStreamWorkers(16),
	)
	proto.RegisterAuthServiceServer(gs, &authService{s: s})
	gs.RegisterService(auditLogServiceDesc(), &auditService{s: s})
	done := make(chan struct{})
	s.grpc, s.done = gs, done
	s.st.starts.Add(1)
	go func() {
		defer close(done)
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.logf("teleportd: serve: %v", err)
		}
	}()
}

// Addr returns the listening address (host:port); it stays the same across
// Stop/Restart.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Dir returns the directory holding the CA/server material.
func (s *Server) Dir() string { return s.dir }

// ClusterName returns the cluster name.
func (s *Server) ClusterName() string { return s.opts.ClusterName }

// Running reports whether the server is serving.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grpc != nil
}

// Stop stops serving: the listener closes and every connection and in-flight
// stream is dropped (the "Auth Service down" fault). Events, CA and address
// are kept for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	gs, done := s.grpc, s.done
	s.grpc, s.done = nil, nil
	s.mu.Unlock()
	if gs == nil {
		return
	}
	gs.Stop()
	<-done
	s.logf("teleportd: stopped")
}

// Restart serves again on the same address with the same CA and events.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("teleportd: server closed")
	}
	if s.grpc != nil {
		return nil
	}
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		lis, err = net.Listen("tcp", s.addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("teleportd: restart on %s: %w", s.addr, err)
	}
	s.serve(lis)
	s.logf("teleportd: restarted on %s", s.addr)
	return nil
}

// Close stops the server for good and frees everything (a temporary Dir is
// removed).
func (s *Server) Close() {
	s.Stop()
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already && s.tempDir {
		os.RemoveAll(s.dir)
	}
}

// SetExportUnimplemented switches GetEventExportChunks/ExportUnstructuredEvents
// to answering codes.Unimplemented (the client sees trace.IsNotImplemented).
func (s *Server) SetExportUnimplemented(v bool) { s.exportUnimpl.Store(v) }

// SetRecordingsUnimplemented switches StreamUnstructuredSessionEvents to
// answering codes.Unimplemented (Options.RecordingsUnimplemented).
func (s *Server) SetRecordingsUnimplemented(v bool) { s.recUnimpl.Store(v) }

// SetSearchUnimplemented switches GetUnstructuredEvents to answering
// codes.Unimplemented (Options.SearchUnimplemented).
func (s *Server) SetSearchUnimplemented(v bool) { s.searchUnimpl.Store(v) }

// Add stores explicit events. The events of each UTC day in one call form
// new sealed chunk(s) of that day (at most Options.ChunkSize events each).
// It panics on events that cannot be encoded (bad "time", unmarshalable
// values) — use AddChecked to get an error instead.
func (s *Server) Add(events ...Event) {
	if _, err := s.store.add(events); err != nil {
		panic(err)
	}
}

// AddChecked is Add returning the names of the new chunks, or an error.
func (s *Server) AddChecked(events ...Event) ([]string, error) {
	return s.store.add(events)
}

// Generate registers g.Count deterministic generated events (produced on
// demand, never stored) and returns the names of the new sealed chunks (index
// ranges of at most g.ChunkSize events, split at UTC day boundaries).
func (s *Server) Generate(g GenSpec) []string {
	return s.store.generate(g)
}

// UIDs returns the uid of every stored event matching filter (nil = all), in
// (time, uid) order.
func (s *Server) UIDs(filter func(EventMeta) bool) []string {
	q := newQuery(true, minTime, maxTimeExcl, nil)
	m := newMerger(q, s.store.snapshot())
	var out []string
	for {
		r, ok := m.next()
		if !ok {
			return out
		}
		if filter == nil || filter(r.meta()) {
			out = append(out, r.uid)
		}
	}
}

// UIDsInRange is UIDs restricted to events with from <= time < to (cheap on
// large generated sets: only the range is visited).
func (s *Server) UIDsInRange(from, to time.Time, filter func(EventMeta) bool) []string {
	var out []string
	if !from.Before(to) {
		return out
	}
	q := newQuery(true, from.UnixNano(), to.UnixNano(), nil)
	m := newMerger(q, s.store.snapshot())
	for {
		r, ok := m.next()
		if !ok {
			return out
		}
		if filter == nil || filter(r.meta()) {
			out = append(out, r.uid)
		}
	}
}

// Count returns the number of stored (generated + explicit) events.
func (s *Server) Count() int { return s.store.total() }

// Chunks returns the names of the chunks of the UTC day of date, as
// GetEventExportChunks lists them.
func (s *Server) Chunks(date time.Time) []string {
	return s.store.chunkNames(floorDay(date.UnixNano()))
}

const (
	minTime     = int64(-1 << 63)
	maxTimeExcl = int64(1<<63 - 1)
)

// --- stats ------------------------------------------------------------------

type counters struct {
	ping, chunks, export, search, sessionEvents atomic.Int64
	getEvents, streamSessionEvents              atomic.Int64
	unimplemented, errors                       atomic.Int64
	chunksListed, exported, searched            atomic.Int64
	hsOK, hsFailed, starts                      atomic.Int64
	faults, rateLimited                         atomic.Int64

	callsMu  sync.Mutex
	calls    map[string]*atomic.Int64
	lastUser atomic.Value
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Calls counts every RPC by full method name, including methods that
	// are not implemented (answered codes.Unimplemented).
	Calls map[string]int64

	Ping                            int64 // AuthService/Ping calls
	GetEventExportChunks            int64 // calls
	ExportUnstructuredEvents        int64 // calls
	GetUnstructuredEvents           int64 // calls (search pages)
	StreamUnstructuredSessionEvents int64 // calls
	GetEvents                       int64 // legacy search calls (AuthService/GetEvents)
	StreamSessionEvents             int64 // legacy recording calls (AuthService/StreamSessionEvents)

	Unimplemented  int64 // calls refused by the *Unimplemented switches
	Errors         int64 // RPCs that ended with an error (any code)
	ChunksListed   int64 // chunk names streamed by GetEventExportChunks
	EventsExported int64 // events sent by ExportUnstructuredEvents
	EventsSearched int64 // events returned by GetUnstructuredEvents
	SearchFaults   int64 // search answers that were a backend's fault (Options.FaultEvery)
	RateLimited    int64 // search calls refused by the athena rate limit

	// TLS handshakes. Note that client.New with identity-file credentials
	// also tries its proxy/tunnel/TLS-routing connection methods against
	// the same address in parallel; those attempts fail the handshake.
	HandshakesOK     int64
	HandshakesFailed int64
	Starts           int64  // 1 + number of Restarts
	LastUser         string // client certificate CN of the most recent RPC
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.st
	out := Stats{
		Calls:                           map[string]int64{},
		Ping:                            c.ping.Load(),
		GetEventExportChunks:            c.chunks.Load(),
		ExportUnstructuredEvents:        c.export.Load(),
		GetUnstructuredEvents:           c.search.Load(),
		StreamUnstructuredSessionEvents: c.sessionEvents.Load(),
		GetEvents:                       c.getEvents.Load(),
		StreamSessionEvents:             c.streamSessionEvents.Load(),
		Unimplemented:                   c.unimplemented.Load(),
		Errors:                          c.errors.Load(),
		ChunksListed:                    c.chunksListed.Load(),
		EventsExported:                  c.exported.Load(),
		EventsSearched:                  c.searched.Load(),
		SearchFaults:                    c.faults.Load(),
		RateLimited:                     c.rateLimited.Load(),
		HandshakesOK:                    c.hsOK.Load(),
		HandshakesFailed:                c.hsFailed.Load(),
		Starts:                          c.starts.Load(),
	}
	if u, ok := c.lastUser.Load().(string); ok {
		out.LastUser = u
	}
	c.callsMu.Lock()
	for k, v := range c.calls {
		out.Calls[k] = v.Load()
	}
	c.callsMu.Unlock()
	return out
}

func (s *Server) countCall(ctx context.Context, method string) {
	c := &s.st
	c.callsMu.Lock()
	n := c.calls[method]
	if n == nil {
		n = new(atomic.Int64)
		c.calls[method] = n
	}
	c.callsMu.Unlock()
	n.Add(1)
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			c.lastUser.Store(ti.State.PeerCertificates[0].Subject.CommonName)
		}
	}
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.countCall(ctx, info.FullMethod)
	if info.FullMethod == getEventsMethod {
		h = func(ctx context.Context, req any) (any, error) {
			return s.getEvents(ctx, req.(*proto.GetEventsRequest))
		}
	}
	resp, err := h(ctx, req)
	if err != nil {
		s.st.errors.Add(1)
	}
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	s.countCall(ss.Context(), info.FullMethod)
	err := h(srv, ss)
	if err != nil {
		s.st.errors.Add(1)
	}
	return err
}

func (s *Server) unknownHandler(_ any, ss grpc.ServerStream) error {
	m, _ := grpc.Method(ss.Context())
	s.countCall(ss.Context(), m)
	s.st.errors.Add(1)
	s.logf("teleportd: unimplemented method %s", m)
	return status.Errorf(codes.Unimplemented, "unknown method %s", m)
}

// countingCreds counts TLS handshake outcomes.
type countingCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (c *countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, ai, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.s.st.hsFailed.Add(1)
		c.s.logf("teleportd: TLS handshake from %s failed: %v", conn.RemoteAddr(), err)
	} else {
		c.s.st.hsOK.Add(1)
	}
	return out, ai, err
}

func (c *countingCreds) Clone() credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}
