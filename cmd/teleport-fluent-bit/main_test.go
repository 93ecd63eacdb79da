package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/setup"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// cli runs the command line and returns stdout, stderr and the error main
// would exit 1 with.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// stand is a Teleport stand-in with an identity for the default bot user.
type stand struct {
	auth     *teleportd.Server
	dir      string
	identity string
	storage  string
}

func newStand(t *testing.T, opts teleportd.Options) *stand {
	t.Helper()
	dir := t.TempDir()
	opts.Dir = filepath.Join(dir, "auth")
	auth, err := teleportd.Start(opts)
	require.NoError(t, err)
	t.Cleanup(auth.Close)
	s := &stand{auth: auth, dir: dir, identity: filepath.Join(dir, "identity"), storage: filepath.Join(dir, "storage")}
	require.NoError(t, auth.WriteIdentity(s.identity, 2*time.Hour))
	return s
}

// props are -p flags for the stand-in, extra key=value pairs overriding.
func (s *stand) props(extra ...string) []string {
	kv := map[string]string{"teleport_addr": s.auth.Addr(), "teleport_identity": s.identity, "storage_dir": s.storage}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, "=")
		kv[k] = v
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, "-p", k+"="+kv[k])
	}
	return args
}

// lines returns the output lines starting with prefix.
func lines(out, prefix string) []string {
	var l []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			l = append(l, line)
		}
	}
	return l
}

func TestCheckPasses(t *testing.T) {
	for _, unimpl := range []bool{false, true} {
		s := newStand(t, teleportd.Options{ExportUnimplemented: unimpl})
		now := time.Now().UTC()
		s.auth.Generate(teleportd.GenSpec{Start: now.Add(-2 * time.Hour), Count: 50, Span: time.Hour, Seed: 1, ChunkSize: 20})
		out, _, err := cli(t, append([]string{"check", "--timeout", "10s"}, s.props()...)...)
		require.NoError(t, err, out)
		assert.Empty(t, lines(out, "error:"), out)
		assert.Contains(t, out, "ok:      configuration loaded from properties and environment: teleport_addr "+s.auth.Addr())
		assert.Contains(t, out, "ok:      storage_dir "+s.storage+" does not exist yet")
		assert.Contains(t, out, "ok:      credentials: identity file "+s.identity+", certificate valid until ")
		assert.Contains(t, out, `ok:      connected to Teleport cluster "acc" (Teleport 17.2.0) at `+s.auth.Addr())
		assert.Contains(t, out, "ok:      the role can list audit events (SearchUnstructuredEvents: newest of the last 24h is ")
		assert.Contains(t, out, "ok:      the role can read session recordings")
		if unimpl {
			assert.Contains(t, out, "note:    bulk export unavailable (the Auth Service does not implement GetEventExportChunks), search will be used")
		} else {
			assert.Regexp(t, `ok: +bulk export available \(GetEventExportChunks: \d+ chunk\(s\) today\)`, out)
		}
		assert.NotContains(t, out, "lock_enabled")
	}
}

