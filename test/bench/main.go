// Command bench is the benchmark behind `make bench`: it measures the plugin
// against the Teleport stand-in (test/cmd/teleportd, a separate process
// serving N pre-generated realistic events over gRPC with mutual TLS) and
// prints one table with the targets of issue 6:
//
//   - the plugin in the Fluent Bit stand-in (build/flbhost, 1 s collector,
//     discarding sink): events/s, CPU seconds per million events and peak
//     RSS of the host process, at N events and at a second size (flatness);
//   - the bare-drain limit: a plain teleport/api client exporting the same
//     chunks with the same concurrency and discarding the events;
//   - an Event-Handler-style baseline: the same events POSTed one at a time
//     over HTTPS with mutual TLS to a local receiver, serially;
//   - freshness: a stand-in writing events at a steady rate, p50/p99 of
//     ingest time (measured by the host) minus the event's time;
//   - restart to first record with a state holding a cursor in every chunk.
//
// Usage (from the repository root, after `make build`):
//
//	go run ./test/bench [-n 1000000] [-rss-n 5000000] [-callback-bytes 24M] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type config struct {
	n, rssN       int64
	days          float64
	concurrency   int
	callbackBytes string
	queueBytes    string
	// ceilingCallback and ceilingQueue are the settings of the rate
	// ceiling's run and of the audit path alone: chunks as large as a
	// second of records, whatever Fluent Bit's copies of them cost.
	ceilingCallback string
	ceilingQueue    string
	extraProps      string
	baselineN       int
	rate            float64
	poll            string
	freshFor        time.Duration
	warmup          time.Duration
	timeout         time.Duration
	rssTimeout      time.Duration
	dir             string
	auth, host      string
	plugin          string
	skip            string
	verbose         bool
	auditMemLimit   string
	// The search-path section.
	searchN         int
	searchDays      float64
	searchBatch     int
	searchDelay     time.Duration
	searchOldPlugin string
	searchBackends  string
	searchSkipIdeal bool
}

func (c *config) skips(phase string) bool {
	for _, s := range strings.Split(c.skip, ",") {
		if strings.TrimSpace(s) == phase {
			return true
		}
	}
	return false
}

// pluginProps are the plugin properties of every run against auth.
func (c *config) pluginProps(auth *authProc) map[string]string {
	p := map[string]string{
		"teleport_addr":     auth.addr,
		"teleport_identity": auth.identity,
		"concurrency":       strconv.Itoa(c.concurrency),
		"callback_bytes":    c.callbackBytes,
		"queue_bytes":       c.queueBytes,
	}
	for _, kv := range strings.Split(c.extraProps, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			p[k] = v
		}
	}
	return p
}

