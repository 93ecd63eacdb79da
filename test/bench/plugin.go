package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
)

// hostRun is one run of the plugin inside the Fluent Bit stand-in.
type hostRun struct {
	h           *flbhost.Host
	started     time.Time
	times       string // --ingest-times file
	metricsAddr string
	storage     string
}

// fromDisk drops the page cache of the plugin's .so, so the host maps it as
// a Fluent Bit started after a reboot does: read from disk, in small folios.
// A .so the linker has just written is in 2 MB folios, which the kernel
// maps whole on first touch (Linux 6.18, ext4): up to 15 MB more of the
// host's peak RSS, whatever the phase or build
// (docs/benchmarks.md#memory-sixth-round-the-plugins-code).
func fromDisk(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping the page cache of %s: %w", path, err)
	}
	return nil
}

// startHost starts build/flbhost with the plugin and props.
func startHost(c *config, dir string, props map[string]string, intervalMS int, ingest string, logw io.Writer) (*hostRun, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &hostRun{times: filepath.Join(dir, "ingest-times"), storage: props["storage_dir"]}
	os.Remove(r.times)
	if r.storage == "" {
		r.storage = filepath.Join(dir, "storage")
		props["storage_dir"] = r.storage
	}
	if err := os.MkdirAll(r.storage, 0o700); err != nil {
		return nil, err
	}
	if _, ok := props["metrics_listen"]; !ok {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r.metricsAddr = fmt.Sprintf("127.0.0.1:%d", port)
		props["metrics_listen"] = r.metricsAddr
	}
	var kv [][2]string
	for k, v := range props {
		kv = append(kv, [2]string{k, v})
	}
	if err := fromDisk(c.plugin); err != nil {
		return nil, err
	}
	r.started = time.Now()
	h, err := flbhost.Start(flbhost.Options{
		Bin: c.host, Plugin: c.plugin, Props: kv, IntervalMS: intervalMS, Ingest: ingest,
		Grace: 1, Quiet: true, Stderr: logw,
		ExtraArgs: []string{"--ingest-times", r.times},
	})
	if err != nil {
		return nil, err
	}
	r.h = h
	return r, nil
}

// stop shuts the host down cleanly (SIGTERM) and returns its summary.
func (r *hostRun) stop() (map[string]int64, error) {
	if err := r.h.Stop(); err != nil {
		_ = r.h.Kill()
		return nil, err
	}
	if _, err := r.h.WaitTimeout(60 * time.Second); err != nil {
		_ = r.h.Kill()
		return nil, fmt.Errorf("flbhost did not exit: %v", err)
	}
	sum, _ := r.h.Summary()
	return sum, nil
}

// scrapeClient asks for the metrics uncompressed: scraped ten times a
// second with gzip (a 1 MB writer allocated per scrape), the benchmark's
// own reads were 4% of what the plugin allocated in a heap profile, load a
// Prometheus server scraping every 15 s does not add. (No change in the
// rate beyond the runs' noise.)
var scrapeClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// scrapeEvery is how often a drain reads the counters; the results come
// from the host's ingest times, not from when the counters were read.
const scrapeEvery = 5 // times the 100 ms RSS sampling

