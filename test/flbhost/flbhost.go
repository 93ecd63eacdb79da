// Package flbhost runs a Go Fluent Bit input plugin (a -buildmode=c-shared
// object) inside flbhost, a small C stand-in for Fluent Bit v5.1.1's Go proxy
// (see flbhost.c), and reads back what the host ingested.
//
// A Go program cannot host a Go c-shared object in its own process, so the
// plugin always runs in a child process:
//
//	h, err := flbhost.Start(flbhost.Options{
//		Props:      [][2]string{{"teleport_addr", addr}},
//		Ingest:     filepath.Join(dir, "ingest.mp"),
//		IntervalMS: 50,
//		Grace:      1,
//	})
//	...
//	err = h.WaitReady(10 * time.Second)
//	...
//	err = h.Stop() // SIGTERM, clean shutdown, exit code 0 expected
//	records, truncated, err := flbhost.ReadIngest(opts.Ingest)
package flbhost

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Lines (substrings) the host prints on stderr.
const (
	// ReadyLine is printed once every instance's FLBPluginInit succeeded
	// and FLBPluginInputPreRun ran.
	ReadyLine = "[flbhost] ready"
	// SummaryPrefix starts the key=value summary line printed at a clean exit.
	SummaryPrefix = "[flbhost] callbacks="
	// ChunkSummaryPrefix starts the second summary line: chunks made, the
	// largest, and what the receiver (OutMaxBytes) refused.
	ChunkSummaryPrefix = "[flbhost] chunks="
	// InitFailedLine is part of the line printed when FLBPluginInit fails.
	InitFailedLine = "] initialization failed"
	// UnknownPluginLine is printed when the registered name does not match -i
	// (which is what a silent registration failure looks like).
	UnknownPluginLine = "tried to instance a plugin name that doesn't exist"
	// PausedLine / ResumedLine acknowledge one SIGUSR1 / SIGUSR2 per instance.
	PausedLine  = "] paused"
	ResumedLine = "] resumed"
)

// LogDirEnv names an environment variable: when it holds a directory, every
// host started also appends what it prints on stderr to a file of its own
// there (flbhost-PID.log), so a test suite can scan the logs of all its
// hosts at the end (test/e2e checks that no log line carries key material).
const LogDirEnv = "FLBHOST_LOG_DIR"

// Options configures one flbhost process.
type Options struct {
	// Bin is the flbhost binary; default <repo>/build/flbhost.
	Bin string
	// Plugin is the Go input plugin; default <repo>/build/in_teleport.so.
	Plugin string
	// Name is the input name given to -i; default "teleport".
	Name string
	// Props are the -p key=value pairs of the first instance.
	Props [][2]string
	// ExtraInstances adds one more "-i Name" per element, with its props.
	ExtraInstances [][][2]string
	// Ingest is the file every chunked buffer is appended to (optional):
	// what Fluent Bit would deliver (see ../../docs/design.md#when-the-cursor-moves).
	Ingest string
	// IngestSplit writes each input's chunks to Ingest + "." + the input's
	// name (teleport.0, teleport.1, or its alias) instead.
	IngestSplit bool
	// ABI is the Go proxy ABI to model: "" or "5.1" (Fluent Bit 4.1 and
	// later: the Ctx callbacks), or "4.0" (3.2 and 4.0: none).
	ABI string
	// SignalInput, when > 0, makes Pause and Resume (SIGUSR1/SIGUSR2) apply
	// to that input only (1-based, in the order of Props and
	// ExtraInstances); 0 means every input.
	SignalInput int
	// IntervalMS is the collector period; 0 means the host default (1000).
	IntervalMS int
	// Grace is Fluent Bit's Grace in seconds; 0 means the host default (5).
	// flbhost's outputs are instant, so it only bounds the wait for an
	// FLBPluginInit still running at a signal (the shutdown itself takes
	// Fluent Bit's 1 s tick).
	Grace float64
	// NoCleanup makes the host ignore FLBPluginInputCleanupCallback and
	// free() the buffers instead (a Fluent Bit without the cleanup symbol).
	NoCleanup bool
	// MaxSeconds makes the host SIGTERM itself after that long (0 = off),
	// and exit with code 2 if it is still running MaxSeconds+Grace+10 s.
	MaxSeconds float64
	// FlushMS is the engine's flush period ([SERVICE] Flush): every chunk
	// goes to the output then; 0 means the host default (1000).
	FlushMS int
	// OutMaxBytes makes the output's receiver refuse a chunk larger than
	// this (like in_forward's Buffer_Max_Size, 6,144,000 by default); 0 =
	// no limit. Memory storage only.
	OutMaxBytes int
	// OutAck retries a refused chunk at every flush, forever
	// (Require_ack_response true, Retry_Limit no_limits); without it the
	// chunk's records are dropped.
	OutAck bool
	// Quiet passes --quiet, Verbose passes --verbose (a line per callback).
	Quiet, Verbose bool
	// ExtraArgs are appended to the command line as they are.
	ExtraArgs []string
	// Env is added to the current environment (KEY=VALUE).
	Env []string
	// Stderr, if set, receives a copy of the host's stderr (e.g. a
	// t.Log writer).
	Stderr io.Writer
}