func main() {
	var c config
	flag.Int64Var(&c.n, "n", 1_000_000, "events in the backlog")
	flag.Int64Var(&c.rssN, "rss-n", 0, "second backlog size for the peak-RSS flatness check (default: 5×n, or n/5 when n ≥ 5,000,000; -1 = skip)")
	flag.Float64Var(&c.days, "days", 2, "the backlog spans this many days, ending now")
	flag.IntVar(&c.concurrency, "concurrency", 5, "export chunks fetched at once (plugin and bare drain)")
	flag.StringVar(&c.callbackBytes, "callback-bytes", "24M", "plugin callback_bytes (it bounds the rate and the peak RSS: docs/benchmarks.md#settings)")
	flag.StringVar(&c.queueBytes, "queue-bytes", "4M", "plugin queue_bytes (the audit queue gets half)")
	flag.StringVar(&c.ceilingCallback, "ceiling-callback-bytes", "64M", "callback_bytes of the rate-ceiling run and the audit path alone (\"\" = skip the ceiling run)")
	flag.StringVar(&c.ceilingQueue, "ceiling-queue-bytes", "16M", "queue_bytes of the rate-ceiling run and the audit path alone")
	flag.StringVar(&c.extraProps, "props", "", "more plugin properties, k=v,k=v")
	flag.IntVar(&c.baselineN, "baseline", 20_000, "events POSTed by the Event-Handler-style baseline (the rate is extrapolated)")
	flag.Float64Var(&c.rate, "rate", 1000, "events/s written during the freshness run")
	flag.StringVar(&c.poll, "poll", "500ms", "plugin poll_interval during the freshness run")
	flag.DurationVar(&c.freshFor, "fresh-for", 30*time.Second, "length of the freshness measurement")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "events of the first seconds of the freshness run are not measured")
	flag.DurationVar(&c.timeout, "timeout", 4*time.Minute, "stop the plugin drain after this long (what was reached is reported)")
	flag.DurationVar(&c.rssTimeout, "rss-timeout", 10*time.Minute, "the same for the drain of the second size")
	flag.StringVar(&c.dir, "dir", "build/bench", "working directory (state, logs, results.md)")
	bin := flag.String("bin", "build", "directory holding teleportd, flbhost and in_teleport.so")
	flag.StringVar(&c.skip, "skip", "", "phases to skip: bare,plugin,ceiling,athena,audit,rss,baseline,fresh,restart,search")
	flag.IntVar(&c.searchN, "search-n", 150_000, "search path: events in the backlog of a stand-in without the export API")
	flag.Float64Var(&c.searchDays, "search-days", 3, "search path: the backlog spans this many days")
	flag.IntVar(&c.searchBatch, "search-batch", 500, "search path: the plugin's batch (and the bare client's serial page size)")
	flag.DurationVar(&c.searchDelay, "search-page-delay", 200*time.Millisecond, "search path: every search call takes at least this long (Teleport's file backend: ~0.2 s a page on a 20,000-event log)")
	flag.StringVar(&c.searchBackends, "search-backends", "file,dynamo", "search path: also drain the backlog from the stand-in answering as these audit backends (teleportd --backend), with their cost models; \"\" = none")
	flag.BoolVar(&c.searchSkipIdeal, "search-skip-ideal", false, "search path: only the -search-backends rows")
	flag.StringVar(&c.searchOldPlugin, "search-old-plugin", "", "search path: also drain with this .so (e.g. a build of an older commit)")
	flag.BoolVar(&c.verbose, "v", false, "copy the host's log to stderr")
	flag.StringVar(&c.auditMemLimit, "audit-memlimit", "100MiB", "also run the audit path with this GOMEMLIMIT (\"\" = skip)")
	child := flag.Bool("audit-path-child", false, "(internal) run the audit-path measurement")
	childAddr := flag.String("child-addr", "", "(internal)")
	childID := flag.String("child-identity", "", "(internal)")
	childStorage := flag.String("child-storage", "", "(internal)")
	childStart := flag.String("child-start", "", "(internal)")
	flag.Parse()
	if *child {
		if err := auditPathChild(*childAddr, *childID, *childStorage, *childStart, c.n, c.concurrency, c.ceilingCallback, c.ceilingQueue); err != nil {
			fatal(err)
		}
		return
	}
	if c.rssN == 0 {
		c.rssN = 5 * c.n
		if c.n >= 5_000_000 {
			c.rssN = c.n / 5
		}
	}
	c.auth = mustAbs(filepath.Join(*bin, "teleportd"))
	c.host = mustAbs(filepath.Join(*bin, "flbhost"))
	c.plugin = mustAbs(filepath.Join(*bin, "in_teleport.so"))
	c.dir = mustAbs(c.dir)
	os.RemoveAll(c.dir)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		fatal(err)
	}
	var logw io.Writer
	if c.verbose {
		logw = os.Stderr
	}
	res := &results{c: &c, machine: machine()}
	progress("machine: %s", res.machine)
	if err := run(&c, res, logw); err != nil {
		fatal(err)
	}
	table := res.table()
	fmt.Println(table)
	if err := os.WriteFile(filepath.Join(c.dir, "results.md"), []byte(table+"\n"), 0o644); err != nil {
		fatal(err)
	}
}

