package e2e

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// input is one teleport input of a multi-input host: its cluster, its
// properties and which of the cluster's events it should deliver.
type input struct {
	name   string // alias and cluster key; also its ingest file's suffix
	rig    *rig
	props  [][2]string
	filter func(teleportd.EventMeta) bool
}

// multiHost starts one host running every input, each writing its chunks to
// its own file (ingest.<name>).
func multiHost(t *testing.T, ingest string, ins []input, o flbhost.Options) *flbhost.Host {
	t.Helper()
	var all [][][2]string
	for _, in := range ins {
		all = append(all, append([][2]string{{"alias", in.name}, {"cluster", in.name}}, in.props...))
	}
	o.Bin, o.Plugin, o.Ingest, o.IngestSplit = hostPath, pluginPath, ingest, true
	o.Props, o.ExtraInstances = all[0], all[1:]
	if o.IntervalMS == 0 {
		o.IntervalMS = 100
	}
	o.Grace, o.MaxSeconds = 0.5, 300
	h, err := flbhost.Start(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		select {
		case <-h.Done():
		default:
			_ = h.Kill()
		}
		if t.Failed() {
			t.Logf("host log:\n%s", tail(h.Log(), 80))
		}
	})
	return h
}

// uids are the audit records one input delivered, in order.
func uids(t *testing.T, path string) []string {
	t.Helper()
	recs, _, err := flbhost.ReadIngest(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
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

// waitInputs waits until every input delivered each event it should.
func waitInputs(t *testing.T, h *flbhost.Host, ingest string, ins []input, timeout time.Duration) {
	t.Helper()
	wants := make([][]string, len(ins))
	for i, in := range ins {
		wants[i] = in.rig.expected(in.filter)
	}
	waitWants(t, h, ingest, ins, wants, timeout)
}

// waitWants waits until input i delivered every uid of wants[i].
func waitWants(t *testing.T, h *flbhost.Host, ingest string, ins []input, wants [][]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i, in := range ins {
		want := wants[i]
		for {
			missing, _, _ := compare(want, uids(t, ingest+"."+in.name))
			if len(missing) == 0 {
				break
			}
			select {
			case <-h.Done():
				t.Fatalf("host exited early (code %d): input %s misses %d of %d events", h.ExitCode(), in.name, len(missing), len(want))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("input %s misses %d of %d events after %s", in.name, len(missing), len(want), timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func logins(m teleportd.EventMeta) bool { return m.Type == "user.login" }

// Three teleport inputs in one Fluent Bit (Ctx ABI, as 5.1.1 drives it)
// against two Teleport clusters: a backlog, a live stream, back-pressure
// on one input, graceful restarts, then kill -9s. Each input delivers its
// own cluster's events, and only those: exactly once across the graceful
// runs, at least once after the kills.
func TestSeveralClusters(t *testing.T) {
	prod := newRig(t, teleportd.Options{})
	staging := newRig(t, teleportd.Options{})
	prod.generate(3000, 24*time.Hour, 501)
	staging.generate(2000, 24*time.Hour, 601)
	ingest := filepath.Join(t.TempDir(), "ingest")
	ins := []input{
		{name: "prod", rig: prod, props: prod.props()},
		{name: "staging", rig: staging, props: staging.props()},
		// A second input on the prod cluster, logins only, with its own
		// identity file and cursor.
		{name: "prod-logins", rig: prod, filter: logins,
			props: prod.props("types=user.login", "storage_dir="+filepath.Join(prod.dir, "storage-logins"))},
	}
	backlog := make([][]string, len(ins))
	for i, in := range ins {
		backlog[i] = in.rig.expected(in.filter)
	}
	stopProd := liveStreamSeeded(prod, 100, 71000)
	stopStaging := liveStreamSeeded(staging, 100, 81000)
	defer stopProd()
	defer stopStaging()

	// Back-pressure on staging (input 2): Fluent Bit stops the collector
	// of prod-logins (the input initialised last) while staging's own
	// keeps running; staging must hand nothing over until the resume.
	h := multiHost(t, ingest, ins, flbhost.Options{SignalInput: 2})
	require.NoError(t, h.WaitReady(60*time.Second))
	waitWants(t, h, ingest, ins, backlog, 90*time.Second)
	log := h.Log()
	for _, n := range []string{"prod", "staging", "prod-logins"} {
		assert.Contains(t, log, "[ info] [input:teleport:"+n+"] connected to Teleport cluster", "each input logs under its name")
	}
	require.NoError(t, h.Pause())
	before := len(uids(t, ingest+".staging"))
	prodBefore := len(uids(t, ingest+".prod"))
	deadline := time.Now().Add(30 * time.Second)
	for len(uids(t, ingest+".prod")) < prodBefore+200 {
		require.True(t, time.Now().Before(deadline), "prod keeps exporting while staging is paused")
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, before, len(uids(t, ingest+".staging")), "nothing of the paused input is delivered")
	require.NoError(t, h.Resume())
	time.Sleep(2 * time.Second)
	require.NoError(t, h.Stop())
	assert.Contains(t, h.Log(), "[input:teleport:staging] paused")
	assert.NotContains(t, h.Log(), "while paused", "a paused input is called (Fluent Bit stopped another's collector) and hands nothing over")

	// A graceful restart, with the live streams still running.
	h = multiHost(t, ingest, ins, flbhost.Options{})
	require.NoError(t, h.WaitReady(60*time.Second))
	time.Sleep(3 * time.Second)
	stopProd()
	stopStaging()
	waitInputs(t, h, ingest, ins, 120*time.Second)
	require.NoError(t, h.Stop())
	assert.NotContains(t, h.Log(), "while paused")
	for _, in := range ins {
		got := uids(t, ingest+"."+in.name)
		t.Logf("%s: %d records", in.name, len(got))
		exactlyOnce(t, in.rig.expected(in.filter), got)
	}

	// kill -9 at random points while both clusters stream, then a clean
	// run: nothing lost, nothing of another cluster.
	stopProd = liveStreamSeeded(prod, 100, 72000)
	stopStaging = liveStreamSeeded(staging, 100, 82000)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 3; i++ {
		h = multiHost(t, ingest, ins, flbhost.Options{})
		require.NoError(t, h.WaitReady(60*time.Second))
		require.NoError(t, h.WaitLog("connected to Teleport", 3, 30*time.Second))
		time.Sleep(time.Duration(1500+rng.Intn(2000)) * time.Millisecond)
		require.NoError(t, h.Kill())
	}
	stopProd()
	stopStaging()
	h = multiHost(t, ingest, ins, flbhost.Options{})
	waitInputs(t, h, ingest, ins, 120*time.Second)
	require.NoError(t, h.Stop())
	for _, in := range ins {
		want := in.rig.expected(in.filter)
		missing, dups, extra := compare(want, uids(t, ingest+"."+in.name))
		assert.Empty(t, missing, "%s: %d of %d events lost", in.name, len(missing), len(want))
		assert.Empty(t, extra, "%s: records of another cluster or filter", in.name)
		t.Logf("%s after 3 kills: %d events, %d duplicates", in.name, len(want), len(dups))
	}
}

// What refuses a second input, each with one line: Fluent Bit before 4.1
// (no Ctx callbacks), a shared storage_dir, a shared name.
func TestSecondInputRefused(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	other := filepath.Join(r.dir, "storage2")
	for _, tc := range []struct {
		name   string
		abi    string
		second [][2]string
		want   string
	}{
		{"Fluent Bit 4.0", "4.0", r.props("storage_dir="+other, "cluster=b"),
			`[error] [input:teleport] teleport input #2 ("b") is refused: teleport input #1 ("a") already runs in this Fluent Bit, and this Fluent Bit calls Go inputs without an instance context (FLBPluginInputCallbackCtx, added in Fluent Bit 4.1); use Fluent Bit 4.1 or later`},
		{"shared storage_dir", "", r.props("cluster=b"),
			`[error] [input:teleport] teleport input #1 ("a") and teleport input #2 ("b") both have storage_dir ` + r.storage + `: give each teleport input its own storage_dir`},
		{"shared name", "", r.props("storage_dir="+other, "cluster=a"),
			`are both named "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := flbhost.Start(flbhost.Options{
				Bin: hostPath, Plugin: pluginPath, ABI: tc.abi,
				Props: append(r.props(), [2]string{"cluster", "a"}), ExtraInstances: [][][2]string{tc.second},
				IntervalMS: 50, Grace: 0.5, MaxSeconds: 60,
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = h.Kill() })
			code, err := h.WaitTimeout(30 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, 1, code)
			assert.Contains(t, h.Log(), tc.want)
			assert.Equal(t, 1, strings.Count(h.Log(), "[error] [input:teleport]"), "one line")
		})
	}
}

// On Fluent Bit before 4.1 one input works as it always did: the
// context-free callbacks reach it.
func TestOneInputOnFluentBit40(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(1000, 24*time.Hour, 701)
	want := r.expected(nil)
	h, err := flbhost.Start(flbhost.Options{
		Bin: hostPath, Plugin: pluginPath, ABI: "4.0", Props: r.props(),
		Ingest: r.ingest, IntervalMS: 50, Grace: 0.5, MaxSeconds: 120,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Kill() })
	r.waitAll(h, want, 60*time.Second)
	require.NoError(t, h.Pause())
	require.NoError(t, h.Resume())
	require.NoError(t, h.Stop())
	assert.Contains(t, h.Log(), "(ABI 4.0;")
	exactlyOnce(t, want, r.ingested())
}

// exit_on_last_event on two inputs: Fluent Bit is asked to stop only once
// both have drained, though the small backlog drains long before the big
// one (given small callbacks).
func TestExitOnLastEventWaitsForEveryInput(t *testing.T) {
	prod := newRig(t, teleportd.Options{})
	staging := newRig(t, teleportd.Options{})
	prod.generate(300, 24*time.Hour, 901)
	staging.generate(6000, 24*time.Hour, 902)
	ingest := filepath.Join(t.TempDir(), "ingest")
	ins := []input{
		{name: "prod", rig: prod, props: prod.props("exit_on_last_event=on")},
		{name: "staging", rig: staging, props: staging.props("exit_on_last_event=on", "callback_bytes=64K")},
	}
	h := multiHost(t, ingest, ins, flbhost.Options{})
	code, err := h.WaitTimeout(120 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "Fluent Bit stopped by itself")
	assert.Contains(t, h.Log(), "[input:teleport:prod] exit_on_last_event: this input is drained; Fluent Bit is asked to stop once the other 1 teleport input(s) are too")
	for _, in := range ins {
		exactlyOnce(t, in.rig.expected(nil), uids(t, ingest+"."+in.name))
	}
}
