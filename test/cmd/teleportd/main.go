// Command teleportd runs the Teleport Auth Service stand-in of package
// test/teleportd for demos and benchmarks.
//
//	teleportd --dir DIR [--addr 127.0.0.1:0] [--events 10000] [--days 2]
//	          [--rate 0] [--late-share 0 --late-delay 20s] [--export-unimplemented]
//	          [--recordings-unimplemented] [--search-unimplemented] [--search-page-delay 0]
//	          [--seed 1] [--ttl 12h] [--recording-events 0]
//	          [--backend ideal|dynamo|athena|file|postgres|firestore] [--visibility-lag 0]
//	          [--fault-every 0] [--search-rate 0 --search-burst 0] [--backend-cost 0]
//	          [--athena-late-chunks 1] [--athena-late-delay 30s] [--athena-repeat-share 0.01]
//
// It writes DIR/identity (identity file for client.LoadIdentityFile),
// DIR/ca.crt, DIR/client.crt, DIR/client.key (for client.LoadKeyPair) and,
// last, DIR/addr (host:port, no newline); the CA lives in DIR/server and is
// reused by later runs with the same DIR. Then it prints one line
//
//	teleportd listening on 127.0.0.1:PORT identity DIR/identity
//
// to stdout and serves until SIGINT/SIGTERM. SIGHUP re-issues the
// credentials; SIGUSR1 toggles an "Auth Service down" fault (Stop/Restart on
// the same address). Every generated session.upload's session has a
// recording (StreamUnstructuredSessionEvents), generated on demand.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