// Host is a running flbhost process.
type Host struct {
	cmd       *exec.Cmd
	instances int // that acknowledge a Pause or Resume

	mu       sync.Mutex
	log      bytes.Buffer
	changed  chan struct{} // closed and replaced whenever log grows
	done     chan struct{}
	exitCode int
	waitErr  error
}

// RepoRoot returns the directory holding go.mod (the module root), looking
// up from this source file and then from the working directory.
func RepoRoot() string {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return ""
}

// HostSource is the path of flbhost.c.
func HostSource() string {
	return filepath.Join(RepoRoot(), "test", "flbhost", "flbhost.c")
}

// BuildHost compiles flbhost.c into out with gcc:
// gcc -O2 -Wall -Wextra -o out flbhost.c -ldl -lpthread.
func BuildHost(out string) error {
	cmd := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-o", out, HostSource(), "-ldl", "-lpthread")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("building flbhost: %v\n%s", err, b)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return fmt.Errorf("building flbhost: compiler warnings:\n%s", b)
	}
	return nil
}

// BuildPlugin runs "go build -buildmode=c-shared -o out pkg" in the module
// root; pkg is a package path or a ./relative directory (e.g.
// "./test/flbhost/testdata/fakeplugin" or "./cmd/in_teleport").
func BuildPlugin(pkg, out string) error {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -buildmode=c-shared %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// Args returns the flbhost command line (without the binary) for opts.
func (opts Options) Args() []string {
	name := opts.Name
	if name == "" {
		name = "teleport"
	}
	plugin := opts.Plugin
	if plugin == "" {
		plugin = filepath.Join(RepoRoot(), "build", "in_teleport.so")
	}
	if abs, err := filepath.Abs(plugin); err == nil {
		plugin = abs
	}
	args := []string{"-e", plugin}
	for _, props := range append([][][2]string{opts.Props}, opts.ExtraInstances...) {
		args = append(args, "-i", name)
		for _, kv := range props {
			args = append(args, "-p", kv[0]+"="+kv[1])
		}
	}
	if opts.Ingest != "" {
		args = append(args, "--ingest", opts.Ingest)
	}
	if opts.IngestSplit {
		args = append(args, "--ingest-split")
	}
	if opts.ABI != "" {
		args = append(args, "--abi", opts.ABI)
	}
	if opts.SignalInput > 0 {
		args = append(args, "--signal-input", strconv.Itoa(opts.SignalInput-1))
	}
	if opts.IntervalMS > 0 {
		args = append(args, "--interval-ms", strconv.Itoa(opts.IntervalMS))
	}
	if opts.Grace > 0 {
		args = append(args, "--grace", strconv.FormatFloat(opts.Grace, 'f', -1, 64))
	}
	if opts.NoCleanup {
		args = append(args, "--no-cleanup")
	}
	if opts.MaxSeconds > 0 {
		args = append(args, "--max-seconds", strconv.FormatFloat(opts.MaxSeconds, 'f', -1, 64))
	}
	if opts.FlushMS > 0 {
		args = append(args, "--flush-ms", strconv.Itoa(opts.FlushMS))
	}
	if opts.OutMaxBytes > 0 {
		args = append(args, "--out-max-bytes", strconv.Itoa(opts.OutMaxBytes))
	}
	if opts.OutAck {
		args = append(args, "--out-ack")
	}
	if opts.Quiet {
		args = append(args, "--quiet")
	}
	if opts.Verbose {
		args = append(args, "--verbose")
	}
	return append(args, opts.ExtraArgs...)
}

// Start starts flbhost. It does not wait for the plugin: use WaitReady.
func Start(opts Options) (*Host, error) {
	bin := opts.Bin
	if bin == "" {
		bin = filepath.Join(RepoRoot(), "build", "flbhost")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("flbhost binary: %w (build it with: gcc -O2 -Wall -Wextra -o build/flbhost test/flbhost/flbhost.c -ldl -lpthread)", err)
	}
	cmd := exec.Command(bin, opts.Args()...)
	cmd.Env = append(os.Environ(), opts.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	h := &Host{
		cmd:       cmd,
		instances: 1 + len(opts.ExtraInstances),
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
		exitCode:  -1,
	}
	if opts.SignalInput > 0 {
		h.instances = 1
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var logFile *os.File
	if dir := os.Getenv(LogDirEnv); dir != "" {
		logFile, _ = os.OpenFile(filepath.Join(dir, fmt.Sprintf("flbhost-%d.log", cmd.Process.Pid)),
			os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	}
	go h.readStderr(stderr, opts.Stderr, logFile)
	return h, nil
}

func (h *Host) readStderr(r io.Reader, tee io.Writer, logFile *os.File) {
	if logFile != nil {
		defer logFile.Close()
		if tee == nil {
			tee = logFile
		} else {
			tee = io.MultiWriter(tee, logFile)
		}
	}
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			if tee != nil {
				_, _ = io.WriteString(tee, line)
			}
			h.mu.Lock()
			h.log.WriteString(line)
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	werr := h.cmd.Wait()
	h.mu.Lock()
	h.waitErr = werr
	if h.cmd.ProcessState != nil {
		h.exitCode = h.cmd.ProcessState.ExitCode()
	}
	h.mu.Unlock()
	close(h.done)
}

// Pid is the host's process id.
func (h *Host) Pid() int { return h.cmd.Process.Pid }

// Done is closed once the process exited and its stderr was fully read.
func (h *Host) Done() <-chan struct{} { return h.done }

// Log returns everything the host printed on stderr so far.
func (h *Host) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// CountLog counts the log lines containing substr.
func (h *Host) CountLog(substr string) int {
	n := 0
	for _, l := range strings.Split(h.Log(), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// WaitLog waits until at least n log lines contain substr. It fails when the
// process exits first or on timeout; the error carries the log.
func (h *Host) WaitLog(substr string, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		changed := h.changed
		h.mu.Unlock()
		if h.CountLog(substr) >= n {
			return nil
		}
		select {
		case <-changed:
		case <-h.done:
			if h.CountLog(substr) >= n {
				return nil
			}
			return fmt.Errorf("flbhost exited (code %d) before printing %q x%d; log:\n%s", h.ExitCode(), substr, n, h.Log())
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %q x%d; log:\n%s", timeout, substr, n, h.Log())
		}
	}
}

// WaitReady waits for the ready line (every Init succeeded).
func (h *Host) WaitReady(timeout time.Duration) error {
	return h.WaitLog(ReadyLine, 1, timeout)
}

// Pause sends SIGUSR1 and waits until every instance (the SignalInput one
// only, when set) acknowledged it (FLBPluginInputPause was called on its
// input thread, or it was already paused). It must not be used concurrently
// with Resume.
func (h *Host) Pause() error {
	return h.signalAck(syscall.SIGUSR1, PausedLine)
}

// Resume sends SIGUSR2 and waits until every instance acknowledged it.
func (h *Host) Resume() error {
	return h.signalAck(syscall.SIGUSR2, ResumedLine)
}

func (h *Host) signalAck(sig syscall.Signal, ack string) error {
	before := h.CountLog(ack)
	if err := h.cmd.Process.Signal(sig); err != nil {
		return err
	}
	return h.WaitLog(ack, before+h.instances, 10*time.Second)
}

// Signal sends sig to the host.
func (h *Host) Signal(sig os.Signal) error { return h.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits for the exit. It returns an error (with the
// log) unless the host exited with code 0.
func (h *Host) Stop() error {
	select {
	case <-h.done:
	default:
		if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
	}
	code, err := h.Wait()
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("flbhost exited with code %d; log:\n%s", code, h.Log())
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (h *Host) Kill() error {
	select {
	case <-h.done:
		return nil
	default:
	}
	if err := h.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-h.done
	return nil
}

// Wait waits for the process to exit and returns its exit code (-1 when it
// was killed by a signal, with a non-nil error saying which).
func (h *Host) Wait() (exitCode int, err error) {
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exitCode >= 0 {
		return h.exitCode, nil
	}
	return h.exitCode, h.waitErr
}

// WaitTimeout is Wait with a time limit (the process is left running on
// timeout).
func (h *Host) WaitTimeout(timeout time.Duration) (int, error) {
	select {
	case <-h.done:
		return h.Wait()
	case <-time.After(timeout):
		return -1, fmt.Errorf("flbhost still running after %s; log:\n%s", timeout, h.Log())
	}
}

// ExitCode is the exit code, or -1 while running or when killed by a signal.
func (h *Host) ExitCode() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exitCode
}

// Summary parses the summary lines printed at a clean exit: callbacks,
// records, bytes, dropped_after_shutdown, nonempty, invalid, errors,
// dropped_bytes, cleanup_calls, free_calls; and chunks, max_chunk_bytes,
// max_chunk_callbacks, out_dropped_chunks, out_dropped_records,
// out_retries.
func (h *Host) Summary() (map[string]int64, bool) {
	var m map[string]int64
	for _, l := range strings.Split(h.Log(), "\n") {
		i := strings.Index(l, SummaryPrefix)
		if i < 0 {
			i = strings.Index(l, ChunkSummaryPrefix)
		}
		if i < 0 {
			continue
		}
		if m == nil {
			m = map[string]int64{}
		}
		for _, f := range strings.Fields(l[i+len("[flbhost] "):]) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				m[k] = n
			}
		}
	}
	return m, m != nil
}

// Record is one event the host ingested.
type Record struct {
	// Time is the event timestamp (EventTime ext type 0, integer or float).
	Time time.Time
	// Meta is the metadata map of a v2 event [[ts, {meta}], {body}]; nil
	// for [ts, {body}].
	Meta map[string]any
	// Body is the record: nested maps are map[string]any, arrays []any,
	// integers int64 (uint64 when above MaxInt64), strings string, binary
	// []byte, floats float64/float32, other extensions *msgp.RawExtension.
	Body map[string]any
}

// ReadIngest decodes an ingest file written by flbhost. A truncated last
// object (the host killed mid-write) is not an error: the complete records
// are returned with truncatedTail set. An event Fluent Bit would reject is
// an error (the records before it are returned).
func ReadIngest(path string) (records []Record, truncatedTail bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	return DecodeEvents(b)
}

// DecodeEvents decodes a stream of concatenated msgpack events, as
// ReadIngest does.
func DecodeEvents(b []byte) (records []Record, truncatedTail bool, err error) {
	off := 0
	for len(b) > 0 {
		rec, rest, err := decodeEvent(b)
		if err != nil {
			if isShort(err) {
				return records, true, nil
			}
			return records, false, fmt.Errorf("event %d at offset %d: %w", len(records), off, err)
		}
		records = append(records, rec)
		off += len(b) - len(rest)
		b = rest
	}
	return records, false, nil
}

func isShort(err error) bool {
	return errors.Is(err, msgp.ErrShortBytes) || msgp.Cause(err) == msgp.ErrShortBytes
}

func decodeEvent(b []byte) (Record, []byte, error) {
	var rec Record
	// structure first: distinguishes a truncated tail from a bad event
	if _, err := msgp.Skip(b); err != nil {
		return rec, b, err
	}
	n, o, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return rec, b, fmt.Errorf("event is not an array: %w", err)
	}
	if n != 2 {
		return rec, b, fmt.Errorf("event is an array of %d, want 2", n)
	}
	if msgp.NextType(o) == msgp.ArrayType {
		hn, ho, err := msgp.ReadArrayHeaderBytes(o)
		if err != nil {
			return rec, b, err
		}
		if hn != 2 {
			return rec, b, fmt.Errorf("event header is an array of %d, want [timestamp, metadata]", hn)
		}
		if rec.Time, ho, err = decodeTime(ho); err != nil {
			return rec, b, err
		}
		if msgp.NextType(ho) != msgp.MapType {
			return rec, b, fmt.Errorf("event metadata is %s, want a map", msgp.NextType(ho))
		}
		if rec.Meta, o, err = msgp.ReadMapStrIntfBytes(ho, nil); err != nil {
			return rec, b, fmt.Errorf("event metadata: %w", err)
		}
	} else {
		if rec.Time, o, err = decodeTime(o); err != nil {
			return rec, b, err
		}
	}
	if msgp.NextType(o) != msgp.MapType {
		return rec, b, fmt.Errorf("event body is %s, want a map", msgp.NextType(o))
	}
	if rec.Body, o, err = msgp.ReadMapStrIntfBytes(o, nil); err != nil {
		return rec, b, fmt.Errorf("event body: %w", err)
	}
	return rec, o, nil
}

func decodeTime(b []byte) (time.Time, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.ExtensionType:
		ext := msgp.RawExtension{Type: 0}
		o, err := msgp.ReadExtensionBytes(b, &ext)
		if err != nil {
			return time.Time{}, b, fmt.Errorf("timestamp: %w", err)
		}
		if len(ext.Data) != 8 {
			return time.Time{}, b, fmt.Errorf("timestamp: EventTime has %d bytes, want 8", len(ext.Data))
		}
		sec := binary.BigEndian.Uint32(ext.Data[0:4])
		nsec := binary.BigEndian.Uint32(ext.Data[4:8])
		return time.Unix(int64(sec), int64(nsec)), o, nil
	case msgp.IntType:
		v, o, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return time.Time{}, b, err
		}
		if v < 0 {
			return time.Time{}, b, fmt.Errorf("timestamp: negative integer %d", v)
		}
		return time.Unix(v, 0), o, nil
	case msgp.UintType:
		v, o, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return time.Time{}, b, err
		}
		if v > math.MaxInt64 {
			return time.Time{}, b, fmt.Errorf("timestamp: integer %d out of range", v)
		}
		return time.Unix(int64(v), 0), o, nil
	case msgp.Float64Type, msgp.Float32Type:
		f, o, err := msgp.ReadFloat64Bytes(b)
		if err != nil {
			return time.Time{}, b, err
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))), o, nil
	default:
		return time.Time{}, b, fmt.Errorf("timestamp is %s, want EventTime, integer or float", msgp.NextType(b))
	}
}
