// Package teleportd is a Teleport Auth Service stand-in for tests, demos and
// benchmarks: a real gRPC server with mutual TLS on 127.0.0.1, built on
// teleport/api's generated service interfaces, that the real teleport/api
// client connects to (client.New with client.LoadIdentityFile,
// client.NewDynamicIdentityFileCreds or client.LoadKeyPair).
//
// # Services
//
// proto.AuthService: Ping (cluster name, server version, features, remote
// address), UpsertLock, and the legacy StreamSessionEvents and GetEvents
// (typed events.OneOf; legacy.go); every other method answers
// codes.Unimplemented. auditlogv1.AuditLogService: GetEventExportChunks,
// ExportUnstructuredEvents, GetUnstructuredEvents,
// StreamUnstructuredSessionEvents. Unknown services/methods answer
// codes.Unimplemented and are counted in Stats.Calls. Switches make it an
// older Teleport: Options.ExportUnimplemented (no bulk export),
// RecordingsUnimplemented (recordings only through StreamSessionEvents) and
// SearchUnimplemented (search only through GetEvents). The legacy RPCs serve
// the same events, faults and counters as the unstructured ones. These are
// the RPCs the teleport/api client of Teleport 13.3.8 falls back to on
// Unimplemented (client/client.go: streamUnstructuredSessionEventsFallback
// reads StreamSessionEvents, searchUnstructuredEventsFallback reads
// SearchEvents, that is GetEvents), each typed event converted with
// events.ToUnstructured.
//
// # TLS
//
// One CA per Dir (created on first use, reused afterwards). The server
// certificate has SANs teleport.cluster.local (the name the client uses for
// SNI and verification), localhost, 127.0.0.1. Client certificates are
// required and verified against the CA (expiry included); their subject is
// CN=user, O=roles like Teleport's. Identity files also hold an SSH user
// certificate and the SSH host CA line, because client.LoadIdentityFile
// drops the credential altogether when SSHClientConfig fails.
//
// # Events
//
// Generated events (Generate) are computed on demand from (seed, index) and
// never stored: event i has time Start + i*Span/Count (optionally truncated to
// GenSpec.Precision), a UUID-shaped uid hashed from (seed, i), and a kind from
// a block layout that keeps sessions consistent (session.start, session.data,
// session.end, session.upload of one session share a sid). Explicit events
// (Add) are stored. Numbers are integers in the raw fields (structpb carries
// them as doubles, like Teleport).
//
// Export (like the Athena bulk export): events form sealed, immutable chunks
// per UTC day. Chunk names are opaque ("YYYYMMDD-NNNNNN"); a chunk belongs to
// one date and ExportUnstructuredEvents with another date, or an unknown name,
// is codes.NotFound. The cursor of an exported event is
// "tdc1.<16 hex digits of FNV-64a(chunk name)>.<position after the event>";
// a cursor that is malformed, out of range or of another chunk is
// codes.InvalidArgument. Order inside a chunk is generation order (time order
// for generated chunks, Add order for explicit ones).
//
// Search (GetUnstructuredEvents), as Options.Backend "ideal" (the default;
// the other backends, as Teleport's DynamoDB, Athena, file log, Postgres and
// Firestore audit backends answer, are in backends.go and README.md):
// start_date <= time < end_date, ordered by
// (time, uid). The order field carries types.EventOrder as the client sends
// it (client.SearchUnstructuredEvents casts it): 0 = ascending, 1 =
// descending — the opposite of the proto enum names. limit defaults to and is
// capped at 10000; like Teleport, a page also stops before exceeding
// Options.SearchMaxBytes (1 MiB), because the client's gRPC receive limit is
// 4 MiB. last_key is set iff the page is full (limit reached or size cap hit);
// it is "tdk1.<unix nanos>.<uid>" of the last event and the next page starts
// strictly after it. Namespace must be "" or "default".
//
// # Session recordings
//
// StreamUnstructuredSessionEvents(session_id, start_index) streams the
// events with Index >= start_index in index order, like Teleport (whose
// proto comment says "resume after" but whose code keeps Index >=
// start_index): resume with last index received + 1; 0 = from the start.
// No recording (not uploaded yet) is codes.NotFound (trace.NotFound on the
// client). Every generated session whose session.upload was generated has a
// recording, computed on demand and never stored: the sid is mapped back
// to its segment and session by inverting the sid hash (mix64 is a
// bijection), so nothing is indexed. Its first and last events are the
// audit log's own session.start and session.end (same uid and fields; the
// session.end's "ei" is the last index, so a recording has 4 to 63 events,
// or Options.RecordingEvents), with a resize, print events (ci, bytes, ms,
// offset, base64 data; one session in eight also has desktop.recording
// events) and a session.leave between. As in Teleport, print and
// desktop.recording events have no uid or code; their EventUnstructured.Id
// is a 64-hex-digit hash (Teleport: SHA-256 of the event JSON). Explicit
// recordings: AddRecording; GenerateRecording (n events, on demand);
// AddSession (audit events + recording). Faults: SetRecordingMissing,
// SetRecordingMissingFor, SetRecordingFailing, SetRecordingBreakAfter.
// Ground truth: RecordingUIDs, RecordingEvents, RecordingLen; counters:
// RecordingStats.
//
// # Locks and access rights
//
// UpsertLock (client.UpsertLock sends the *types.LockV2) validates the lock
// like Teleport (codes.InvalidArgument), and every call is recorded (Locks,
// with the caller's CN and the answer's code). SetLockError injects a
// failure. SetAccess(user, Access) withdraws rights per client certificate
// CN; a denied RPC answers codes.PermissionDenied with Teleport's message,
// e.g. access denied to perform action "list" on "event" (trace.AccessDenied
// on the client).
//
// # Client notes
//
// client.New needs only Addrs and Credentials; a short DialTimeout makes
// rejected credentials fail fast (the default is 30s, during which the client
// keeps retrying the handshake). With identity-file credentials client.New
// also tries proxy/tunnel/TLS-routing connection methods on the same address
// in parallel; they fail (counted in Stats.HandshakesFailed) while the direct
// Auth connection wins. The client's default circuit breaker trips after 10
// calls in a minute with >= 90% Unavailable/Canceled/DeadlineExceeded/Unknown
// results and then refuses every call for ~60s, even once the server is
// back; breaker.NoopBreakerConfig() disables it.
package teleportd
