package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

var cliBuild struct {
	once sync.Once
	path string
	err  error
}

// cliPath builds build/teleport-fluent-bit (the CLI an operator runs).
func cliPath(t *testing.T) string {
	t.Helper()
	cliBuild.once.Do(func() {
		root := flbhost.RepoRoot()
		cliBuild.path = filepath.Join(root, "build", "teleport-fluent-bit")
		cmd := exec.Command("go", "build", "-o", cliBuild.path, "./cmd/teleport-fluent-bit")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cliBuild.err = err
			cliBuild.path = string(out)
		}
	})
	require.NoError(t, cliBuild.err, "building the CLI: %s", cliBuild.path)
	return cliBuild.path
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(cliPath(t), args...).CombinedOutput()
	return string(out), err
}

// auditIngested returns the uids of the audit events ingested (recordings,
// which carry recording_session_id, left out).
func (r *rig) auditIngested() []string {
	recs, _, err := flbhost.ReadIngest(r.ingest)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(r.t, err)
	var out []string
	for _, rec := range recs {
		if _, ok := rec.Body[record.SessionIDField]; ok {
			continue
		}
		uid, _ := rec.Body["uid"].(string)
		out = append(out, uid)
	}
	return out
}

// `cursor set` moves an exported cursor to a new start time: refused while
// the plugin runs, and the next plugin run exports exactly the events from
// that time on — earlier ones again when it moves back, nothing before it.
func TestCursorSetThenPluginRun(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(6000, 3*24*time.Hour, 40)
	want := r.expected(nil)

	h := r.host(hostOpts{props: r.props()})
	waitAudit(r, h, len(want))

	// While Fluent Bit runs the plugin, the cursor cannot be moved.
	newStart := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Second).Add(17 * time.Second)
	out, err := runCLI(t, "cursor", "set", "--storage", r.storage, "--start-time", newStart.Format(time.RFC3339), "--yes")
	require.Error(t, err, out)
	assert.Contains(t, out, "is in use by another process")
	assert.Contains(t, out, "stop Fluent Bit (or the export) using it first")
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.auditIngested())
	before, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	require.NotEmpty(t, before.Mode, "the first run has progressed")

	// Stopped: without --yes nothing changes, with it the cursor moves.
	out, err = runCLI(t, "cursor", "set", "--storage", r.storage, "--start-time", newStart.Format(time.RFC3339))
	require.Error(t, err, out)
	st, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	assert.Equal(t, before, st)
	out, err = runCLI(t, "cursor", "set", "--storage", r.storage, "--start-time", newStart.Format(time.RFC3339), "--yes")
	require.NoError(t, err, out)
	assert.Contains(t, out, "saved: the next run exports events from "+newStart.Format(time.RFC3339Nano)+" on.")

	// The old start_time in the configuration is now refused, with the way out.
	require.NoError(t, os.Remove(r.ingest))
	h = r.host(hostOpts{props: r.props()})
	code, err := h.WaitTimeout(30 * time.Second)
	require.NoError(t, err)
	assert.NotZero(t, code)
	assert.Contains(t, h.Log(), "start_time differs from the stored start time")

	// Without start_time (or with the new one) the plugin exports from the
	// new start time on: events before it that were exported already do
	// not come again, and nothing after it is missing.
	wantNew := r.auth.UIDsInRange(newStart, time.Now().Add(24*time.Hour), nil)
	require.Greater(t, len(wantNew), 1000)
	require.Less(t, len(wantNew), len(want))
	h = r.host(hostOpts{props: r.props("start_time=" + newStart.Format(time.RFC3339))})
	waitAudit(r, h, len(wantNew))
	time.Sleep(500 * time.Millisecond) // nothing else comes
	require.NoError(t, h.Stop())
	exactlyOnce(t, wantNew, r.auditIngested())

	// reset: everything from the stored start time again.
	require.NoError(t, os.Remove(r.ingest))
	out, err = runCLI(t, "cursor", "reset", "--storage", r.storage, "--yes")
	require.NoError(t, err, out)
	h = r.host(hostOpts{props: r.props("start_time=")})
	waitAudit(r, h, len(wantNew))
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, h.Stop())
	exactlyOnce(t, wantNew, r.auditIngested())
}

// waitAudit waits until n audit events were ingested.
func waitAudit(r *rig, h *flbhost.Host, n int) {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(r.auditIngested()) < n {
		select {
		case <-h.Done():
			r.t.Fatalf("host exited early (code %d) with %d/%d events", h.ExitCode(), len(r.auditIngested()), n)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d/%d events after 60s", len(r.auditIngested()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `check` with the real binary against the stand-in: passes, and names
// the problem of an expired identity.
func TestCheckCommand(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(100, time.Hour, 41)
	args := []string{"check", "-p", "teleport_addr=" + r.auth.Addr(), "-p", "teleport_identity=" + r.identity, "-p", "storage_dir=" + r.storage}
	out, err := runCLI(t, args...)
	require.NoError(t, err, out)
	assert.Contains(t, out, `connected to Teleport cluster "acc" (Teleport 17.2.0)`)

	require.NoError(t, r.auth.WriteIdentity(r.identity, -time.Minute))
	out, err = runCLI(t, args...)
	require.Error(t, err)
	assert.Contains(t, out, "certificate expired at")
	assert.Contains(t, out, "check: 1 problem(s) found")
}

// The teleport-fluent-bit.toml configure writes is all the plugin needs:
// the real .so, given only `config`, exports every event.
func TestConfigureTOMLRunsThePlugin(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(2000, 24*time.Hour, 42)
	dir := filepath.Join(r.dir, "conf")
	out, err := runCLI(t, "configure", dir, r.auth.Addr(), "--length", "1024", "--identity", r.identity)
	require.NoError(t, err, out)
	toml := filepath.Join(dir, "teleport-fluent-bit.toml")
	out, err = runCLI(t, "check", "--config", toml)
	require.NoError(t, err, out)

	h := r.host(hostOpts{props: [][2]string{{"config", toml}, {"start_time", r.start.Format(time.RFC3339)}}})
	want := r.expected(nil)
	waitAudit(r, h, len(want))
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.auditIngested())
	st, err := cursor.Peek(filepath.Join(dir, "storage"))
	require.NoError(t, err)
	assert.NotNil(t, st, "storage_dir from the TOML, relative to it")
}