// The TOML configure writes is what check reads, as the plugin would.
func TestCheckConfigFile(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	dir := filepath.Join(s.dir, "cfg")
	_, errOut, err := cli(t, "configure", dir, s.auth.Addr(), "--length", "1024", "--identity", s.identity, "--lock")
	require.NoError(t, err, errOut)
	toml := filepath.Join(dir, setup.TOMLFile)
	out, _, err := cli(t, "check", "--config", toml)
	require.NoError(t, err, out)
	assert.Contains(t, out, "configuration loaded from config file "+toml)
	assert.Contains(t, out, "storage_dir "+filepath.Join(dir, "storage")+" does not exist yet")
	// The stand-in cannot show the identity's roles, and check places no
	// lock to find out: it says so, without failing.
	assert.Contains(t, out, "warning: lock_enabled: lock rights not verified (no lock is placed to test them; reading the identity's roles failed: ")
	assert.Contains(t, out, "the role needs resources ['lock'] with verbs ['create', 'update']")
	assert.Empty(t, s.auth.Locks(), "check placed no lock")
	assert.NotContains(t, out, "callback_bytes", "nothing to say about the default")

	// Properties override the file, as in Fluent Bit.
	out, _, err = cli(t, "check", "--config", toml, "-p", "storage_dir="+filepath.Join(s.dir, "elsewhere"), "-p", "lock_enabled=off", "-p", "callback_bytes=16M")
	require.NoError(t, err, out)
	assert.Contains(t, out, "storage_dir "+filepath.Join(s.dir, "elsewhere"))
	assert.NotContains(t, out, "lock_enabled")
	// A callback_bytes over what Fluent Bit's receivers take by default:
	// said, not refused.
	assert.Contains(t, out, "warning: callback_bytes 16MiB: a chunk can reach 18,825,216 bytes")
}

func TestCheckWrongAddress(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	start := time.Now()
	out, _, err := cli(t, append([]string{"check", "--timeout", "5s"}, s.props("teleport_addr="+addr)...)...)
	require.EqualError(t, err, "check: 1 problem(s) found")
	errs := lines(out, "error:")
	require.Len(t, errs, 1, out)
	assert.Equal(t, "error:   cannot connect to Teleport at "+addr+": connection refused: nothing listens there (the address should be the Auth Service, :3025, or the Proxy Service, :443)", errs[0])
	assert.Less(t, time.Since(start), 3*time.Second, "a refused connection fails at once")
	assert.NotContains(t, out, "connected to Teleport cluster")
}

func TestCheckExpiredIdentity(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	require.NoError(t, s.auth.WriteIdentity(s.identity, -time.Minute))

	out, _, err := cli(t, append([]string{"check"}, s.props()...)...)
	require.Error(t, err)
	errs := lines(out, "error:")
	require.Len(t, errs, 1, out)
	assert.Regexp(t, `^error: +teleport_identity `+s.identity+`: certificate expired at \S+; renew it`, errs[0])

	// With refresh the plugin would start and wait for tbot; check still
	// says the certificate is expired and does not try to connect.
	out, _, err = cli(t, append([]string{"check"}, s.props("teleport_refresh_enabled=on")...)...)
	require.Error(t, err)
	errs = lines(out, "error:")
	require.Len(t, errs, 1, out)
	assert.Regexp(t, `^error: +identity file `+s.identity+`: certificate expired at \S+; renew it \(tbot or tctl auth sign\); not connecting`, errs[0])
	assert.Zero(t, s.auth.Stats().Ping)
}

func TestCheckRoleWithoutRights(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	s.auth.SetAccess(teleportd.DefaultUser, teleportd.Access{ReadSessions: true})
	out, _, err := cli(t, append([]string{"check"}, s.props()...)...)
	require.EqualError(t, err, "check: 2 problem(s) found")
	errs := lines(out, "error:")
	require.Len(t, errs, 2, out)
	assert.Contains(t, errs[0], "error:   the role cannot list audit events (SearchUnstructuredEvents: access denied to perform action \"list\" on \"event\"): allow resources ['event', 'session'] with verbs ['list', 'read']")
	assert.Contains(t, errs[1], "error:   the role cannot list audit events (GetEventExportChunks: ")
	assert.Contains(t, out, "ok:      the role can read session recordings")

	s.auth.SetAccess(teleportd.DefaultUser, teleportd.Access{ListEvents: true})
	out, _, err = cli(t, append([]string{"check"}, s.props()...)...)
	require.EqualError(t, err, "check: 1 problem(s) found")
	errs = lines(out, "error:")
	require.Len(t, errs, 1, out)
	assert.Contains(t, errs[0], "error:   the role cannot read session recordings (StreamUnstructuredSessionEvents: access denied to perform action \"read\" on \"session\")")
}