func run(c *config, res *results, logw io.Writer) error {
	ctx := context.Background()
	span := time.Duration(c.days * float64(24*time.Hour))
	progress("stand-in: %d events over %v (build/teleportd, separate process)", c.n, span)
	start := time.Now().Add(-span)
	auth, err := startAuth(c.auth, filepath.Join(c.dir, "auth"), "--events", strconv.FormatInt(c.n, 10),
		"--days", strconv.FormatFloat(c.days, 'f', -1, 64), "--seed", "1")
	if err != nil {
		return err
	}
	defer auth.stop()
	// The stand-in computes "now - days" itself, a moment after start.
	startTime := start.Add(-time.Minute).UTC()

	if !c.skips("bare") {
		progress("bare drain: plain teleport/api client, concurrency %d", c.concurrency)
		clt, err := dialIdentity(ctx, auth.addr, auth.identity)
		if err != nil {
			return err
		}
		authCPU0, _ := procCPU(auth.pid())
		cpu0, t0 := selfCPU(), time.Now()
		n, err := bareDrain(ctx, clt, startTime, time.Now(), c.concurrency, nil)
		wall, cpu := time.Since(t0), selfCPU()-cpu0
		authCPU1, _ := procCPU(auth.pid())
		clt.Close()
		if err != nil {
			return err
		}
		if n != c.n {
			return fmt.Errorf("bare drain got %d events, want %d", n, c.n)
		}
		res.bare = &bareResult{n: n, wall: wall, cpu: cpu, authCPU: authCPU1 - authCPU0}
		progress("  %s", res.bare)
	}

	if !c.skips("plugin") {
		progress("plugin: %d events through build/flbhost (1 s collector, discarding sink)", c.n)
		props := c.pluginProps(auth)
		props["start_time"] = startTime.Format(time.RFC3339)
		d, err := drainPlugin(c, auth, c.n, filepath.Join(c.dir, "plugin"), props, c.timeout, logw)
		if err != nil {
			return err
		}
		res.plugin = d
		progress("  %s", d)
	}

	if !c.skips("ceiling") && c.ceilingCallback != "" {
		progress("plugin at callback_bytes %s, queue_bytes %s (the rate ceiling): %d events", c.ceilingCallback, c.ceilingQueue, c.n)
		props := c.pluginProps(auth)
		props["start_time"] = startTime.Format(time.RFC3339)
		props["callback_bytes"], props["queue_bytes"] = c.ceilingCallback, c.ceilingQueue
		d, err := drainPlugin(c, auth, c.n, filepath.Join(c.dir, "plugin-ceiling"), props, c.timeout, logw)
		if err != nil {
			return err
		}
		res.ceiling = d
		progress("  %s", d)
	}

	if !c.skips("athena") {
		progress("plugin on a stand-in in Athena mode: %d events, 1%% stored twice", c.n)
		athAuth, err := startAuth(c.auth, filepath.Join(c.dir, "auth-athena"), "--events", strconv.FormatInt(c.n, 10),
			"--days", strconv.FormatFloat(c.days, 'f', -1, 64), "--seed", "1",
			"--backend", "athena", "--athena-late-chunks", "1", "--athena-late-delay", "1s", "--athena-repeat-share", "0.01")
		if err != nil {
			return err
		}
		props := c.pluginProps(athAuth)
		props["start_time"] = startTime.Format(time.RFC3339)
		// Each recording read stores a session.recording.access event, as
		// Teleport does: left out, so the drain counts the backlog alone.
		props["skip_event_types"] = "session.recording.access"
		// The late chunks appear a second in: read old days' lists again
		// every second, not every hour (export_late_poll_max).
		props["export_late_poll_max"] = "1s"
		d, err := drainPlugin(c, athAuth, c.n, filepath.Join(c.dir, "plugin-athena"), props, c.timeout, logw)
		athAuth.stop()
		if err != nil {
			return err
		}
		res.athena = d
		progress("  %s", d)
	}

	if !c.skips("audit") {
		progress("audit path alone: export source + queue + copy + commit, no recordings (child process, 1 s takes)")
		a, err := runAuditPath(c, auth, startTime, "")
		if err != nil {
			return err
		}
		res.audit = a
		progress("  %s", a)
		if c.auditMemLimit != "" {
			progress("audit path alone with GOMEMLIMIT=%s (a soft memory limit for the Go runtime)", c.auditMemLimit)
			a, err := runAuditPath(c, auth, startTime, c.auditMemLimit)
			if err != nil {
				return err
			}
			res.auditLimited = a
			progress("  %s", a)
		}
	}

	if !c.skips("restart") {
		progress("restart: a state with a cursor inside every chunk")
		prev := ""
		if res.plugin != nil {
			prev = filepath.Join(c.dir, "plugin", "storage")
		}
		r, err := restartTime(c, auth, startTime, prev, filepath.Join(c.dir, "restart"), logw)
		if err != nil {
			return err
		}
		res.restart = r
		progress("  %d cursors, %d recordings in progress (%d bytes): ready %v, first record %v", r.cursors, r.sessions, r.stateBytes, r.ready.Round(time.Millisecond), r.first.Round(time.Millisecond))
	}

	if !c.skips("baseline") {
		progress("baseline: %d events POSTed one at a time over HTTPS with mutual TLS", c.baselineN)
		clt, err := dialIdentity(ctx, auth.addr, auth.identity)
		if err != nil {
			return err
		}
		evs, err := sampleEvents(ctx, clt, startTime, time.Now(), c.baselineN)
		clt.Close()
		if err != nil {
			return err
		}
		b, err := runBaseline(evs)
		if err != nil {
			return err
		}
		res.baseline = &b
		progress("  %d events in %v: %.0f events/s", b.n, b.wall.Round(time.Millisecond), b.rate())
	}
	auth.stop()

	if !c.skips("rss") && c.rssN > 0 {
		progress("peak RSS at %d events", c.rssN)
		span := time.Duration(c.days * float64(24*time.Hour))
		start := time.Now().Add(-span)
		auth2, err := startAuth(c.auth, filepath.Join(c.dir, "auth-rss"), "--events", strconv.FormatInt(c.rssN, 10),
			"--days", strconv.FormatFloat(c.days, 'f', -1, 64), "--seed", "2")
		if err != nil {
			return err
		}
		props := c.pluginProps(auth2)
		props["start_time"] = start.Add(-time.Minute).UTC().Format(time.RFC3339)
		d, err := drainPlugin(c, auth2, c.rssN, filepath.Join(c.dir, "plugin-rss"), props, c.rssTimeout, logw)
		auth2.stop()
		if err != nil {
			return err
		}
		res.rss = d
		progress("  %s", d)
	}

	if !c.skips("search") {
		progress("search path: %d events over %.0f days, every search call ≥ %v", c.searchN, c.searchDays, c.searchDelay)
		s, err := runSearch(c, logw)
		if err != nil {
			return err
		}
		res.search = s
	}

	if !c.skips("fresh") {
		progress("freshness: %.0f events/s written live for %v, poll_interval %s", c.rate, c.warmup+c.freshFor, c.poll)
		f, err := freshness(c, filepath.Join(c.dir, "fresh"), logw)
		if err != nil {
			return err
		}
		res.fresh = f
		progress("  %d events: p50 %v, p99 %v, max %v, missing %d", f.events, f.p50.Round(time.Millisecond), f.p99.Round(time.Millisecond), f.max.Round(time.Millisecond), f.missing)
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		fatal(err)
	}
	return a
}

// machine describes the machine: CPUs, CPU model, RAM, kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (nproc), %s%s%s, %s", runtime.NumCPU(), model, mem, kernel, runtime.Version())
}
