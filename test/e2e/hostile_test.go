package e2e

// Hostile conditions (issue 7) through the real .so: bad input that must
// fail Init with one line and exit 1 leaving every file alone, a full or
// read-only storage_dir in the middle of an export, an identity file
// replaced every second with short-lived certificates, a foreign identity,
// a second process on the same storage_dir, and events no Event Handler
// survived.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/hostile"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// startHost starts a host with props and extra environment, like rig.host.
func startHost(r *rig, props [][2]string, env []string, ingest string) *flbhost.Host {
	r.t.Helper()
	h, err := flbhost.Start(flbhost.Options{Bin: hostPath, Plugin: pluginPath, Props: props, Env: env,
		Ingest: ingest, IntervalMS: 50, Grace: 0.5, MaxSeconds: 120})
	require.NoError(r.t, err)
	r.t.Cleanup(func() {
		_ = h.Kill()
		if r.t.Failed() {
			r.t.Logf("host log:\n%s", tail(h.Log(), 60))
		}
	})
	return h
}

// pluginErrors returns the messages of the plugin's [error] lines.
func pluginErrors(log string) []string {
	const marker = "[error] [input:teleport] "
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, marker); i >= 0 {
			out = append(out, l[i+len(marker):])
		}
	}
	return out
}

// The corpus cases marked e2e fail Init through the real .so: exit 1, the
// exact line once, and every file as it was.
func TestHostileCorpusThroughPlugin(t *testing.T) {
	cases, err := hostile.Load(filepath.Join(flbhost.RepoRoot(), "test", "hostile", "testdata"))
	require.NoError(t, err)
	r := newRig(t, teleportd.Options{})
	foreign, err := teleportd.Start(teleportd.Options{})
	require.NoError(t, err)
	t.Cleanup(foreign.Close)
	n := 0
	for _, c := range cases {
		if !c.E2E {
			continue
		}
		n++
		require.NotEmpty(t, c.Want.Error, "%s: only failing cases run here", c.Name)
		t.Run(c.Name, func(t *testing.T) {
			fx := hostile.Fixture{Dir: t.TempDir(), Addr: r.auth.Addr(), Auth: r.auth, Foreign: foreign, Cleanup: t.Cleanup}
			require.NoError(t, c.Prepare(fx))
			before, err := hostile.Take(fx.Dir)
			require.NoError(t, err)
			var env []string
			for _, kv := range c.Environment(fx) {
				env = append(env, kv[0]+"="+kv[1])
			}
			rr := *r
			rr.t = t
			h := startHost(&rr, c.Properties(fx), env, filepath.Join(t.TempDir(), "ingest"))
			code, err := h.WaitTimeout(20 * time.Second)
			require.NoError(t, err, "Init must not hang: %s", c.Comment)
			assert.Equal(t, 1, code, "Init fails and Fluent Bit exits 1")
			errs := pluginErrors(h.Log())
			require.Len(t, errs, 1, "one error line:\n%s", h.Log())
			assert.True(t, fx.Match(c.Want.Error, errs[0]), "error line\n got: %s\nwant: %s", errs[0], fx.Expand(c.Want.Error))
			assert.Contains(t, h.Log(), flbhost.InitFailedLine)
			after, err := hostile.Take(fx.Dir)
			require.NoError(t, err)
			assert.Empty(t, before.Diff(after, c.Want.Changes), "a failing Init leaves the files as they were")
		})
	}
	assert.GreaterOrEqual(t, n, 8)
}

// An identity of another cluster: Init passes (the file is well-formed),
// the handshake fails with one warning naming the address, nothing is
// exported, the plugin keeps trying and stops cleanly.
func TestHostileForeignIdentity(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(200, time.Hour, 70)
	foreign, err := teleportd.Start(teleportd.Options{})
	require.NoError(t, err)
	t.Cleanup(foreign.Close)
	require.NoError(t, foreign.WriteIdentity(r.identity, time.Hour))
	h := r.host(hostOpts{props: r.props("debug=on")})
	require.NoError(t, h.WaitReady(10*time.Second))
	// The first warning comes once the client gives up its first dial
	// (teleport.Dial's DialTimeout, 15 s).
	require.NoError(t, h.WaitLog("cannot connect to Teleport at "+r.auth.Addr(), 1, 25*time.Second))
	time.Sleep(time.Second) // more attempts, at debug level only
	warn := grepLines(h.Log(), "[ warn]")
	require.Len(t, warn, 1, "one warning for the whole failure streak")
	assert.Regexp(t, `certificate|authority|tls`, warn[0])
	assert.Empty(t, r.ingested())
	require.NoError(t, h.Stop())
	st, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	assert.Equal(t, "", st.Mode, "nothing was exported: the state is still the first run's")
}

