package e2e

// Issue 7: no secret or key material in any log line at any level, over the
// logs of every host the whole e2e suite starts. Every host appends its
// stderr to a file in logDir (flbhost.LogDirEnv, set below before any test
// runs, build/e2e-host-logs/PID); TestZZNoKeyMaterialInAnyHostLog, the last test of the package
// (files run in name order), scans them all. To make the scan independent
// of test order and -run filters, TestMain can call scanHostLogs after
// m.Run() (see the note in the issue 7 report).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/flbhost"
)

var logDir string

// init points flbhost.LogDirEnv at build/e2e-host-logs/PID, after removing
// the directories of earlier runs that are gone (a run filtered with -run
// never reaches the scan that removes its own).
func init() {
	if d := os.Getenv(flbhost.LogDirEnv); d != "" {
		logDir = d
		return
	}
	base := filepath.Join(flbhost.RepoRoot(), "build", "e2e-host-logs")
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	d := filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return
	}
	logDir = d
	os.Setenv(flbhost.LogDirEnv, d)
}

// secretMarkers never appear in a log line: PEM armour, private keys,
// SSH certificates.
var secretMarkers = []string{
	"-----BEGIN", "-----END", "PRIVATE KEY", "CERTIFICATE-----",
	"-cert-v01@openssh.com", "ssh-rsa AAAA", "ecdsa-sha2-nistp256 AAAA", "ssh-ed25519 AAAA",
}

// base64Run is what key and certificate material looks like once its PEM
// armour is gone: a long run of base64 mixing upper case, lower case and
// digits.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{64,}={0,2}`)

var tmpPath = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/[^\s"',;:)]*`)

// keyMaterial returns why line looks like it carries key material, or "".
func keyMaterial(line string) string {
	for _, m := range secretMarkers {
		if strings.Contains(line, m) {
			return m
		}
	}
	// Test paths (t.TempDir: the test's name and digits) are no key.
	line = tmpPath.ReplaceAllString(line, "")
	for _, run := range base64Run.FindAllString(line, -1) {
		if strings.ContainsAny(run, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(run, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(run, "0123456789") {
			return "a base64 run of " + fmt.Sprint(len(run)) + " characters"
		}
	}
	return ""
}

// scanHostLogs checks every collected host log; it returns the offending
// lines and how many logs and lines it read.
func scanHostLogs() (bad []string, logs, lines int, err error) {
	if logDir == "" {
		return nil, 0, 0, nil
	}
	files, err := filepath.Glob(filepath.Join(logDir, "flbhost-*.log"))
	if err != nil {
		return nil, 0, 0, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, 0, err
		}
		logs++
		for _, l := range strings.Split(string(b), "\n") {
			lines++
			if why := keyMaterial(l); why != "" {
				bad = append(bad, fmt.Sprintf("%s: %s: %.300s", filepath.Base(f), why, l))
			}
		}
	}
	return bad, logs, lines, nil
}

func TestZZNoKeyMaterialInAnyHostLog(t *testing.T) {
	bad, logs, lines, err := scanHostLogs()
	if err != nil {
		t.Fatal(err)
	}
	if logs == 0 {
		t.Skip("no host ran in this invocation")
	}
	t.Logf("scanned %d lines of %d host logs", lines, logs)
	for _, b := range bad {
		t.Error(b)
	}
	if !t.Failed() && os.Getenv("KEEP_HOST_LOGS") == "" {
		os.RemoveAll(logDir)
	}
}

// The scanner finds what it is meant to find.
func TestKeyMaterialScanner(t *testing.T) {
	for _, l := range []string{
		"[debug] -----BEGIN RSA PRIVATE KEY-----",
		"cert: ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIB",
		"MIIBkTCB+wIJAKHHIGx3nh1UMA0GCSqGSIb3DQEBCwUAMA0xCzAJBgNVBAYTAlVTMB4XDTE5",
	} {
		if keyMaterial(l) == "" {
			t.Errorf("not flagged: %s", l)
		}
	}
	for _, l := range []string{
		"[2026/11/22 10:00:00] [ info] [input:teleport] connected to Teleport cluster \"acc\" (Teleport 17.2.0) at 127.0.0.1:3025",
		"[ warn] [input:teleport] exporting chunk 20261118-000001 of 2026-11-18 failed, retrying with backoff: rpc error: code = Unavailable",
		"invalid batch \"" + strings.Repeat("9", 200) + "...\": must be an integer",
		"state file " + os.TempDir() + "/TestHostileCorpusThroughPluginidentityexpiredwithrefreshAndMore1234567890/001/storage/state.json is corrupt",
	} {
		if why := keyMaterial(l); why != "" {
			t.Errorf("flagged (%s): %s", why, l)
		}
	}
}