func TestCheckConfigurationProblems(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	// A bad value: the plugin's own line.
	out, _, err := cli(t, append([]string{"check"}, s.props("batch=0")...)...)
	require.Error(t, err)
	assert.Equal(t, []string{`error:   invalid batch "0": must be between 1 and 10000`}, lines(out, "error:"))

	// A misspelled property: named like the plugin names it.
	out, _, err = cli(t, append([]string{"check"}, s.props("addr=x:1")...)...)
	require.Error(t, err)
	assert.Equal(t, []string{`error:   unknown property "addr": did you mean "teleport_addr"?`}, lines(out, "error:"))

	// An unknown one: refused by the command line already.
	_, errOut, err := cli(t, append([]string{"check"}, s.props("nonsense=1")...)...)
	require.Error(t, err)
	assert.Contains(t, errOut, `unknown property "nonsense"`)

	// A start_time other than the stored one.
	st, err := cursor.Open(s.storage)
	require.NoError(t, err)
	require.NoError(t, st.Save(cursor.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))))
	require.NoError(t, st.Close())
	out, _, err = cli(t, append([]string{"check"}, s.props("start_time=2024-02-01T00:00:00Z")...)...)
	require.Error(t, err)
	errs := lines(out, "error:")
	require.Len(t, errs, 1, out)
	assert.Contains(t, errs[0], "start_time 2024-02-01T00:00:00Z differs from 2024-01-01T00:00:00Z fixed on the first run in "+s.storage)
	assert.Contains(t, errs[0], "cursor set --storage "+s.storage+" --start-time 2024-02-01T00:00:00Z")
	out, _, err = cli(t, append([]string{"check"}, s.props("start_time=2024-01-01T00:00:00Z")...)...)
	require.NoError(t, err, out)
	assert.Contains(t, out, "ok:      storage_dir "+s.storage+": start_time 2024-01-01T00:00:00Z; nothing exported yet")
}

func TestLockRights(t *testing.T) {
	role := func(name string, allow, deny []types.Rule) types.Role {
		r, err := types.NewRole(name, types.RoleSpecV6{Allow: types.RoleConditions{Rules: allow}, Deny: types.RoleConditions{Rules: deny}})
		require.NoError(t, err)
		return r
	}
	events := types.Rule{Resources: []string{"event", "session"}, Verbs: []string{"list", "read"}}
	lock := types.Rule{Resources: []string{"lock"}, Verbs: []string{"create", "update"}}

	v, why := lockRights([]types.Role{role("tfb", []types.Rule{events, lock}, nil)})
	assert.Equal(t, rightsGranted, v)
	assert.Equal(t, "role tfb", why)

	v, why = lockRights([]types.Role{role("a", []types.Rule{events, {Resources: []string{"lock"}, Verbs: []string{"create"}}}, nil),
		role("b", []types.Rule{{Resources: []string{"*"}, Verbs: []string{"update"}}}, nil)})
	assert.Equal(t, rightsGranted, v)
	assert.Equal(t, "role a, b", why)

	v, why = lockRights([]types.Role{role("tfb", []types.Rule{events}, nil)})
	assert.Equal(t, rightsDenied, v)
	assert.Equal(t, "no role of the identity allows lock create", why)

	v, why = lockRights([]types.Role{role("tfb", []types.Rule{events, lock}, nil), role("no", nil, []types.Rule{{Resources: []string{"lock"}, Verbs: []string{"*"}}})})
	assert.Equal(t, rightsDenied, v)
	assert.Equal(t, "role no denies lock create", why)

	v, why = lockRights([]types.Role{role("tfb", []types.Rule{events, {Resources: []string{"lock"}, Verbs: []string{"create", "update"}, Where: `equals(resource.metadata.name, "x")`}}, nil)})
	assert.Equal(t, rightsUnknown, v)
	assert.Contains(t, why, "role tfb has a rule with a where clause for lock create")
}