func grepLines(log, substr string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// mountTmpfs mounts a tmpfs of size at dir (mode 0700) for the test, or
// skips it where mounting is not permitted.
func mountTmpfs(t *testing.T, dir, size string, flags uintptr) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); engine's TestHostileDiskFull and cursor's write-failure tests cover this", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
}

// storageOutage runs an export, breaks storage_dir while Fluent Bit has
// the input paused, resumes, and checks: hand-over stops (what was taken within the commit
// delay of the failed commit still reaches the output), one error line with reason, the last good
// state on disk untouched; then repairs it and checks everything arrives
// exactly once. breakIt returns a function reading what is on disk under
// the break, and the repair.
func storageOutage(t *testing.T, r *rig, h *flbhost.Host, reason string, breakIt func() (onDisk func() ([]byte, []string), repair func())) {
	t.Helper()
	want := r.expected(nil)
	r.waitCount(h, 500, 30*time.Second)
	require.NoError(t, h.Pause()) // nothing is committed while paused
	good, err := os.ReadFile(filepath.Join(r.storage, "state.json"))
	require.NoError(t, err)
	onDisk, repair := breakIt()
	require.NoError(t, h.Resume())
	require.NoError(t, h.WaitLog("cannot save the cursor", 1, 10*time.Second))
	// What was handed over before the failed commit reaches a chunk with the
	// next ring-buffer collection (250 ms); nothing after it.
	time.Sleep(500 * time.Millisecond)
	stalled := len(r.ingested())
	time.Sleep(time.Second)
	assert.Equal(t, stalled, len(r.ingested()), "nothing is handed over while the cursor cannot be saved")
	assert.Less(t, stalled, len(want))
	state, names := onDisk()
	assert.Equal(t, string(good), string(state), "the last good state is kept")
	for _, n := range names {
		assert.NotContains(t, n, ".tmp-", "no temporary file left behind")
	}
	errs := pluginErrors(h.Log())
	require.Len(t, errs, 1, "said once")
	assert.Contains(t, errs[0], reason)
	assert.Contains(t, errs[0], "the last good state is kept")

	repair()
	require.NoError(t, h.WaitLog("cursor saved again", 1, 10*time.Second))
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
	assert.Equal(t, 1, h.CountLog("cursor saved again"))
	checkPrivate(t, r.storage)
}

// checkPrivate checks that storage_dir is 0700 and every file in it 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "storage_dir")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if e.Name() == "filler" {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s", e.Name())
	}
}

// A full disk under storage_dir in the middle of an export.
func TestHostileDiskFull(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	mountTmpfs(t, r.storage, "128k", 0)
	r.generate(4000, 2*24*time.Hour, 71)
	h := r.host(hostOpts{props: r.props("debug=on", "callback_bytes=64K")})
	storageOutage(t, r, h, "no space left on device", func() (func() ([]byte, []string), func()) {
		require.NoError(t, hostile.Fill(r.storage))
		onDisk := func() ([]byte, []string) {
			b, err := os.ReadFile(filepath.Join(r.storage, "state.json"))
			require.NoError(t, err)
			return b, names(t, r.storage)
		}
		return onDisk, func() { require.NoError(t, os.Remove(filepath.Join(r.storage, "filler"))) }
	})
}

