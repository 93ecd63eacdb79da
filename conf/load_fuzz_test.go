package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad feeds Load fuzzed properties, FDFWD_ variables (both as
// key=value lines) and a TOML file. Load must never panic; an error is one
// non-empty line; a configuration it accepts holds every value within its
// bounds, names a source for every key, and loads the same again.
// Seeds: testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	f.Add("teleport_addr=a:3025\nteleport_identity=/id\nstorage_dir=/s", "", "")
	f.Add("", "FDFWD_TELEPORT_ADDR=a:1\nFDFWD_TELEPORT_IDENTITY=/id\nFDFWD_STORAGE=/s", "")
	f.Add("config=FILE", "", "storage = \"./s\"\n[teleport]\naddr = \"a:1\"\nidentity = \"id\"\n")
	f.Add("config=FILE\nbatch=7", "FDFWD_BATCH=8", "batch = 9\n[forward.fluentd]\nurl = \"x\"\n")
	f.Add("timeout=1s\npoll_interval=2s", "", "")
	f.Add("callback_bytes=16M\nqueue_bytes=1G", "", "")
	f.Add("", "", "[[teleport]]\naddr = 1")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, props, env, tomlText string) {
		pm := parseKV(props)
		em := parseKV(env)
		if tomlText != "" || pm["config"] == "FILE" {
			path := filepath.Join(dir, "c.toml")
			if err := os.WriteFile(path, []byte(tomlText), 0o600); err != nil {
				t.Fatal(err)
			}
			pm["config"] = path
		} else if strings.ContainsAny(pm["config"]+em["FDFWD_CONFIG"], "\r\n") {
			// A file name is repeated as it is; the logger folds lines.
			return
		}
		if c := pm["config"] + em["FDFWD_CONFIG"]; c != "" && !strings.HasPrefix(c, dir) {
			// Never read an arbitrary file of the machine (a device, a pipe).
			delete(pm, "config")
			delete(em, "FDFWD_CONFIG")
		}
		prop := func(k string) string { return pm[k] }
		envf := func(k string) string { return em[k] }

		cfg, notices, err := Load(prop, envf)
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if cfg != nil {
				t.Fatal("a config with an error")
			}
			return
		}
		for _, n := range notices {
			if strings.ContainsAny(n, "\n\r") {
				t.Fatalf("notice is not one line: %q", n)
			}
		}
		checkBounds(t, cfg)
		for _, d := range keyDefs {
			if cfg.Sources[d.prop] == "" {
				t.Fatalf("no source for %s", d.prop)
			}
		}
		if s := cfg.String(); strings.ContainsAny(s, "\n\r") {
			t.Fatalf("String is not one valid line: %q", s)
		}
		again, _, err := Load(prop, envf)
		if err != nil || again.String() != cfg.String() {
			t.Fatalf("Load is not deterministic: %v\n%s\n%s", err, cfg, again)
		}
	})
}

// parseKV reads key=value lines; a line without "=" is a key with an empty
// value.
func parseKV(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(l, "=")
		if k != "" {
			m[k] = v
		}
	}
	return m
}

// checkBounds fails when an accepted value is outside what the engine
// relies on.
func checkBounds(t *testing.T, c *Config) {
	t.Helper()
	switch {
	case c.TeleportAddr == "" || c.StorageDir == "":
		t.Fatalf("accepted without teleport_addr or storage_dir: %s", c)
	case c.Identity == "" && (c.Cert == "" || c.Key == "" || c.CA == ""):
		t.Fatalf("accepted without complete credentials: %s", c)
	case c.Identity != "" && (c.Cert != "" || c.Key != "" || c.CA != ""):
		t.Fatalf("accepted with two kinds of credentials: %s", c)
	case c.RefreshEnabled && c.Identity == "":
		t.Fatalf("refresh without an identity file: %s", c)
	case c.Batch < 1 || c.Batch > MaxBatch:
		t.Fatalf("batch %d", c.Batch)
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		t.Fatalf("concurrency %d", c.Concurrency)
	case c.SessionMaxAttempts < 1 || c.LockFailedAttempts < 1:
		t.Fatalf("attempts %d %d", c.SessionMaxAttempts, c.LockFailedAttempts)
	case c.CallbackBytes < MinCallbackBytes || c.QueueBytes < MinQueueBytes:
		t.Fatalf("sizes %d %d", c.CallbackBytes, c.QueueBytes)
	case c.LockFor < 0:
		t.Fatalf("lock_for %s", c.LockFor)
	}
	for name, d := range map[string]time.Duration{
		"window_size": c.WindowSize, "poll_interval": c.PollInterval,
		"teleport_refresh_interval": c.RefreshInterval, "session_give_up_after": c.SessionGiveUpAfter,
		"session_retry_interval": c.SessionRetryInterval, "lock_period": c.LockPeriod,
		"progress_interval": c.ProgressInterval,
	} {
		if d <= 0 {
			t.Fatalf("%s %s", name, d)
		}
	}
	for _, p := range []string{c.Identity, c.Cert, c.Key, c.CA, c.StorageDir} {
		if strings.ContainsRune(p, 0) {
			t.Fatalf("a path with a NUL: %q", p)
		}
	}
	if y := c.StartTime.UTC().Year(); !c.StartTime.IsZero() && (y < 1 || y > 9999) {
		t.Fatalf("start_time %s", c.StartTime)
	}
}