func TestCursorSetAndReset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	st := cursor.New(old)
	st.Mode, st.Search = cursor.ModeSearch, &cursor.Search{WindowStart: old.Add(48 * time.Hour), LastID: "u9"}
	st.Sessions = map[string]*cursor.Session{"s1": {Next: 3, Announced: old}}
	st.Locking = &cursor.Locking{Pending: map[string]time.Time{"mallory": old}}
	store, err := cursor.Open(dir)
	require.NoError(t, err)
	require.NoError(t, store.Save(st))
	// What the plugin remembers to drop events stored twice.
	require.NoError(t, store.SaveMemory(&cursor.Memory{Events: []uint64{1, 2}}))

	// Refused while the storage is held (here by this process, as the
	// plugin in Fluent Bit would hold it).
	_, _, err = cli(t, "cursor", "set", "--storage", dir, "--start-time", "2025-03-01T00:00:00Z", "--yes")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cursor set: storage_dir "+dir+" is in use")
	assert.Contains(t, err.Error(), "stop Fluent Bit (or the export) using it first")
	_, _, err = cli(t, "cursor", "reset", "--storage", dir, "--yes")
	require.ErrorContains(t, err, "is in use")
	// show works meanwhile.
	out, errOut, err := cli(t, "cursor", "show", "--storage", dir)
	require.NoError(t, err)
	assert.Contains(t, out, `"last_id": "u9"`)
	assert.Contains(t, errOut, "is in use by a running plugin")
	require.NoError(t, store.Close())

	// Without --yes nothing changes.
	out, _, err = cli(t, "cursor", "set", "--storage", dir, "--start-time", "2025-03-01T00:00:00Z")
	require.EqualError(t, err, "cursor set: nothing changed: run again with --yes to replace the state")
	assert.Contains(t, out, "now:   start_time 2024-01-01T00:00:00Z; search resumes in the window starting 2024-01-03T00:00:00Z after event u9; 1 session recordings in progress; locks pending for mallory\n")
	assert.Contains(t, out, "after: start_time 2025-03-01T00:00:00Z; nothing exported yet; locks pending for mallory\n")
	got, err := cursor.Peek(dir)
	require.NoError(t, err)
	assert.Equal(t, "u9", got.Search.LastID)

	out, _, err = cli(t, "cursor", "set", "--storage", dir, "--start-time", "2025-03-01T00:00:00+02:00", "--yes")
	require.NoError(t, err)
	assert.Contains(t, out, "saved: the next run exports events from 2025-02-28T22:00:00Z on.")
	got, err = cursor.Peek(dir)
	require.NoError(t, err)
	assert.True(t, got.StartTime.Equal(time.Date(2025, 2, 28, 22, 0, 0, 0, time.UTC)))
	assert.Nil(t, got.Search)
	assert.Empty(t, got.Sessions)
	assert.Contains(t, got.Locking.Pending, "mallory")
	fi, err := os.Stat(filepath.Join(dir, "state.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, err = os.Stat(filepath.Join(dir, "memory.bin"))
	assert.True(t, os.IsNotExist(err), "the memory of events handed over is forgotten: they are to be exported again")

	// reset: start again from the stored start time.
	got.Mode, got.Search = cursor.ModeSearch, &cursor.Search{WindowStart: got.StartTime.Add(time.Hour)}
	store, err = cursor.Open(dir)
	require.NoError(t, err)
	require.NoError(t, store.Save(got))
	require.NoError(t, store.Close())
	_, _, err = cli(t, "cursor", "reset", "--storage", dir)
	require.ErrorContains(t, err, "run again with --yes")
	out, _, err = cli(t, "cursor", "reset", "--storage", dir, "--yes")
	require.NoError(t, err)
	assert.Contains(t, out, "saved: the next run exports events from 2025-02-28T22:00:00Z on.")
	got, err = cursor.Peek(dir)
	require.NoError(t, err)
	assert.Empty(t, got.Mode)
	assert.True(t, got.StartTime.Equal(time.Date(2025, 2, 28, 22, 0, 0, 0, time.UTC)))

	// Bad input.
	_, _, err = cli(t, "cursor", "set", "--storage", dir, "--start-time", "yesterday", "--yes")
	assert.EqualError(t, err, `cursor set: invalid --start-time "yesterday": must be an RFC 3339 time such as 2024-01-02T15:04:05Z`)
	_, _, err = cli(t, "cursor", "set", "--storage", dir, "--yes")
	assert.ErrorContains(t, err, "--start-time is required")
	missing := filepath.Join(t.TempDir(), "none")
	_, _, err = cli(t, "cursor", "reset", "--storage", missing, "--yes")
	assert.EqualError(t, err, "cursor reset: "+missing+" does not exist")
	_, _, err = cli(t, "cursor", "frob", "--storage", dir)
	assert.ErrorContains(t, err, `unknown subcommand "frob"`)

	// set on a fresh directory creates the first state.
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, _, err = cli(t, "cursor", "set", "--storage", fresh, "--start-time", "2023-05-05T05:05:05Z", "--yes")
	require.NoError(t, err)
	got, err = cursor.Peek(fresh)
	require.NoError(t, err)
	assert.Equal(t, "start_time 2023-05-05T05:05:05Z; nothing exported yet", got.Summary())
}

// exportLines decodes the JSON lines export wrote.
func exportLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		recs = append(recs, m)
	}
	return recs
}