// storage_dir turned read-only in the middle of an export (a read-only
// file system mounted over it: the plugin's lock stays open on the one
// below, as when the kernel remounts a failing disk read-only).
func TestHostileReadOnlyStorage(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(4000, 2*24*time.Hour, 72)
	h := r.host(hostOpts{props: r.props("debug=on", "callback_bytes=64K")})
	storageOutage(t, r, h, "read-only file system", func() (func() ([]byte, []string), func()) {
		// A handle on the directory below the mount, to look at the state
		// the plugin keeps there.
		below, err := os.Open(r.storage)
		require.NoError(t, err)
		t.Cleanup(func() { below.Close() })
		mountTmpfs(t, r.storage, "64k", unix.MS_RDONLY)
		onDisk := func() ([]byte, []string) {
			fd, err := unix.Openat(int(below.Fd()), "state.json", unix.O_RDONLY, 0)
			require.NoError(t, err)
			f := os.NewFile(uintptr(fd), "state.json")
			defer f.Close()
			b := make([]byte, 1<<20)
			n, _ := f.Read(b)
			_, _ = below.Seek(0, 0)
			ns, err := below.Readdirnames(-1)
			require.NoError(t, err)
			return b[:n], ns
		}
		return onDisk, func() { require.NoError(t, unix.Unmount(r.storage, unix.MNT_DETACH)) }
	})
}

func names(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// The identity file is replaced every second by tbot-like renewals with
// certificates valid for three seconds, the Auth Service restarts every
// few seconds (new handshakes need the current certificate), and events
// keep coming: every event arrives exactly once, in one run of the plugin.
func TestHostileIdentityRotation(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	require.NoError(t, r.auth.WriteIdentity(r.identity, 3*time.Second))
	r.generate(2000, 6*time.Hour, 73)
	h := r.host(hostOpts{props: r.props("teleport_refresh_enabled=on", "teleport_refresh_interval=200ms", "debug=on")})
	require.NoError(t, h.WaitReady(10*time.Second))
	pid := h.Pid()
	handshakes := r.auth.Stats().HandshakesOK

	var identities [][]byte
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { // tbot: renew every second, atomically (write aside, rename)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(time.Second):
			}
			renewed := filepath.Join(r.dir, "identity.new")
			if err := r.auth.WriteIdentity(renewed, 3*time.Second); err != nil {
				done <- err
				return
			}
			b, _ := os.ReadFile(renewed)
			mu.Lock()
			identities = append(identities, b)
			mu.Unlock()
			if err := os.Rename(renewed, r.identity); err != nil {
				done <- err
				return
			}
		}
	}()
	for i := 0; i < 4; i++ {
		time.Sleep(2500 * time.Millisecond)
		r.auth.Stop() // every connection drops; the next handshake needs a valid certificate
		r.generate(300, 10*time.Minute, int64(74+i))
		require.NoError(t, r.auth.Restart())
	}
	want := r.expected(nil)
	r.waitCount(h, len(want), 30*time.Second)
	assert.Empty(t, listeners(t, h.Pid()), "refreshing identities opens no listening socket")
	close(stop)
	require.NoError(t, <-done)
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())

	log := h.Log()
	assert.Equal(t, pid, h.Pid())
	assert.Equal(t, 1, strings.Count(log, "first run:"), "one run, never restarted")
	assert.NotContains(t, log, "resuming from")
	assert.NotContains(t, log, "[error]")
	assert.GreaterOrEqual(t, r.auth.Stats().HandshakesOK-handshakes, int64(4), "new handshakes after the restarts")
	mu.Lock()
	defer mu.Unlock()
	assert.GreaterOrEqual(t, len(identities), 8)
	noKeyMaterial(t, log, identities...)
}

// noKeyMaterial fails when the log holds PEM, SSH certificates or any
// line of the given credential files.
func noKeyMaterial(t *testing.T, log string, files ...[]byte) {
	t.Helper()
	for _, bad := range secretMarkers {
		assert.NotContains(t, log, bad)
	}
	for _, f := range files {
		for _, line := range strings.Split(string(f), "\n") {
			if len(line) >= 32 {
				require.NotContains(t, log, line, "credential content in the log")
			}
		}
	}
}

