// Package e2e runs the real plugin (build/in_teleport.so) inside the Fluent
// Bit stand-in (build/flbhost) against the Teleport Auth Service stand-in
// over gRPC with mutual TLS, and compares what was ingested with what the
// server holds.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

var (
	pluginPath string
	hostPath   string
)

// TestMain builds the plugin and the host (the go command and a one-file
// gcc build make this cheap when nothing changed).
func TestMain(m *testing.M) {
	root := flbhost.RepoRoot()
	pluginPath = filepath.Join(root, "build", "in_teleport.so")
	hostPath = filepath.Join(root, "build", "flbhost")
	if err := os.MkdirAll(filepath.Join(root, "build"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := flbhost.BuildPlugin("./plugin", pluginPath); err != nil {
		fmt.Fprintln(os.Stderr, "building the plugin:", err)
		os.Exit(1)
	}
	if err := flbhost.BuildHost(hostPath); err != nil {
		fmt.Fprintln(os.Stderr, "building the host:", err)
		os.Exit(1)
	}
	code := m.Run()
	// Whatever ran (-run, -shuffle), no host log line may carry key material.
	if bad, _, _, err := scanHostLogs(); code == 0 && (err != nil || len(bad) > 0) {
		fmt.Fprintln(os.Stderr, "key material in host logs:", err, bad)
		code = 1
	}
	os.Exit(code)
}

// rig is one Teleport stand-in plus the files a plugin run needs.
type rig struct {
	t        *testing.T
	auth     *teleportd.Server
	dir      string
	identity string
	storage  string
	ingest   string
	start    time.Time // start_time given to the plugin
}

func newRig(t *testing.T, opts teleportd.Options) *rig {
	t.Helper()
	dir := t.TempDir()
	opts.Dir = filepath.Join(dir, "auth")
	auth, err := teleportd.Start(opts)
	require.NoError(t, err)
	t.Cleanup(auth.Close)
	r := &rig{t: t, auth: auth, dir: dir,
		identity: filepath.Join(dir, "identity"),
		storage:  filepath.Join(dir, "storage"),
		ingest:   filepath.Join(dir, "ingest.msgpack"),
		start:    time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(time.Hour),
	}
	require.NoError(t, auth.WriteIdentity(r.identity, time.Hour))
	return r
}

// generate adds n realistic events spread over the last span (ending a
// little before now) and returns nothing: the server is the ground truth.
func (r *rig) generate(n int, span time.Duration, seed int64) {
	end := time.Now().UTC().Add(-time.Minute)
	r.auth.Generate(teleportd.GenSpec{Start: end.Add(-span), Count: n, Span: span, Seed: seed, ChunkSize: 2000})
}

// props are the plugin properties of a normal run, with overrides.
func (r *rig) props(extra ...string) [][2]string {
	kv := map[string]string{
		"teleport_addr":     r.auth.Addr(),
		"teleport_identity": r.identity,
		"storage_dir":       r.storage,
		"start_time":        r.start.Format(time.RFC3339),
		"poll_interval":     "200ms",
		"callback_bytes":    "256K",
		// Consumed by the host: chunks on disk, kept by a kill -9, as
		// docs/deploying.md asks for.
		"storage.type": "filesystem",
	}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, "=")
		if v == "" {
			delete(kv, k)
		} else {
			kv[k] = v
		}
	}
	var out [][2]string
	for k, v := range kv {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

type hostOpts struct {
	props     [][2]string
	interval  int
	noCleanup bool
	grace     float64
}

// host starts the Fluent Bit stand-in with the plugin; it is killed at the
// end of the test if still running.
func (r *rig) host(o hostOpts) *flbhost.Host {
	r.t.Helper()
	if o.interval == 0 {
		o.interval = 50
	}
	if o.grace == 0 {
		o.grace = 0.5
	}
	h, err := flbhost.Start(flbhost.Options{
		Bin: hostPath, Plugin: pluginPath, Props: o.props, Ingest: r.ingest,
		IntervalMS: o.interval, NoCleanup: o.noCleanup, Grace: o.grace, MaxSeconds: 300,
	})
	require.NoError(r.t, err)
	r.t.Cleanup(func() {
		select {
		case <-h.Done():
		default:
			_ = h.Kill()
		}
		if r.t.Failed() {
			r.t.Logf("host log:\n%s", tail(h.Log(), 60))
		}
	})
	return h
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ingested returns the uid of every ingested audit record, in order
// (recording records, which carry record.SessionIDField, are left out: see
// split).
func (r *rig) ingested() []string {
	recs, _, err := flbhost.ReadIngest(r.ingest)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(r.t, err)
	out := make([]string, 0, len(recs))
	for _, rec := range recs {
		if _, ok := rec.Body[record.SessionIDField]; ok {
			continue
		}
		uid, _ := rec.Body["uid"].(string)
		out = append(out, uid)
	}
	return out
}

// expected is the server's ground truth: events at or after start_time that
// pass filter.
func (r *rig) expected(filter func(teleportd.EventMeta) bool) []string {
	return r.auth.UIDsInRange(r.start, time.Now().Add(24*time.Hour), filter)
}

// waitCount waits until at least n records were ingested.
func (r *rig) waitCount(h *flbhost.Host, n int, timeout time.Duration) []string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.ingested()
		if len(got) >= n {
			return got
		}
		select {
		case <-h.Done():
			r.t.Fatalf("host exited early (code %d) with %d/%d records", h.ExitCode(), len(got), n)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d/%d records after %s", len(got), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAll waits until every uid of want was ingested (duplicates do not
// count).
func (r *rig) waitAll(h *flbhost.Host, want []string, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing, _, _ := compare(want, r.ingested())
		if len(missing) == 0 {
			return
		}
		select {
		case <-h.Done():
			r.t.Fatalf("host exited early (code %d) with %d of %d events missing", h.ExitCode(), len(missing), len(want))
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d events missing after %s", len(missing), len(want), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exactlyOnce checks got holds every uid of want once and nothing else.
func exactlyOnce(t *testing.T, want, got []string) {
	t.Helper()
	missing, dups, extra := compare(want, got)
	require.Zero(t, len(missing), "%d of %d events never arrived, e.g. %v", len(missing), len(want), first(missing))
	require.Zero(t, len(dups), "%d events arrived more than once, e.g. %v", len(dups), first(dups))
	require.Zero(t, len(extra), "%d records the server does not hold (or that the filter should drop), e.g. %v", len(extra), first(extra))
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// compare returns the uids of want missing from got, those got holds more
// than once (once per extra copy), and those got holds that want lacks.
func compare(want, got []string) (missing, dups, extra []string) {
	seen := make(map[string]int, len(got))
	for _, g := range got {
		seen[g]++
	}
	w := make(map[string]bool, len(want))
	for _, u := range want {
		w[u] = true
		if seen[u] == 0 {
			missing = append(missing, u)
		}
	}
	for u, n := range seen {
		if !w[u] {
			extra = append(extra, u)
		}
		for i := 1; i < n; i++ {
			dups = append(dups, u)
		}
	}
	return
}