// uids returns the sorted uids of the audit events among recs (session
// recordings carry recording_session_id).
func uids(recs []map[string]any) []string {
	var out []string
	for _, r := range recs {
		if _, rec := r["recording_session_id"]; !rec {
			out = append(out, r["uid"].(string))
		}
	}
	sort.Strings(out)
	return out
}

func TestExport(t *testing.T) {
	for _, unimpl := range []bool{false, true} {
		s := newStand(t, teleportd.Options{ExportUnimplemented: unimpl})
		start := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(time.Hour)
		end := time.Now().UTC().Add(-time.Minute)
		s.auth.Generate(teleportd.GenSpec{Start: end.Add(-48 * time.Hour), Count: 3000, Span: 48 * time.Hour, Seed: 5, ChunkSize: 500})
		want := s.auth.UIDsInRange(start, time.Now().Add(time.Hour), nil)
		sort.Strings(want)
		props := s.props("start_time="+start.Format(time.RFC3339), "exit_on_last_event=on", "poll_interval=200ms")

		// Without --commit: every event, and no cursor saved.
		out, errOut, err := cli(t, append([]string{"export"}, props...)...)
		require.NoError(t, err, errOut)
		recs := exportLines(t, out)
		require.Equal(t, want, uids(recs), "every event once")
		for _, r := range recs {
			assert.NotEmpty(t, r["event"])
			assert.NotEmpty(t, r["time"])
			assert.NotContains(t, r, "record", "the raw event, not wrapped")
		}
		assert.Contains(t, errOut, "dry run: cursor not saved")
		st, err := cursor.Peek(s.storage)
		require.NoError(t, err)
		assert.Nil(t, st, "no cursor without --commit")

		// With --commit: the same events, and the cursor moves past them.
		out, errOut, err = cli(t, append([]string{"export", "--commit"}, props...)...)
		require.NoError(t, err, errOut)
		require.Equal(t, want, uids(exportLines(t, out)))
		assert.Regexp(t, `\d+ records written; cursor saved`, errOut)
		st, err = cursor.Peek(s.storage)
		require.NoError(t, err)
		require.NotNil(t, st)
		assert.True(t, st.StartTime.Equal(start))

		// A second committed run has nothing new; new events come next.
		out, _, err = cli(t, append([]string{"export", "--commit"}, props...)...)
		require.NoError(t, err)
		assert.Empty(t, exportLines(t, out))
		before := len(s.auth.UIDsInRange(start, time.Now().Add(time.Hour), nil))
		s.auth.Generate(teleportd.GenSpec{Start: time.Now().UTC().Add(-30 * time.Second), Count: 40, Span: 20 * time.Second, Seed: 6, ChunkSize: 500})
		added := s.auth.UIDsInRange(start, time.Now().Add(time.Hour), nil)
		out, _, err = cli(t, append([]string{"export", "--commit"}, props...)...)
		require.NoError(t, err)
		assert.Len(t, uids(exportLines(t, out)), len(added)-before)
	}
}