// A second Fluent Bit on the same storage_dir is refused with one line;
// the first one is not disturbed.
func TestHostileSecondProcessRefused(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(3000, 24*time.Hour, 80)
	want := r.expected(nil)
	first := r.host(hostOpts{props: r.props()})
	require.NoError(t, first.WaitReady(10*time.Second))
	state, err := os.ReadFile(filepath.Join(r.storage, "state.json"))
	require.NoError(t, err)

	second := startHost(r, r.props(), nil, filepath.Join(r.dir, "second.msgpack"))
	code, err := second.WaitTimeout(20 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, code)
	lock := filepath.Join(r.storage, "lock")
	assert.Equal(t, []string{fmt.Sprintf("storage_dir %s is in use by another process (lock %s held): two exporters cannot share one storage_dir", r.storage, lock)},
		pluginErrors(second.Log()))
	if fi, err := os.Stat(filepath.Join(r.dir, "second.msgpack")); !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
		assert.Zero(t, fi.Size(), "the second host ingested nothing")
	}
	if now, err := os.ReadFile(filepath.Join(r.storage, "state.json")); err == nil && string(now) != string(state) {
		// The first one saves as it goes; the state is still one of its own.
		_, err := cursor.Peek(r.storage)
		require.NoError(t, err)
	}

	r.waitCount(first, len(want), 30*time.Second)
	require.NoError(t, first.Stop())
	exactlyOnce(t, want, r.ingested())
}

// Events no Event Handler survived, through the real gRPC client (the raw
// wire path) and the real .so: unknown types pass through raw, a 2 MiB event
// is exported whole without stalling what follows, deep nesting becomes
// JSON text past record.MaxDepth, odd keys and values keep their shape; on
// the bulk export and on the search path. Meanwhile the plugin listens on
// nothing.
func TestHostileEventsThroughPlugin(t *testing.T) {
	for _, search := range []bool{false, true} {
		t.Run(map[bool]string{false: "export", true: "search"}[search], func(t *testing.T) {
			r := newRig(t, teleportd.Options{ExportUnimplemented: search})
			at := time.Now().UTC().Add(-2 * time.Hour)
			deep := map[string]any{"bottom": true}
			for i := 0; i < 100; i++ {
				deep = map[string]any{"d": deep}
			}
			big := strings.Repeat("b", 2<<20)
			events := []map[string]any{
				{"event": "x.unknown.v99", "uid": "unknown", "payload": map[string]any{"k": []any{1, "two", nil}}},
				{"event": "user.login", "uid": "big", "blob": big},
				{"event": "user.login", "uid": "after-big"},
				{"event": "user.login", "uid": "deep", "deep": deep},
				{"event": "user.login", "uid": "odd", "": "empty key", "null": nil, "emoji 😀": "ünïcödé \u2028 line", "list": []any{}, "obj": map[string]any{},
					"maxint": math.MaxInt64, "minint": math.MinInt64, "float": 0.1, "neg": -1, "exp": 1e300, "ctl": "a\x00b\x1b[31m"},
				{"event": "", "uid": "no-type"},
				{"uid": "no-event-field"},
			}
			for i, f := range events {
				f["time"] = at.Add(time.Duration(i) * time.Second)
				r.auth.Add(teleportd.Event{Fields: f})
			}
			want := r.expected(nil)
			require.Len(t, want, len(events))
			h := r.host(hostOpts{props: r.props("callback_bytes=64K")})
			r.waitCount(h, len(want), 30*time.Second)
			assert.Empty(t, listeners(t, h.Pid()), "the plugin listens on nothing unless metrics_listen is set")
			require.NoError(t, h.Stop())
			exactlyOnce(t, want, r.ingested())
			assert.Empty(t, pluginErrors(h.Log()))

			recs, _, err := flbhost.ReadIngest(r.ingest)
			require.NoError(t, err)
			m := map[string]map[string]any{}
			for _, rec := range recs {
				m[rec.Body["uid"].(string)] = rec.Body
			}
			assert.Equal(t, "x.unknown.v99", m["unknown"]["event"])
			assert.Equal(t, map[string]any{"k": []any{int64(1), "two", nil}}, m["unknown"]["payload"])
			assert.Equal(t, big, m["big"]["blob"])
			var d any = m["deep"]["deep"]
			for i := 0; i < 64; i++ {
				d = d.(map[string]any)["d"]
			}
			assert.IsType(t, "", d, "JSON text past record.MaxDepth")
			assert.Contains(t, d, "bottom")
			odd := m["odd"]
			assert.Equal(t, "empty key", odd[""])
			assert.Nil(t, odd["null"])
			assert.Contains(t, odd, "null")
			assert.Equal(t, "ünïcödé \u2028 line", odd["emoji 😀"])
			assert.Equal(t, []any{}, odd["list"])
			assert.Equal(t, map[string]any{}, odd["obj"])
			assert.Equal(t, 0.1, odd["float"])
			assert.Equal(t, int64(-1), odd["neg"])
			assert.Equal(t, 1e300, odd["exp"])
			assert.Equal(t, "a\x00b\x1b[31m", odd["ctl"])
			// JSON numbers travel as doubles: 2^63-1 arrives as 2^63, which
			// no int64 holds, and stays a float (as in the Event Handler).
			assert.Equal(t, float64(math.MaxInt64), odd["maxint"])
			assert.Equal(t, int64(math.MinInt64), odd["minint"])
			assert.Equal(t, "", m["no-type"]["event"])
			assert.NotContains(t, m["no-event-field"], "event")
		})
	}
}

