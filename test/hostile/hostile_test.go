package hostile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/engine"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// initPath is what FLBPluginInit does: load the configuration, log its
// notices, start the engine. It returns the configuration, the log and the
// error Init would log; a started engine is stopped again.
func initPath(props, env [][2]string) (*conf.Config, string, error) {
	pm, em := map[string]string{}, map[string]string{}
	for _, kv := range props {
		pm[kv[0]] = kv[1]
	}
	for _, kv := range env {
		em[kv[0]] = kv[1]
	}
	var log bytes.Buffer
	logger := logging.New(&log, "input:teleport")
	cfg, notices, err := conf.Load(func(k string) string { return pm[k] }, func(k string) string { return em[k] })
	if err != nil {
		return nil, log.String(), err
	}
	for _, n := range notices {
		logger.Infof("%s", n)
	}
	e, err := engine.Start(cfg, engine.Options{Log: logger})
	if err != nil {
		return cfg, log.String(), err
	}
	return cfg, log.String(), e.Stop()
}

// servers starts the cluster the plugin talks to and a foreign one.
func servers(t *testing.T) (auth, foreign *teleportd.Server) {
	t.Helper()
	auth, err := teleportd.Start(teleportd.Options{})
	require.NoError(t, err)
	t.Cleanup(auth.Close)
	foreign, err = teleportd.Start(teleportd.Options{})
	require.NoError(t, err)
	t.Cleanup(foreign.Close)
	return auth, foreign
}

// TestCorpus runs every case of testdata through the Init path and checks
// its exact outcome: the one error line, or the pass-through; a failing
// Init changes no file that was there before.
func TestCorpus(t *testing.T) {
	cases, err := Load("testdata")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), 40, "issue 7 asks for at least 40 cases")
	auth, foreign := servers(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			fx := Fixture{Dir: t.TempDir(), Addr: auth.Addr(), Auth: auth, Foreign: foreign, Cleanup: t.Cleanup}
			err := c.Prepare(fx)
			if errors.Is(err, ErrNoMount) {
				t.Skipf("%v (the cursor package's write-failure hooks cover this case)", err)
			}
			require.NoError(t, err)
			before, err := Take(fx.Dir)
			require.NoError(t, err)

			done := make(chan struct{})
			var (
				cfg  *conf.Config
				log  string
				ierr error
			)
			go func() {
				defer close(done)
				cfg, log, ierr = initPath(c.Properties(fx), c.Environment(fx))
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("Init hangs (%s)", c.Comment)
			}

			if c.Want.Error != "" {
				require.Error(t, ierr, "Init must fail: %s", c.Comment)
				msg := ierr.Error()
				t.Logf("Init fails: %s", msg)
				assert.NotContains(t, msg, "\n", "one line")
				assert.True(t, fx.Match(c.Want.Error, msg), "error line\n got: %s\nwant: %s", msg, fx.Expand(c.Want.Error))
				after, err := Take(fx.Dir)
				require.NoError(t, err)
				assert.Empty(t, before.Diff(after, c.Want.Changes), "a failing Init leaves the files as they were")
				return
			}
			require.NoError(t, ierr, "Init must pass: %s", c.Comment)
			red := cfg.Redacted()
			for k, v := range c.Want.Fields {
				assert.Equal(t, fx.Expand(v), red[k], "%s", k)
			}
			for _, n := range c.Want.Notices {
				assert.Contains(t, log, "[ info] [input:teleport] "+fx.Expand(n))
			}
		})
	}
}

// TestCorpusCaseFormat keeps the corpus honest: every case says what it is
// about, and names are unique.
func TestCorpusCaseFormat(t *testing.T) {
	cases, err := Load("testdata")
	require.NoError(t, err)
	seen := map[string]bool{}
	e2e := 0
	for _, c := range cases {
		assert.NotEmpty(t, c.Comment, "%s: no comment", c.Name)
		assert.False(t, seen[c.Name])
		seen[c.Name] = true
		if c.E2E {
			e2e++
		}
	}
	assert.GreaterOrEqual(t, e2e, 8, "a few cases also run through the real .so")
}

// A few fixtures the corpus relies on behave as the cases assume.
func TestFixtures(t *testing.T) {
	auth, foreign := servers(t)
	fx := Fixture{Dir: t.TempDir(), Addr: auth.Addr(), Auth: auth, Foreign: foreign}
	c := &Case{}
	for _, d := range []string{"fifo pipe", "symlink dangling $DIR/nowhere", "mkdir d 0755", "identity id -1m", "truncate id 100"} {
		c.Steps = append(c.Steps, Step{Directive: d})
	}
	require.NoError(t, c.Prepare(fx))
	fi, err := os.Lstat(filepath.Join(fx.Dir, "pipe"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type())
	_, err = os.Stat(filepath.Join(fx.Dir, "dangling"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
	fi, err = os.Stat(filepath.Join(fx.Dir, "d"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(fx.Dir, "id"))
	require.NoError(t, err)
	assert.Equal(t, int64(100), fi.Size())
	assert.True(t, fx.Match(`a {{time}} b {{any}}`, "a 2026-01-02T03:04:05Z b x y"))
	assert.False(t, fx.Match(`a "x"`, `a "x" b`))
	assert.True(t, strings.HasPrefix(fx.Expand("$DIR/x"), fx.Dir))
}