func TestExportRefusesContradictionsAndBusyStorage(t *testing.T) {
	s := newStand(t, teleportd.Options{})
	_, _, err := cli(t, append([]string{"export", "--commit"}, s.props("dry_run=on")...)...)
	assert.EqualError(t, err, "export: --commit and dry_run contradict each other: drop one")

	store, err := cursor.Open(s.storage)
	require.NoError(t, err)
	defer store.Close()
	_, _, err = cli(t, append([]string{"export"}, s.props("exit_on_last_event=on")...)...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "export: storage_dir "+s.storage+" is in use")
}

func TestConfigureCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	out, _, err := cli(t, "configure", dir, "auth.example.com:3025", "--length", "1024", "--dns-names", "fluentd.internal",
		"--ip", "192.0.2.10", "--fluentd", "fluentd.internal:24224", "--plugin", "/opt/x/in_teleport.so")
	require.NoError(t, err)
	for _, f := range setup.Files {
		assert.Contains(t, out, "wrote "+filepath.Join(dir, f)+"\n")
	}
	assert.Contains(t, out, "server certificate names: fluentd.internal, "+setup.ServerVHost+", 192.0.2.10\n")
	assert.Contains(t, out, "Fluent Bit checks Fluentd's certificate for fluentd.internal (tls.vhost)\n")
	assert.Contains(t, out, "fluent-bit.conf and fluent-bit.yaml are for Fluent Bit 3.2 and later\n")
	assert.Contains(t, out, "requires\n     client certificates only from 5.0 on: tls.verify_client_cert on")
	assert.Contains(t, out, "tctl create -f "+filepath.Join(dir, setup.RoleFile))
	assert.Contains(t, out, "teleport-fluent-bit check --config "+filepath.Join(dir, setup.TOMLFile))

	// Fluentd by IP address: Fluent Bit checks the name every server
	// certificate carries, and configure says why.
	ipDir := filepath.Join(t.TempDir(), "ip")
	out, _, err = cli(t, "configure", ipDir, "auth.example.com:3025", "--length", "1024", "--ip", "192.0.2.10", "--fluentd", "192.0.2.10:24224")
	require.NoError(t, err)
	assert.Contains(t, out, "server certificate names: "+setup.ServerVHost+", 192.0.2.10\n")
	assert.Contains(t, out, "Fluent Bit checks Fluentd's certificate for "+setup.ServerVHost+" (tls.vhost): --fluentd is an IP address, which Fluent Bit before 5.0.6 never matches\n")
	conf, err := os.ReadFile(filepath.Join(ipDir, setup.FluentBitConf))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "    Host                  192.0.2.10\n")
	assert.Contains(t, string(conf), "    tls.vhost             "+setup.ServerVHost+"\n")

	_, _, err = cli(t, "configure", dir, "auth.example.com:3025", "--length", "1024")
	assert.EqualError(t, err, "configure: "+filepath.Join(dir, setup.CACertFile)+" already exists; refusing to overwrite it (use --force to replace every generated file)")
	_, _, err = cli(t, "configure", "--force", dir, "auth.example.com:3025", "--length", "1024")
	assert.NoError(t, err)

	_, errOut, err := cli(t, "configure", dir)
	assert.EqualError(t, err, "configure: expected DIR and TELEPORT_ADDR, got 1 argument(s)")
	assert.Contains(t, errOut, "usage: teleport-fluent-bit configure DIR TELEPORT_ADDR")
	_, _, err = cli(t, "configure", dir, "auth.example.com", "--force")
	assert.ErrorContains(t, err, `configure: invalid Teleport address "auth.example.com": expected host:port`)
}