// listeners lists the sockets process pid listens on or has bound for
// datagrams: TCP in LISTEN, UDP, UNIX sockets accepting connections.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	require.NoError(t, err)
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6", "unix"} {
		b, err := os.ReadFile("/proc/net/" + f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			switch {
			case f == "unix" && len(fs) >= 7 && inodes[fs[6]] && fs[3] == "00010000": // __SO_ACCEPTCON
				out = append(out, "unix "+strings.Join(fs[7:], " "))
			case strings.HasPrefix(f, "tcp") && len(fs) >= 10 && inodes[fs[9]] && fs[3] == "0A": // LISTEN
				out = append(out, f+" "+fs[1])
			case strings.HasPrefix(f, "udp") && len(fs) >= 10 && inodes[fs[9]]:
				out = append(out, f+" "+fs[1])
			}
		}
	}
	return out
}

// The check itself sees a listener.
func TestHostileListenersHelper(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = filepath.Join(t.TempDir(), "s")
		}
		fd, err := listen(network, addr)
		require.NoError(t, err)
		assert.NotEmpty(t, listeners(t, os.Getpid()), network)
		syscall.Close(fd)
	}
}

func listen(network, addr string) (int, error) {
	if network == "unix" {
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			return 0, err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: addr}); err != nil {
			return 0, err
		}
		return fd, syscall.Listen(fd, 1)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, err
	}
	return fd, syscall.Listen(fd, 1)
}

// Under umask 0 (the most permissive an operator's shell can have), the
// files the plugin and `teleport-fluent-bit configure` create stay private:
// directories 0700 (nested ones too), files 0600, key files included; and
// configure prints no key material.
func TestHostilePrivateFilesUnderUmask0(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(300, time.Hour, 81)
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	// The plugin: a storage_dir three levels deep that does not exist yet.
	storage := filepath.Join(r.dir, "a", "b", "storage")
	h := r.host(hostOpts{props: r.props("storage_dir=" + storage)})
	r.waitCount(h, len(r.expected(nil)), 30*time.Second)
	require.NoError(t, h.Stop())
	for _, d := range []string{filepath.Join(r.dir, "a"), filepath.Join(r.dir, "a", "b")} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "%s, created for storage_dir", d)
	}
	checkPrivate(t, storage)
	assert.ElementsMatch(t, []string{"lock", "memory.bin", "state.json"}, names(t, storage))

	// configure: a new directory with keys, certificates and configurations.
	out, err := runCLI(t, "configure", filepath.Join(r.dir, "conf"), r.auth.Addr(), "--length", "1024")
	require.NoError(t, err, out)
	checkPrivate(t, filepath.Join(r.dir, "conf"))
	keys := 0
	err = filepath.WalkDir(filepath.Join(r.dir, "conf"), func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := d.Info()
		require.NoError(t, err)
		if d.IsDir() {
			assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "%s", p)
			return nil
		}
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s", p)
		if strings.HasSuffix(p, ".key") {
			keys++
		}
		return nil
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, keys, 3, "ca.key, server.key, client.key")
	for _, l := range strings.Split(out, "\n") {
		assert.Empty(t, keyMaterial(l), "configure prints no key material: %s", l)
	}
}

