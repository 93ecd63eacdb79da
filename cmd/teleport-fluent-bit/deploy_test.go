package main

import (
	"bufio"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/setup"
)

var update = flag.Bool("update", false, "rewrite the examples under deploy/ from the templates")

// ExamplePassphrase stands for server.key's passphrase in the examples.
const examplePassphrase = "PASSPHRASE-WRITTEN-BY-CONFIGURE"

// exampleFiles maps each configuration file configure writes to its
// example under deploy/.
var exampleFiles = map[string]string{
	setup.FluentBitConf: "deploy/fluent-bit/fluent-bit.conf",
	setup.PluginsConf:   "deploy/fluent-bit/plugins.conf",
	setup.FluentBitYAML: "deploy/fluent-bit/fluent-bit.yaml",
	setup.TOMLFile:      "deploy/fluent-bit/teleport-fluent-bit.toml",
	setup.FluentdConf:   "deploy/fluentd/fluent.conf",
	setup.FluentdHTTP:   "deploy/fluentd/fluent-http.conf",
	setup.RoleFile:      "deploy/teleport/teleport-fluent-bit-role.yaml",
}

// composeConfigureArgs returns the arguments of the configure command the
// docker-compose setup service runs (deploy/compose/setup.sh).
func composeConfigureArgs(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "deploy/compose/setup.sh"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[0] == "teleport-fluent-bit" && fields[1] == "configure" {
			return fields[2:]
		}
	}
	t.Fatal("no `teleport-fluent-bit configure` line in deploy/compose/setup.sh")
	return nil
}

// The examples under deploy/ are exactly what configure writes for the
// docker-compose setup (with a placeholder passphrase): docker compose runs
// deploy/fluent-bit/fluent-bit.yaml, so it must match what setup.sh makes.
func TestDeployExamplesAreGenerated(t *testing.T) {
	root := repoRoot(t)
	o, err := parseConfigure(composeConfigureArgs(t, root), io.Discard)
	require.NoError(t, err)
	// The demo's --start-time now is the time setup.sh runs; the example
	// TOML leaves start-time unset, as configure does without the flag.
	require.False(t, o.StartTime.IsZero(), "setup.sh sets start-time, so the setup's own events are exported")
	o.StartTime = time.Time{}
	files, err := setup.Render(o, examplePassphrase)
	require.NoError(t, err)
	for name, example := range exampleFiles {
		path := filepath.Join(root, example)
		if *update {
			require.NoError(t, os.WriteFile(path, files[name], 0o644))
			continue
		}
		have, err := os.ReadFile(path)
		require.NoError(t, err, "run go test ./cmd/teleport-fluent-bit -run TestDeployExamplesAreGenerated -update")
		require.Equal(t, string(files[name]), string(have),
			"%s differs from what configure writes (%s); regenerate with go test ./cmd/teleport-fluent-bit -run TestDeployExamplesAreGenerated -update", example, name)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
}