// export --session writes one recording as the plugin would, from servers
// with or without the unstructured recording RPC; cursor show lists the
// recordings given up and says how to write one.
func TestExportSessionAndGivenUp(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		s := newStand(t, teleportd.Options{RecordingsUnimplemented: legacy})
		const sid = "9a7c0000-0000-4000-8000-0000000000aa"
		s.auth.GenerateRecording(sid, 50, 3)
		out, errOut, err := cli(t, append([]string{"export", "--session", sid}, s.props("skip_session_types=,")...)...)
		require.NoError(t, err, errOut)
		recs := exportLines(t, out)
		require.Len(t, recs, 50, "legacy %v", legacy)
		for i, r := range recs {
			assert.Equal(t, sid, r["recording_session_id"])
			assert.Equal(t, float64(i), r["ei"])
		}
		assert.Contains(t, errOut, "50 records written")
		assert.Equal(t, legacy, strings.Contains(errOut, "answers Unimplemented"), errOut)
		st, err := cursor.Peek(s.storage)
		require.NoError(t, err)
		assert.Nil(t, st, "no cursor touched")

		_, _, err = cli(t, append([]string{"export", "--session", "no-such-session"}, s.props()...)...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "export --session no-such-session: 0 records written, then:")
		assert.Contains(t, err.Error(), "not found")
	}

	s := newStand(t, teleportd.Options{})
	store, err := cursor.Open(s.storage)
	require.NoError(t, err)
	st := cursor.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	st.Apply(&cursor.Pos{Kind: cursor.PosSessionDone, ID: "s-1", GivenUp: &cursor.GivenUp{Reason: "exporting the recording failed 5 times", At: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), Next: 4}})
	require.NoError(t, store.Save(st))
	require.NoError(t, store.Close())
	out, errOut, err := cli(t, "cursor", "show", "--storage", s.storage)
	require.NoError(t, err)
	assert.Contains(t, out, `"given_up": [`)
	assert.Contains(t, out, `"session_id": "s-1"`)
	assert.Contains(t, out, `"reason": "exporting the recording failed 5 times"`)
	assert.Contains(t, out, `"at": "2025-01-02T00:00:00Z"`)
	assert.Contains(t, errOut, "note: 1 session recordings were given up")
	assert.Contains(t, errOut, "export --config FILE --session s-1")
}

// configure --cluster: one more input per cluster, said in the output.
func TestConfigureSeveralClusters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	out, _, err := cli(t, "configure", dir, "prod.example.com:443", "--length", "1024",
		"--cluster", "staging=staging.example.com:443", "--cluster", "eu=eu.example.com:3025")
	require.NoError(t, err)
	for _, name := range []string{"staging", "eu"} {
		assert.Contains(t, out, "wrote "+filepath.Join(dir, setup.ClusterTOML(name))+"\n")
	}
	assert.Contains(t, out, "cluster staging (staging.example.com:443): create the same role and user there, and give it an identity at "+
		filepath.Join(dir, "identity-staging")+" ("+filepath.Join(dir, setup.ClusterTOML("staging"))+")\n")
	assert.Contains(t, out, "fluent-bit.conf and fluent-bit.yaml are for Fluent Bit 4.1 and later\n")

	_, errOut, err := cli(t, "configure", filepath.Join(t.TempDir(), "bad"), "prod.example.com:443", "--cluster", "staging")
	require.Error(t, err)
	assert.Contains(t, errOut, `invalid value "staging" for flag -cluster: expected NAME=ADDR`)
	_, _, err = cli(t, "configure", filepath.Join(t.TempDir(), "dup"), "prod.example.com:443", "--cluster", "a=a:443", "--cluster", "a=b:443")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `invalid --cluster name "a": every cluster needs a name of its own`)
}

