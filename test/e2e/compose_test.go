package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// setupConfigureArgs are the flags of the configure command the compose
// demo's setup service runs (deploy/compose/setup.sh), as flag -> value.
func setupConfigureArgs(t *testing.T) map[string]string {
	f, err := os.Open(filepath.Join(flbhost.RepoRoot(), "deploy/compose/setup.sh"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[0] != "teleport-fluent-bit" || fields[1] != "configure" {
			continue
		}
		flags := map[string]string{}
		for i := 4; i < len(fields); i++ {
			name := strings.TrimLeft(fields[i], "-")
			if i+1 < len(fields) && !strings.HasPrefix(fields[i+1], "-") {
				flags[name] = fields[i+1]
				i++
			} else {
				flags[name] = "true"
			}
		}
		return flags
	}
	t.Fatal("no configure line in deploy/compose/setup.sh")
	return nil
}

// The compose demo with the stand-ins: the setup's configure (its flags, with
// local paths and addresses), then the events its tctl commands make, then
// Fluent Bit with the TOML configure wrote. The setup's events arrive with
// no further step, and after a restart (docker compose down/up) only what is
// new, once. The demo's Teleport keeps its audit log in files, which answer
// the bulk export NotImplemented: the plugin searches.
func TestComposeDemoExportsTheSetupEvents(t *testing.T) {
	r := newRig(t, teleportd.Options{ExportUnimplemented: true})
	flags := setupConfigureArgs(t)
	require.Equal(t, "now", flags["start-time"], "setup.sh starts the export just before it makes events")
	dir := filepath.Join(r.dir, "config")
	flags["storage"] = filepath.Join(r.dir, "state")
	flags["buffer"] = filepath.Join(r.dir, "buffer")
	flags["plugin"] = pluginPath
	flags["identity"] = r.identity
	flags["fluentd"] = "127.0.0.1:24224" // the demo's name resolves only inside compose
	flags["dns-names"] = "localhost"
	args := []string{"configure", dir, r.auth.Addr()}
	for k, v := range flags {
		args = append(args, "--"+k+"="+v)
	}
	out, err := runCLI(t, args...)
	require.NoError(t, err, out)

	// tctl create (role and user), tctl auth sign: what setup.sh makes.
	now := time.Now().UTC()
	setupEvents := []string{"setup-role-" + now.Format("150405.000"), "setup-user-" + now.Format("150405.000"), "setup-cert-" + now.Format("150405.000")}
	for i, typ := range []string{"role.created", "user.create", "cert.create"} {
		r.auth.Add(teleportd.Event{Fields: map[string]any{"event": typ, "uid": setupEvents[i], "time": now.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano), "user": "admin"}})
	}

	props := r.props("teleport_addr=", "teleport_identity=", "storage_dir=", "start_time=", "poll_interval=",
		"config="+filepath.Join(dir, "teleport-fluent-bit.toml"))
	h := r.host(hostOpts{props: props})
	r.waitAll(h, setupEvents, 60*time.Second) // "within a minute of docker compose up"
	require.NoError(t, h.Stop())
	exactlyOnce(t, setupEvents, r.ingested())

	// docker compose down, up: setup.sh signs the identity again.
	later := "setup-cert-again"
	r.auth.Add(teleportd.Event{Fields: map[string]any{"event": "cert.create", "uid": later, "time": time.Now().UTC().Format(time.RFC3339Nano), "user": "admin"}})
	h = r.host(hostOpts{props: props})
	want := append(setupEvents, later)
	r.waitAll(h, want, 60*time.Second)
	time.Sleep(time.Second) // nothing more comes
	require.NoError(t, h.Stop())
	exactlyOnce(t, want, r.ingested())
}
