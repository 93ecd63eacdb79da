package flbhost_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
)

var (
	hostBin string // flbhost built from flbhost.c
	fakeSO  string // testdata/fakeplugin built with -buildmode=c-shared
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flbhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hostBin = filepath.Join(dir, "flbhost")
	fakeSO = filepath.Join(dir, "fakeplugin.so")
	errc := make(chan error, 2)
	go func() { errc <- flbhost.BuildHost(hostBin) }()
	go func() { errc <- flbhost.BuildPlugin("./test/flbhost/testdata/fakeplugin", fakeSO) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// helpers

type run struct {
	h      *flbhost.Host
	opts   flbhost.Options
	trace  string
	ingest string
}

func start(t *testing.T, o flbhost.Options) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{trace: filepath.Join(dir, "trace.log")}
	o.Bin = hostBin
	if o.Plugin == "" {
		o.Plugin = fakeSO
	}
	o.Props = append([][2]string{{"trace", r.trace}}, o.Props...)
	for i, props := range o.ExtraInstances {
		o.ExtraInstances[i] = append([][2]string{{"trace", r.trace}}, props...)
	}
	if o.Ingest == "" {
		o.Ingest = filepath.Join(dir, "ingest.mp")
	}
	if o.IntervalMS == 0 {
		o.IntervalMS = 20
	}
	if o.Grace == 0 {
		o.Grace = 0.2
	}
	if o.MaxSeconds == 0 {
		o.MaxSeconds = 60
	}
	r.ingest = o.Ingest
	r.opts = o
	h, err := flbhost.Start(o)
	require.NoError(t, err)
	r.h = h
	t.Cleanup(func() {
		_ = h.Kill()
		if t.Failed() {
			t.Logf("flbhost %v\nlog:\n%s\ntrace:\n%s", o.Args(), h.Log(), readFile(r.trace))
		}
	})
	return r
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

type call struct {
	name string
	tid  int
	kv   map[string]string
	raw  string
}

var kvRe = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

func (r *run) calls(t *testing.T) []call {
	t.Helper()
	var out []call
	for _, l := range strings.Split(readFile(r.trace), "\n") {
		if l == "" {
			continue
		}
		name, rest, _ := strings.Cut(l, " ")
		c := call{name: name, kv: map[string]string{}, raw: l}
		for _, m := range kvRe.FindAllStringSubmatch(rest, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				u, err := strconv.Unquote(v)
				require.NoError(t, err, l)
				v = u
			}
			c.kv[m[1]] = v
		}
		c.tid, _ = strconv.Atoi(c.kv["tid"])
		out = append(out, c)
	}
	return out
}

func names(cs []call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}

func count(cs []call, name string) int {
	n := 0
	for _, c := range cs {
		if c.name == name {
			n++
		}
	}
	return n
}

func (c call) int(t *testing.T, k string) int {
	t.Helper()
	v, err := strconv.Atoi(c.kv[k])
	require.NoError(t, err, c.raw)
	return v
}

// waitCalls waits until the trace holds at least n calls named name.
func (r *run) waitCalls(t *testing.T, name string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if count(r.calls(t), name) >= n {
			return
		}
		select {
		case <-r.h.Done():
			require.FailNowf(t, "flbhost exited", "waiting for %d x %s", n, name)
		default:
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "timeout", "waiting for %d x %s", n, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *run) summary(t *testing.T) map[string]int64 {
	t.Helper()
	s, ok := r.h.Summary()
	require.True(t, ok, "no summary line")
	return s
}

// cleaned returns the counters of the records whose cleanup was called.
func cleaned(t *testing.T, cs []call) []int64 {
	var out []int64
	for _, c := range cs {
		if c.name == "Cleanup" {
			first, n := c.int(t, "first"), c.int(t, "records")
			for i := 0; i < n; i++ {
				out = append(out, int64(first+i))
			}
		}
	}
	return out
}

func counters(recs []flbhost.Record) []int64 {
	var out []int64
	for _, r := range recs {
		v, _ := r.Body["counter"].(int64)
		out = append(out, v)
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// ---------------------------------------------------------------------------
// tests

func TestLifecycleOrderAndIngest(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{Props: [][2]string{{"records", "3"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 3, 10*time.Second)
	require.NoError(t, r.h.Stop())

	cs := r.calls(t)
	ns := names(cs)
	require.GreaterOrEqual(t, len(ns), 4+2*3+5, ns)
	assert.Equal(t, []string{"PreRegister", "Register", "Init", "PreRun"}, ns[:4])
	assert.Equal(t, "0", cs[0].kv["hot_reloading"])
	assert.Equal(t, "0", cs[3].kv["enable_hot_reload"])
	assert.Equal(t, []string{"Pause", "Pause", "PreExit", "Exit", "Unregister"}, ns[len(ns)-5:])
	assert.Equal(t, "0", cs[len(cs)-3].kv["by_hot_reload"])

	// Callback(n) immediately followed by Cleanup(n)
	mid := cs[4 : len(cs)-5]
	require.Zero(t, len(mid)%2, ns)
	for i := 0; i < len(mid); i += 2 {
		require.Equal(t, "Callback", mid[i].name, mid[i].raw)
		require.Equal(t, "Cleanup", mid[i+1].name, mid[i+1].raw)
		assert.Equal(t, strconv.Itoa(i/2+1), mid[i].kv["n"])
		assert.Equal(t, mid[i].kv["n"], mid[i+1].kv["n"])
	}
	k := len(mid) / 2

	// threads: Register/Unregister on the main thread, the rest on one
	// input thread
	mainTID, inTID := cs[1].tid, cs[2].tid
	assert.Equal(t, r.h.Pid(), mainTID, "Register runs on the main thread")
	assert.NotEqual(t, mainTID, inTID)
	for _, c := range cs {
		switch c.name {
		case "PreRegister", "Register", "Unregister":
			assert.Equal(t, mainTID, c.tid, c.raw)
		default:
			assert.Equal(t, inTID, c.tid, c.raw)
		}
	}

	// the ingest file holds exactly the records whose cleanup was called
	recs, truncated, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	assert.False(t, truncated)
	assert.Equal(t, cleaned(t, cs), counters(recs))
	assert.Equal(t, seq(1, int64(3*k)), counters(recs))

	rec := recs[0]
	assert.WithinDuration(t, time.Now(), rec.Time, time.Minute)
	assert.NotZero(t, rec.Time.Nanosecond()%1000, "EventTime keeps nanoseconds")
	assert.Nil(t, rec.Meta)
	assert.Equal(t, int64(1), rec.Body["callback"])
	assert.Equal(t, "record 1", rec.Body["message"])
	assert.Equal(t, 0.5, rec.Body["ratio"])
	assert.Equal(t, map[string]any{"list": []any{int64(1), "two", true}, "ok": true}, rec.Body["nested"])

	st, err := os.Stat(r.ingest)
	require.NoError(t, err)
	s := r.summary(t)
	assert.Equal(t, int64(k), s["callbacks"])
	assert.Equal(t, int64(k), s["nonempty"])
	assert.Equal(t, int64(3*k), s["records"])
	assert.Equal(t, st.Size(), s["bytes"])
	assert.Equal(t, int64(0), s["dropped_after_shutdown"])
	assert.Equal(t, int64(k), s["cleanup_calls"])
	assert.Equal(t, int64(0), s["free_calls"])
	assert.Equal(t, int64(0), s["invalid"])

	log := r.h.Log()
	assert.Contains(t, log, "[ info] [flbhost] ready")
	assert.Equal(t, 2, strings.Count(log, "shutdown: FLBPluginInputPause"), "paused at the signal and again at the shutdown tick")
	assert.Regexp(t, `(?m)^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] \[ info\] \[flbhost\] callbacks=\d+ records=\d+ bytes=\d+ dropped_after_shutdown=0`, log)
}

func TestProperties(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{
		Env: []string{"FLBHOST_TEST_VAR=from-env"},
		Props: [][2]string{
			{"Foo", "bar"},
			{"Empty", ""},
			{"WithEnv", "${FLBHOST_TEST_VAR}/x"},
			{"Unset", "a${FLBHOST_TEST_UNSET_VAR_4711}b"},
			{"tag", "my.tag"},
			{"tls.verify", "off"},
			{"spaces", "a b = c"},
			{"echo", "foo,FOO,fOo,missing,empty,withenv,unset,tag,tls.verify,spaces"},
		},
	})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	require.NoError(t, r.h.Stop())

	got := map[string]string{}
	var order []string
	for _, c := range r.calls(t) {
		if c.name == "Prop" {
			got[c.kv["key"]] = c.kv["value"]
			order = append(order, c.kv["key"])
		}
	}
	assert.Equal(t, []string{"foo", "FOO", "fOo", "missing", "empty", "withenv", "unset", "tag", "tls.verify", "spaces"}, order)
	assert.Equal(t, map[string]string{
		"foo": "bar", "FOO": "bar", "fOo": "bar", // case-insensitive
		"missing":    "", // missing -> ""
		"empty":      "", // empty value
		"withenv":    "from-env/x",
		"unset":      "ab", // unset variable expands to ""
		"tag":        "",   // consumed by Fluent Bit
		"tls.verify": "",   // consumed by Fluent Bit
		"spaces":     "a b = c",
	}, got)
	assert.Contains(t, r.h.Log(), "[env] variable ${FLBHOST_TEST_UNSET_VAR_4711} is used but not set")
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{IntervalMS: 20})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 2, 10*time.Second)

	require.NoError(t, r.h.Pause())
	before := count(r.calls(t), "Callback")
	time.Sleep(300 * time.Millisecond) // ~15 periods
	assert.Equal(t, before, count(r.calls(t), "Callback"), "no callback while paused")

	// a second pause request is acknowledged without a second Pause call
	require.NoError(t, r.h.Pause())
	assert.Contains(t, r.h.Log(), "paused (already paused")
	assert.Equal(t, 1, count(r.calls(t), "Pause"))

	require.NoError(t, r.h.Resume())
	r.waitCalls(t, "Callback", before+3, 10*time.Second)
	require.NoError(t, r.h.Stop())

	cs := r.calls(t)
	assert.Zero(t, count(cs, "CallbackWhilePaused"))
	assert.Equal(t, 1, count(cs, "Resume"))
	// ... Cleanup, Pause, Resume, Callback ...
	ns := strings.Join(names(cs), " ")
	assert.Contains(t, ns, "Cleanup Pause Resume Callback")
	assert.True(t, strings.HasSuffix(ns, "Cleanup Pause Pause PreExit Exit Unregister"), ns)
}

func TestNoCleanupFrees(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{NoCleanup: true, Props: [][2]string{{"records", "4"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Callback", 3, 10*time.Second)
	require.NoError(t, r.h.Stop())

	cs := r.calls(t)
	k := count(cs, "Callback")
	assert.Zero(t, count(cs, "Cleanup"))
	s := r.summary(t)
	assert.Equal(t, int64(0), s["cleanup_calls"])
	assert.Equal(t, int64(k), s["free_calls"])
	assert.Equal(t, int64(k), s["nonempty"])

	recs, truncated, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	assert.False(t, truncated)
	assert.Equal(t, seq(1, int64(4*k)), counters(recs))
	assert.Contains(t, r.h.Log(), "--no-cleanup")
}

// kill -9 keeps what reached a chunk on disk and nothing else: the ring
// buffer and memory chunks die with the process.
func TestKill9KeepsOnlyChunkedRecords(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		storage string
		env     []string
		cleaned int           // cleanups to wait for
		settle  time.Duration // then this long before the kill
		kept    string        // "settled": every buffer cleaned up before the settle; "none"
	}{
		{name: "filesystem: chunked every 250 ms", storage: "filesystem", cleaned: 10, settle: 700 * time.Millisecond, kept: "settled"},
		{name: "filesystem: still in the ring (no collector run yet)", storage: "filesystem", env: []string{"FLB_DEV_RB_MS=600000"}, cleaned: 10, kept: "none"},
		{name: "filesystem: ring 5% full is collected early", storage: "filesystem", env: []string{"FLB_DEV_RB_MS=600000"}, cleaned: 60, settle: 300 * time.Millisecond, kept: "window"},
		{name: "memory: chunked, never flushed", storage: "memory", cleaned: 10, kept: "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, flbhost.Options{IntervalMS: 5, Env: tc.env,
				Props: [][2]string{{"records", "20"}, {"storage.type", tc.storage}}})
			require.NoError(t, r.h.WaitReady(20*time.Second))
			r.waitCalls(t, "Cleanup", tc.cleaned, 10*time.Second)
			before := cleaned(t, r.calls(t))
			time.Sleep(tc.settle)
			require.NoError(t, r.h.Kill())
			code, err := r.h.Wait()
			assert.Error(t, err)
			assert.Equal(t, -1, code)

			cs := r.calls(t)
			recs, _, err := flbhost.ReadIngest(r.ingest)
			require.NoError(t, err)
			got := counters(recs)
			all := cleaned(t, cs)
			require.LessOrEqual(t, len(got), len(all))
			assert.True(t, slices.Equal(all[:len(got)], got), "what is kept is the oldest cleaned-up records, in order")
			switch tc.kept {
			case "settled":
				assert.GreaterOrEqual(t, len(got), len(before), "every buffer cleaned up %s before the kill was chunked", tc.settle)
			case "window":
				assert.GreaterOrEqual(t, len(got), 51*20, "51 ring entries (5%%) wake the collector")
			case "none":
				assert.Empty(t, got, "%d cleaned-up buffers, none chunked on disk", len(all)/20)
			}
		})
	}
}

// A callback returning during the shutdown's first second has its records
// chunked; one returning after the shutdown tick finds them discarded with
// the ring, whatever the grace.
func TestShutdownDataLoss(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		slowMS  int
		dropped bool
	}{
		{name: "returns after the shutdown tick: dropped", slowMS: 1500, dropped: true},
		{name: "returns within the shutdown tick: written", slowMS: 300, dropped: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, flbhost.Options{
				Grace: 5,
				Props: [][2]string{
					{"records", "4"}, {"slow_callback", "3"}, {"slow_ms", strconv.Itoa(tc.slowMS)},
					{"storage.type", "filesystem"},
				},
			})
			require.NoError(t, r.h.WaitReady(20*time.Second))
			r.waitCalls(t, "CallbackBegin", 1, 10*time.Second)
			began := time.Now()
			require.NoError(t, r.h.Stop())
			assert.GreaterOrEqual(t, time.Since(began), time.Second, "the shutdown tick comes after 1 s")

			cs := r.calls(t)
			ns := names(cs)
			// cleanup is still called for the late buffer; no callback after
			assert.Equal(t, []string{"Callback", "Cleanup", "Pause", "Pause", "PreExit", "Exit", "Unregister"}, ns[len(ns)-7:])
			assert.Equal(t, "3", cs[len(cs)-7].kv["n"])
			assert.Equal(t, 3, count(cs, "Callback"))

			recs, truncated, err := flbhost.ReadIngest(r.ingest)
			require.NoError(t, err)
			assert.False(t, truncated)
			s := r.summary(t)
			if tc.dropped {
				assert.Equal(t, seq(1, 8), counters(recs))
				assert.Equal(t, int64(4), s["dropped_after_shutdown"])
				assert.Equal(t, int64(8), s["records"])
				assert.Contains(t, r.h.Log(), "4 records (351 bytes) still in the ring buffer at exit")
			} else {
				assert.Equal(t, seq(1, 12), counters(recs))
				assert.Equal(t, int64(0), s["dropped_after_shutdown"])
				assert.Equal(t, int64(12), s["records"])
			}
			assert.Equal(t, int64(3), s["cleanup_calls"])
		})
	}
}