func TestCursorImportEventHandler(t *testing.T) {
	// An Event Handler storage as its state.go writes it (diskv: one file
	// per key in <storage>/<host>_<port>/).
	eh := filepath.Join(t.TempDir(), "event-handler")
	hp := filepath.Join(eh, "teleport.example.com_443")
	require.NoError(t, os.MkdirAll(hp, 0o755))
	write := func(name, v string) { require.NoError(t, os.WriteFile(filepath.Join(hp, name), []byte(v), 0o644)) }
	write("start_time", "2024-05-01T10:00:00Z")
	write("cursor", "k1")
	write("id", "u7")
	dir := filepath.Join(t.TempDir(), "storage")

	_, _, err := cli(t, "cursor", "import-event-handler", "--storage", dir)
	require.ErrorContains(t, err, "the Event Handler's storage directory is required")

	out, _, err := cli(t, "cursor", "import-event-handler", eh, "--storage", dir)
	require.NoError(t, err)
	assert.Contains(t, out, "Event Handler state: "+hp+" (search from start_time (cursor, id))\n")
	assert.Contains(t, out, "note: the Event Handler's position is a key of its search (SearchUnstructuredEvents from 2024-05-01T10:00:00Z)")
	assert.Contains(t, out, "saved: the next run resumes where the Event Handler stopped")
	got, err := cursor.Peek(dir)
	require.NoError(t, err)
	require.Len(t, got.Search.Windows, 1)
	assert.Equal(t, "u7", got.Search.Windows[0].LastID)
	assert.Equal(t, "k1", got.Search.Windows[0].Key)
	_, errOut, err := cli(t, "cursor", "show", "--storage", dir)
	require.NoError(t, err)
	assert.Contains(t, errOut, "resumes: start_time 2024-05-01T10:00:00Z; search resumes in the window starting 2024-05-01T10:00:00Z (up to ")
	assert.Contains(t, errOut, ") after event u7\n")

	// A state already there is replaced only with --yes.
	write("id", "u8")
	_, _, err = cli(t, "cursor", "import-event-handler", eh, "--storage", dir)
	require.ErrorContains(t, err, "holds a state already")
	require.ErrorContains(t, err, "run again with --yes to replace it")
	got, err = cursor.Peek(dir)
	require.NoError(t, err)
	assert.Equal(t, "u7", got.Search.Windows[0].LastID)
	_, _, err = cli(t, "cursor", "import-event-handler", hp, "--storage", dir, "--yes")
	require.NoError(t, err)
	got, err = cursor.Peek(dir)
	require.NoError(t, err)
	assert.Equal(t, "u8", got.Search.Windows[0].LastID)

	// A file it cannot understand: one line naming it, nothing written.
	write("session"+"abc", "xyz")
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, _, err = cli(t, "cursor", "import-event-handler", eh, "--storage", fresh)
	require.EqualError(t, err, "cursor import-event-handler: "+filepath.Join(hp, "sessionabc")+": 3 bytes, expected an 8-byte big-endian recording index")
	_, err = os.Stat(fresh)
	assert.True(t, os.IsNotExist(err), "nothing created")

	// Refused while a plugin holds the storage.
	require.NoError(t, os.Remove(filepath.Join(hp, "sessionabc")))
	store, err := cursor.Open(dir)
	require.NoError(t, err)
	defer store.Close()
	_, _, err = cli(t, "cursor", "import-event-handler", eh, "--storage", dir, "--yes")
	require.ErrorContains(t, err, "is in use")
}