// Wire data no Go Teleport server can send, through the real client and
// .so (the raw export path): NaN and infinite numbers, a key given twice
// (protobuf keeps the last), unknown fields (ignored), an event that is
// only a cursor (an empty record). A string that is not UTF-8 is what
// protobuf refuses: the stream of its chunk fails at that event every time,
// so what precedes it is exported, one warning names the chunk, the chunk
// is retried with backoff, the other chunks are exported, and the plugin
// neither dies nor skips the event (see the issue 7 report: such an event
// holds its chunk, and its day, until the server stops sending it).
func TestHostileWireData(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	fd, err := hostile.StartFaultd(r.auth.Dir())
	require.NoError(t, err)
	t.Cleanup(fd.Close)
	at := time.Now().UTC().Add(-time.Hour)
	num := func(f float64) *structpb.Value { return structpb.NewNumberValue(f) }
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	fd.Chunk(at, "odd",
		hostile.Frame(0, "user.login", "nan", at, map[string]*structpb.Value{"nan": num(math.NaN()), "inf": num(math.Inf(1)), "ninf": num(math.Inf(-1))}, nil),
		hostile.Frame(1, "user.login", "twice", at, map[string]*structpb.Value{"k": structpb.NewStringValue("first")}, hostile.RawField([]byte("k"), []byte("last"))),
		hostile.Frame(2, "user.login", "unknown-field", at, nil, unknown),
		[]byte{0x12, 0x01, '4'}, // cursor "4" and no event at all
		hostile.Frame(4, "user.login", "after", at, nil, nil),
	)
	fd.Chunk(at, "poisoned",
		hostile.Frame(0, "user.login", "p0", at, nil, nil),
		hostile.Frame(1, "user.login", "p1", at, nil, nil),
		hostile.Frame(2, "user.login", "p2-not-utf8", at, nil, hostile.RawField([]byte("bad"), []byte("\xff\xfe\xc3\x28"))),
		hostile.Frame(3, "user.login", "p3", at, nil, nil),
	)
	h := r.host(hostOpts{props: r.props("teleport_addr="+fd.Addr(), "debug=on")})
	require.NoError(t, h.WaitLog("exporting chunk poisoned of", 1, 20*time.Second))
	deadline := time.Now().Add(20 * time.Second)
	for fd.Calls("poisoned") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.GreaterOrEqual(t, fd.Calls("poisoned"), 3, "retried with backoff")
	got := r.waitCount(h, 7, 10*time.Second)
	require.NoError(t, h.Stop())
	assert.ElementsMatch(t, []string{"nan", "twice", "unknown-field", "", "after", "p0", "p1"}, got)

	warn := grepLines(h.Log(), "[ warn]")
	require.Len(t, warn, 1, "one warning for the failure streak:\n%s", h.Log())
	assert.Contains(t, warn[0], "exporting chunk poisoned of "+at.Format("2006-01-02")+" failed, retrying with backoff")
	assert.Contains(t, warn[0], "invalid UTF-8")
	assert.Empty(t, pluginErrors(h.Log()))

	recs, _, err := flbhost.ReadIngest(r.ingest)
	require.NoError(t, err)
	m := map[string]map[string]any{}
	for _, rec := range recs {
		u, _ := rec.Body["uid"].(string)
		m[u] = rec.Body
	}
	assert.True(t, math.IsNaN(m["nan"]["nan"].(float64)))
	assert.True(t, math.IsInf(m["nan"]["inf"].(float64), 1))
	assert.True(t, math.IsInf(m["nan"]["ninf"].(float64), -1))
	assert.Equal(t, "last", m["twice"]["k"], "a key given twice: the last value, as protobuf decodes it")
	assert.Equal(t, "user.login", m["unknown-field"]["event"], "unknown fields are ignored")
	assert.Equal(t, map[string]any{}, m[""], "an event that is only a cursor is an empty record")

	st, err := cursor.Peek(r.storage)
	require.NoError(t, err)
	day := st.Export.Days[at.Format("2006-01-02")]
	require.NotNil(t, day)
	assert.True(t, day.DoneSet.Has("odd"))
	assert.Equal(t, "2", day.Cursors["poisoned"], "the cursor stays before the refused event: nothing skipped")
}