// An input paused for back-pressure is skipped by the ring collector, and
// a shutdown does not pause it again: the plugin sees one Pause before
// PreExit, and what was left in the ring is discarded.
func TestShutdownWhilePausedForBackPressure(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{IntervalMS: 20, Env: []string{"FLB_DEV_RB_MS=600000"},
		Props: [][2]string{{"records", "3"}, {"storage.type", "filesystem"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 3, 10*time.Second)
	require.NoError(t, r.h.Pause())
	require.NoError(t, r.h.Stop())

	cs := r.calls(t)
	ns := strings.Join(names(cs), " ")
	assert.True(t, strings.HasSuffix(ns, "Cleanup Pause PreExit Exit Unregister"), ns)
	recs, _, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	assert.Empty(t, recs, "the collector skipped the paused input")
	assert.Equal(t, int64(3*count(cs, "Cleanup")), r.summary(t)["dropped_after_shutdown"])
	assert.Contains(t, r.h.Log(), "paused for back-pressure, FLBPluginInputPause not called again")
}

func TestInitFailure(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{Props: [][2]string{{"init_rc", "0"}}})
	err := r.h.WaitReady(20 * time.Second)
	require.Error(t, err)
	code, err := r.h.WaitTimeout(10 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, code)
	assert.Contains(t, r.h.Log(), "[error] [input:teleport:teleport.0] initialization failed")
	assert.Equal(t, []string{"PreRegister", "Register", "Init", "Unregister"}, names(r.calls(t)),
		"no PreRun, callback or Exit after a failed Init")
}

func TestRegistrationFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts flbhost.Options
		line string
	}{
		{"name mismatch", flbhost.Options{Name: "other"},
			"[error] [config] section 'other' tried to instance a plugin name that doesn't exist"},
		{"register returns -1", flbhost.Options{Env: []string{"FAKE_REGISTER_RC=-1"}},
			"[error] [config] section 'teleport' tried to instance a plugin name that doesn't exist"},
		{"registered under another name", flbhost.Options{Env: []string{"FAKE_PLUGIN_NAME=teleport2"}},
			"[error] [config] section 'teleport' tried to instance a plugin name that doesn't exist"},
		{"pre-register cancels", flbhost.Options{Env: []string{"FAKE_PREREGISTER_RC=-1"}},
			"input plugin not registered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, tc.opts)
			code, err := r.h.WaitTimeout(20 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, 1, code)
			assert.Contains(t, r.h.Log(), tc.line)
			assert.NotContains(t, r.h.Log(), flbhost.ReadyLine)
			assert.NoFileExists(t, r.trace, "Init never ran")
		})
	}
}