// scrape reads the plugin's audit and recording record counters.
func (r *hostRun) scrape() (audit, session int64, err error) {
	resp, err := scrapeClient.Get("http://" + r.metricsAddr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	// Labels in any order: every series also carries a cluster label.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		rest, ok := strings.CutPrefix(l, "teleport_fluent_bit_events_handed_over_total{")
		labels, v, ok2 := strings.Cut(rest, "} ")
		if !ok || !ok2 {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch {
		case strings.Contains(labels, `class="audit"`):
			audit = int64(f)
		case strings.Contains(labels, `class="session"`):
			session = int64(f)
		}
	}
	return audit, session, sc.Err()
}

// drainResult is what a plugin drain measured.
type drainResult struct {
	n          int64         // audit events handed over
	sessions   int64         // recording events handed over meanwhile
	streamed   int64         // recording events the stand-in served meanwhile (skipped ones included)
	wall       time.Duration // host start to the callback that completed n
	steadyRate float64       // events/s from the first to the completing callback
	cpu        time.Duration // host CPU time at that callback
	hwm        int64         // host peak RSS (VmHWM) at that point
	authCPU    time.Duration // the stand-in's CPU time over the run
	callbacks  int
	firstAt    time.Duration // host start to the first record
	maxBatch   int64         // largest callback (records)
	timedOut   bool          // n is what was reached when the time was up
	want       int64
	runs       int             // the median of this many runs (search)
	walls      []time.Duration // their walls, shortest first
}

// drainPlugin runs the plugin until n audit events are handed over.
func drainPlugin(c *config, auth *authProc, n int64, dir string, props map[string]string, timeout time.Duration, logw io.Writer) (*drainResult, error) {
	authCPU0, _ := procCPU(auth.pid())
	served0 := auth.recordingEvents()
	r, err := startHost(c, dir, props, 1000, "", logw) // Fluent Bit calls a Go input every second
	if err != nil {
		return nil, err
	}
	defer r.h.Kill()
	pid := r.h.Pid()
	deadline := r.started.Add(timeout)
	var hwm int64
	for tick := 1; ; tick++ {
		time.Sleep(100 * time.Millisecond)
		if m, err := procHWM(pid); err == nil && m > hwm {
			hwm = m
		}
		if tick%scrapeEvery != 0 && !time.Now().After(deadline) {
			continue
		}
		select {
		case <-r.h.Done():
			return nil, fmt.Errorf("the host exited early (code %d): %s", r.h.ExitCode(), lastLines(r.h.Log(), 10))
		default:
		}
		audit, sessions, err := r.scrape()
		if err == nil && audit >= n {
			at := time.Now()
			lines, err := readIngestTimes(r.times)
			if err != nil {
				return nil, err
			}
			authCPU1, _ := procCPU(auth.pid())
			streamed := auth.recordingEvents() - served0
			// The counters count at the commit, commit_delay after the
			// callback, and callbacks are committed whole: the completing
			// callback is the first whose running total of records reaches
			// what the counters show (audit and recording records).
			k := len(lines) - 1
			for k > 0 && lines[k].at.After(at) {
				k--
			}
			var total int64
			for i := 0; i <= k; i++ {
				total += lines[i].records
				if total >= audit+sessions {
					k = i
					break
				}
			}
			if k < 0 {
				return nil, fmt.Errorf("metrics say %d events but no callback was recorded", audit)
			}
			res := &drainResult{n: audit, sessions: sessions, wall: lines[k].at.Sub(r.started), cpu: lines[k].cpu,
				hwm: hwm, authCPU: authCPU1 - authCPU0, callbacks: k + 1, firstAt: lines[0].at.Sub(r.started), streamed: streamed}
			var recs int64
			for i := 0; i <= k; i++ {
				recs += lines[i].records
				res.maxBatch = max(res.maxBatch, lines[i].records)
			}
			if k > 0 {
				res.steadyRate = float64(recs-lines[0].records) / lines[k].at.Sub(lines[0].at).Seconds()
			}
			if _, err := r.stop(); err != nil {
				return nil, err
			}
			return res, nil
		}
		if time.Now().After(deadline) {
			// Report what was reached rather than nothing.
			progress("  timed out after %s with %d of %d audit events handed over (%d recording events); last log lines:\n%s",
				timeout, audit, n, sessions, lastLines(r.h.Log(), 5))
			lines, _ := readIngestTimes(r.times)
			authCPU1, _ := procCPU(auth.pid())
			cpu, _ := procCPU(pid)
			res := &drainResult{n: audit, sessions: sessions, wall: time.Since(r.started), cpu: cpu, hwm: hwm,
				authCPU: authCPU1 - authCPU0, callbacks: len(lines), timedOut: true, want: n}
			for _, l := range lines {
				res.maxBatch = max(res.maxBatch, l.records)
			}
			if len(lines) > 0 {
				res.firstAt = lines[0].at.Sub(r.started)
			}
			_ = r.h.Kill()
			return res, nil
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