func main() {
	var (
		dir         = flag.String("dir", "", "directory for the identity, key pair, CA and addr files (default: a new temporary directory)")
		addr        = flag.String("addr", "127.0.0.1:0", "listen address")
		events      = flag.Int("events", 10000, "backlog of generated events")
		days        = flag.Float64("days", 2, "the backlog spans this many days, ending now")
		rate        = flag.Float64("rate", 0, "live events per second, appended every 200ms as new sealed chunks")
		lateShare   = flag.Float64("late-share", 0, "share (0 to 1) of the live events stored --late-delay after their time")
		lateDelay   = flag.Duration("late-delay", 20*time.Second, "how late the --late-share of live events is stored")
		noRecs      = flag.Bool("no-recordings", false, "every session recording answers NotFound (not uploaded yet)")
		noSessions  = flag.Bool("no-sessions", false, "generate no SSH sessions (logins, certificates, roles... only): no recordings to track")
		pageDelay   = flag.Duration("search-page-delay", 0, "every search call takes at least this long (Teleport's file backend reads the queried days for each page)")
		unimpl      = flag.Bool("export-unimplemented", false, "GetEventExportChunks/ExportUnstructuredEvents answer Unimplemented")
		recUnimpl   = flag.Bool("recordings-unimplemented", false, "StreamUnstructuredSessionEvents answers Unimplemented (recordings only through the legacy StreamSessionEvents)")
		srchUnimpl  = flag.Bool("search-unimplemented", false, "GetUnstructuredEvents answers Unimplemented (search only through the legacy GetEvents)")
		seed        = flag.Int64("seed", 1, "generator seed")
		ttl         = flag.Duration("ttl", 12*time.Hour, "validity of the issued credentials")
		renew       = flag.Duration("renew", 0, "re-issue the credentials at this interval (0 = never)")
		cluster     = flag.String("cluster", "acc", "cluster name")
		version     = flag.String("version", "17.2.0", "server version reported by Ping")
		precision   = flag.Duration("time-precision", time.Millisecond, "generated event times are truncated to this (Teleport: 1ms; 0 = exact)")
		chunkSize   = flag.Int("chunk-size", teleportd.DefaultChunkSize, "events per backlog chunk")
		searchBytes = flag.Int("search-max-bytes", teleportd.DefaultSearchMaxBytes, "size cap of one search response (-1 = none)")
		recEvents   = flag.Int("recording-events", 0, "events in the recording of every generated session (0 = 4 to 63, varying per session)")
		statsEvery  = flag.Duration("stats", 0, "log counters to stderr at this interval (0 = never)")
		verbose     = flag.Bool("v", false, "log server activity to stderr")
		cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
		backend     = flag.String("backend", teleportd.BackendIdeal, "search answers as this Teleport audit backend: "+strings.Join(teleportd.Backends, "|")+" (see test/teleportd/README.md)")
		visLag      = flag.Duration("visibility-lag", 0, "events become searchable this long after they are stored (0 = the backend's: dynamo 500ms, athena 1m; <0 = none)")
		faultEvery  = flag.Int("fault-every", 0, "every Nth search asked with a key gets the backend's fault (dynamo: empty page with the same key; file: unknown key); 0 = none")
		searchRate  = flag.Float64("search-rate", 0, "athena: search calls a second allowed (0 = 5; <0 = no limit)")
		searchBurst = flag.Int("search-burst", 0, "athena: search rate limit burst (0 = 10)")
		backendCost = flag.Float64("backend-cost", 0, "scale of the backend's cost model (0 = 1; <0 = none)")
		backendCPUs = flag.Int("backend-cpus", 0, "file: pages the Auth Service reads at a time (0 = 2)")
		athLate     = flag.Int("athena-late-chunks", 1, "--backend athena: of every past day of the backlog, this many of its last chunks appear only --athena-late-delay after start")
		athDelay    = flag.Duration("athena-late-delay", 30*time.Second, "--backend athena: how late those chunks appear")
		athRepeat   = flag.Float64("athena-repeat-share", 0.01, "--backend athena: share (0 to 1) of the backlog's events stored twice, in one more chunk per day")
	)
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("teleportd: ")

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "teleportd-")
		if err != nil {
			log.Fatal(err)
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	*dir = abs

	opts := teleportd.Options{
		Addr:                    *addr,
		Dir:                     filepath.Join(*dir, "server"),
		ClusterName:             *cluster,
		ServerVersion:           *version,
		ExportUnimplemented:     *unimpl,
		RecordingsUnimplemented: *recUnimpl,
		SearchUnimplemented:     *srchUnimpl,
		SearchMaxBytes:          *searchBytes,
		SearchPageDelay:         *pageDelay,
		NoRecordings:            *noRecs,
		RecordingEvents:         *recEvents,
		NoSessions:              *noSessions,
		Backend:                 *backend,
		VisibilityLag:           *visLag,
		FaultEvery:              *faultEvery,
		SearchRate:              *searchRate,
		SearchBurst:             *searchBurst,
		BackendCost:             *backendCost,
		BackendCPUs:             *backendCPUs,
		Athena:                  teleportd.AthenaOptions{LateChunks: *athLate, LateDelay: *athDelay, RepeatShare: *athRepeat},
	}
	if *verbose {
		opts.Logf = log.Printf
	}
	s, err := teleportd.Start(opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if *events > 0 {
		span := time.Duration(*days * float64(24*time.Hour))
		start := time.Now().Add(-span)
		names := s.Generate(teleportd.GenSpec{Start: start, Count: *events, Span: span, Seed: *seed, ChunkSize: *chunkSize, Precision: *precision})
		log.Printf("backlog: %d events from %s to now in %d chunks", *events, start.UTC().Format(time.RFC3339), len(names))
	}

	issue := func() error {
		if err := s.WriteIdentity(filepath.Join(*dir, "identity"), *ttl); err != nil {
			return err
		}
		return s.WriteKeyPair(filepath.Join(*dir, "client.crt"), filepath.Join(*dir, "client.key"), filepath.Join(*dir, "ca.crt"), *ttl)
	}
	if err := issue(); err != nil {
		log.Fatal(err)
	}
	if err := writeAtomic(filepath.Join(*dir, "addr"), []byte(s.Addr())); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("teleportd listening on %s identity %s\n", s.Addr(), filepath.Join(*dir, "identity"))

	if *rate > 0 {
		stop, _ := s.Live(teleportd.LiveSpec{Rate: *rate, Seed: *seed, Precision: *precision, LateShare: *lateShare, LateDelay: *lateDelay})
		defer stop()
	}
	if *renew > 0 {
		go func() {
			for range time.Tick(*renew) {
				if err := issue(); err != nil {
					log.Printf("renew: %v", err)
				}
			}
		}()
	}
	if *statsEvery > 0 {
		go func() {
			for range time.Tick(*statsEvery) {
				st := s.Stats()
				log.Printf("stats: events=%d exported=%d searched=%d chunks-listed=%d calls: ping=%d chunks=%d export=%d search=%d unimplemented=%d errors=%d handshakes ok=%d failed=%d",
					s.Count(), st.EventsExported, st.EventsSearched, st.ChunksListed, st.Ping, st.GetEventExportChunks,
					st.ExportUnstructuredEvents, st.GetUnstructuredEvents, st.Unimplemented, st.Errors, st.HandshakesOK, st.HandshakesFailed)
				rs, sessions := s.RecordingTotals()
				log.Printf("stats: recordings: calls=%d not-found=%d failed=%d events=%d sessions=%d; locks=%d",
					rs.Calls, rs.NotFound, rs.Failed, rs.Events, sessions, len(s.Locks()))
			}
		}()
	}

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	for sg := range sig {
		switch sg {
		case syscall.SIGHUP:
			if err := issue(); err != nil {
				log.Printf("re-issue: %v", err)
			} else {
				log.Printf("credentials re-issued")
			}
		case syscall.SIGUSR1:
			if s.Running() {
				s.Stop()
				log.Printf("fault: Auth Service down (SIGUSR1 again to restart)")
			} else if err := s.Restart(); err != nil {
				log.Printf("restart: %v", err)
			} else {
				log.Printf("fault cleared: serving again on %s", s.Addr())
			}
		default:
			log.Printf("%v: shutting down", sg)
			return
		}
	}
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