func TestPluginSendsSIGTERM(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{Props: [][2]string{{"kill_after", "3"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	code, err := r.h.WaitTimeout(15 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	ns := strings.Join(names(r.calls(t)), " ")
	assert.Contains(t, ns, "SelfKill")
	assert.True(t, strings.HasSuffix(ns, "Pause Pause PreExit Exit Unregister"), ns)
	_, ok := r.h.Summary()
	assert.True(t, ok)
	assert.Contains(t, r.h.Log(), "caught signal (SIGTERM)")
}

func TestCallbackErrorAndEmpty(t *testing.T) {
	t.Parallel()
	t.Run("rc -1 with data", func(t *testing.T) {
		t.Parallel()
		r := start(t, flbhost.Options{Props: [][2]string{{"callback_rc", "-1"}}})
		require.NoError(t, r.h.WaitReady(20*time.Second))
		r.waitCalls(t, "Callback", 3, 10*time.Second)
		require.NoError(t, r.h.Stop())
		cs := r.calls(t)
		assert.Zero(t, count(cs, "Cleanup"), "buffer leaked, like Fluent Bit")
		s := r.summary(t)
		assert.Equal(t, int64(count(cs, "Callback")), s["errors"])
		assert.Equal(t, int64(0), s["records"])
		assert.Equal(t, int64(0), s["free_calls"])
		assert.Equal(t, "", readFile(r.ingest))
		assert.Contains(t, r.h.Log(), "callback returned -1")
	})
	t.Run("rc 0 (FLB_ERROR) is ingested", func(t *testing.T) {
		t.Parallel()
		r := start(t, flbhost.Options{Props: [][2]string{{"callback_rc", "0"}}})
		require.NoError(t, r.h.WaitReady(20*time.Second))
		r.waitCalls(t, "Cleanup", 2, 10*time.Second)
		require.NoError(t, r.h.Stop())
		recs, _, err := flbhost.ReadIngest(r.ingest)
		require.NoError(t, err)
		assert.Equal(t, cleaned(t, r.calls(t)), counters(recs))
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		r := start(t, flbhost.Options{Props: [][2]string{{"records", "0"}}})
		require.NoError(t, r.h.WaitReady(20*time.Second))
		r.waitCalls(t, "Callback", 3, 10*time.Second)
		require.NoError(t, r.h.Stop())
		assert.Zero(t, count(r.calls(t), "Cleanup"), "no cleanup call when len == 0")
		s := r.summary(t)
		assert.Equal(t, int64(0), s["nonempty"])
		assert.Equal(t, int64(0), s["free_calls"])
		assert.GreaterOrEqual(t, s["callbacks"], int64(3))
	})
}

func TestInvalidEventsAreCounted(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{Props: [][2]string{{"invalid", "1"}, {"records", "2"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 2, 10*time.Second)
	require.NoError(t, r.h.Stop())
	s := r.summary(t)
	assert.Equal(t, s["nonempty"], s["invalid"])
	assert.Equal(t, 2*s["nonempty"], s["records"])
	assert.Contains(t, r.h.Log(), "1 invalid event(s)")
	recs, _, err := flbhost.ReadIngest(r.ingest)
	assert.ErrorContains(t, err, "negative integer")
	assert.Len(t, recs, 2)
}

func TestTwoInstances(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{
		ExtraInstances: [][][2]string{{{"alias", "second"}}},
	})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 4, 10*time.Second)
	require.NoError(t, r.h.Pause())
	assert.Equal(t, 2, r.h.CountLog(flbhost.PausedLine))
	require.NoError(t, r.h.Resume())
	require.NoError(t, r.h.Stop())

	cs := r.calls(t)
	var inits []int
	for _, c := range cs {
		if c.name == "Init" {
			inits = append(inits, c.tid)
		}
	}
	require.Len(t, inits, 2)
	assert.NotEqual(t, inits[0], inits[1], "each instance has its own thread")
	assert.Equal(t, 2, count(cs, "PreRun"))
	assert.Equal(t, 2+4, count(cs, "Pause"))
	assert.Equal(t, 2, count(cs, "Exit"))
	assert.Equal(t, 1, count(cs, "Unregister"))
	log := r.h.Log()
	assert.Contains(t, log, "[input:teleport:teleport.0]")
	assert.Contains(t, log, "[input:teleport:second]")
	// Both resumed: the first resume restarted the last input's collector
	// (see TestPauseOfOneInputStopsTheLastInputsCollector), so the second
	// finds it running, as Fluent Bit logs it.
	assert.Contains(t, log, "[error] [input] cannot resume collector second:0, already running")

	// The first input's collector runs on through the shutdown pauses; what
	// this plugin (which ignores Pause) hands over then stays in the ring
	// and is discarded at exit.
	recs, _, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	assert.Subset(t, cleaned(t, cs), counters(recs))
	s := r.summary(t)
	assert.Equal(t, int64(len(cleaned(t, cs))-len(recs)), s["dropped_after_shutdown"])
}

// ---------------------------------------------------------------------------
// ReadIngest / DecodeEvents

func eventTime(sec, nsec uint32) []byte {
	d := []byte{byte(sec >> 24), byte(sec >> 16), byte(sec >> 8), byte(sec),
		byte(nsec >> 24), byte(nsec >> 16), byte(nsec >> 8), byte(nsec)}
	b, _ := msgp.AppendExtension(nil, &msgp.RawExtension{Type: 0, Data: d})
	return b
}

func body(b []byte, kv ...any) []byte {
	b = msgp.AppendMapHeader(b, uint32(len(kv)/2))
	for i := 0; i < len(kv); i += 2 {
		b = msgp.AppendString(b, kv[i].(string))
		var err error
		b, err = msgp.AppendIntf(b, kv[i+1])
		if err != nil {
			panic(err)
		}
	}
	return b
}

func TestDecodeEvents(t *testing.T) {
	t.Parallel()
	var b []byte
	// [EventTime, body]
	b = msgp.AppendArrayHeader(b, 2)
	b = append(b, eventTime(1700000000, 123456789)...)
	b = body(b, "msg", "a", "n", int64(-3), "u", uint64(1<<63), "nested",
		map[string]any{"l": []any{int64(1), "x", nil}}, "bin", []byte{1, 2})
	// [int, body]
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendInt64(b, 1700000001)
	b = body(b, "msg", "b")
	// [float, body]
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendFloat64(b, 1700000002.25)
	b = body(b, "msg", "c")
	// [[EventTime, meta], body]
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendArrayHeader(b, 2)
	b = append(b, eventTime(1700000003, 0)...)
	b = body(b, "m", int64(1))
	b = body(b, "msg", "d")
	complete := len(b)
	// a last event cut in the middle
	b = msgp.AppendArrayHeader(b, 2)
	b = append(b, eventTime(1700000004, 0)...)
	b = body(b, "msg", "a long message that gets cut")

	recs, truncated, err := flbhost.DecodeEvents(b[:complete])
	require.NoError(t, err)
	assert.False(t, truncated)
	require.Len(t, recs, 4)

	assert.Equal(t, time.Unix(1700000000, 123456789), recs[0].Time)
	assert.Equal(t, map[string]any{
		"msg": "a", "n": int64(-3), "u": uint64(1 << 63),
		"nested": map[string]any{"l": []any{int64(1), "x", nil}},
		"bin":    []byte{1, 2},
	}, recs[0].Body)
	assert.Equal(t, time.Unix(1700000001, 0), recs[1].Time)
	assert.Equal(t, time.Unix(1700000002, 250000000), recs[2].Time)
	assert.Equal(t, time.Unix(1700000003, 0), recs[3].Time)
	assert.Equal(t, map[string]any{"m": int64(1)}, recs[3].Meta)
	assert.Equal(t, "d", recs[3].Body["msg"])

	for cut := complete + 1; cut < len(b); cut++ {
		recs, truncated, err := flbhost.DecodeEvents(b[:cut])
		require.NoError(t, err, "cut at %d", cut)
		assert.True(t, truncated, "cut at %d", cut)
		assert.Len(t, recs, 4)
	}
	recs, truncated, err = flbhost.DecodeEvents(b)
	require.NoError(t, err)
	assert.False(t, truncated)
	assert.Len(t, recs, 5)

	// invalid events are errors
	for name, ev := range map[string][]byte{
		"negative ts":   body(msgp.AppendInt64(msgp.AppendArrayHeader(nil, 2), -1)),
		"string ts":     body(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "x")),
		"array of 3":    msgp.AppendNil(body(msgp.AppendInt64(msgp.AppendArrayHeader(nil, 3), 1))),
		"body not map":  msgp.AppendString(msgp.AppendInt64(msgp.AppendArrayHeader(nil, 2), 1), "x"),
		"not an array":  body(nil),
		"ext type 1 ts": body(append(msgp.AppendArrayHeader(nil, 2), 0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0)),
	} {
		_, _, err := flbhost.DecodeEvents(append(append([]byte{}, b[:complete]...), ev...))
		assert.Error(t, err, name)
	}
}

func TestReadIngestTruncatedFile(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{Props: [][2]string{{"records", "3"}}})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 2, 10*time.Second)
	require.NoError(t, r.h.Stop())

	full, err := os.ReadFile(r.ingest)
	require.NoError(t, err)
	all, truncated, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	require.False(t, truncated)
	require.GreaterOrEqual(t, len(all), 6)

	cut := filepath.Join(t.TempDir(), "cut.mp")
	require.NoError(t, os.WriteFile(cut, full[:len(full)-7], 0o644))
	recs, truncated, err := flbhost.ReadIngest(cut)
	require.NoError(t, err)
	assert.True(t, truncated)
	assert.Equal(t, counters(all[:len(all)-1]), counters(recs))
}

// callbacksAfter counts the Callback calls on thread tid after the first
// call named mark (all of them when mark never came).
func callbacksAfter(cs []call, mark string, tid int) int {
	n, seen := 0, mark == ""
	for _, c := range cs {
		if c.name == mark {
			seen = true
		}
		if seen && c.name == "Callback" && c.tid == tid {
			n++
		}
	}
	return n
}

// A context-free pause of one input stops the collector of the input
// initialised last, as flb_proxy_input_cb_pause does with
// ctx->proxy->instance: the paused input keeps being called, the other
// one waits for the resume.
func TestPauseOfOneInputStopsTheLastInputsCollector(t *testing.T) {
	t.Parallel()
	r := start(t, flbhost.Options{
		ExtraInstances: [][][2]string{{{"alias", "last"}}},
		SignalInput:    1,
	})
	require.NoError(t, r.h.WaitReady(20*time.Second))
	r.waitCalls(t, "Cleanup", 4, 10*time.Second)
	var tids []int
	for _, c := range r.calls(t) {
		if c.name == "Init" {
			tids = append(tids, c.tid)
		}
	}
	require.Len(t, tids, 2)
	require.NoError(t, r.h.Pause())
	assert.Equal(t, 1, r.h.CountLog(flbhost.PausedLine), "only the first input is paused")
	assert.Contains(t, r.h.Log(), "[input:teleport:teleport.0] paused")

	// The paused input is still called...
	deadline := time.Now().Add(10 * time.Second)
	for callbacksAfter(r.calls(t), "Pause", tids[0]) < 5 {
		require.True(t, time.Now().Before(deadline), "the paused input's collector kept running")
		time.Sleep(10 * time.Millisecond)
	}
	// ...the last one is not (one callback may have been under way).
	assert.LessOrEqual(t, callbacksAfter(r.calls(t), "Pause", tids[1]), 1)

	require.NoError(t, r.h.Resume())
	before := callbacksAfter(r.calls(t), "", tids[1])
	deadline = time.Now().Add(10 * time.Second)
	for callbacksAfter(r.calls(t), "", tids[1]) < before+3 {
		require.True(t, time.Now().Before(deadline), "the last input's collector restarts at the resume")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, r.h.Stop())
	assert.NotContains(t, r.h.Log(), "cannot resume collector")
}
