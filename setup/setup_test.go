package setup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// noDNS resolves nothing, so tests do not depend on the machine's resolver.
func noDNS(context.Context, string) ([]net.IP, error) {
	return nil, errors.New("no such host")
}

// generated is one Configure run shared by the tests that only read it
// (RSA key generation dominates the time).
var generated struct {
	once sync.Once
	dir  string
	res  *Result
	err  error
}

func configured(t *testing.T) (string, *Result) {
	t.Helper()
	generated.once.Do(func() {
		dir, err := os.MkdirTemp("", "setup-test-")
		if err != nil {
			generated.err = err
			return
		}
		generated.dir = filepath.Join(dir, "out")
		generated.res, generated.err = Configure(Options{
			Dir: generated.dir, TeleportAddr: "teleport.example.com:443", Length: 2048,
			DNSNames: []string{"fluentd.example.com", "does-not-resolve.invalid"},
			Fluentd:  "localhost:24224", Plugin: "/opt/tfb/in_teleport.so", Lock: true,
			Resolve: func(_ context.Context, host string) ([]net.IP, error) {
				if host == "localhost" {
					return []net.IP{net.ParseIP("127.0.0.1")}, nil
				}
				return nil, errors.New("no such host")
			},
		})
	})
	require.NoError(t, generated.err)
	return generated.dir, generated.res
}

func TestMain(m *testing.M) {
	code := m.Run()
	if generated.dir != "" {
		os.RemoveAll(filepath.Dir(generated.dir))
	}
	os.Exit(code)
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return b
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(pemBytes)
	require.NotNil(t, b)
	require.Equal(t, "CERTIFICATE", b.Type)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}

// passphraseIn returns the private_key_passphrase a Fluentd config holds.
func passphraseIn(t *testing.T, fluentConf []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*private_key_passphrase "([^"]+)"$`).FindSubmatch(fluentConf)
	require.NotNil(t, m, "no private_key_passphrase")
	return string(m[1])
}

func TestFilesAndModes(t *testing.T) {
	dir, res := configured(t)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "a new directory is 0700")
	var want []string
	for _, f := range Files {
		want = append(want, filepath.Join(dir, f))
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	assert.Equal(t, want, res.Files)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, len(Files), "nothing else (no temporary files) is left")
	assert.Equal(t, []string{"fluentd.example.com does not resolve here; the server certificate names it by DNS name only",
		"does-not-resolve.invalid does not resolve here; the server certificate names it by DNS name only"}, res.Notes)
}

func TestCertificatesChainVerify(t *testing.T) {
	dir, _ := configured(t)
	ca := parseCert(t, read(t, dir, CACertFile))
	server := parseCert(t, read(t, dir, ServerCertFile))
	client := parseCert(t, read(t, dir, ClientCertFile))
	assert.True(t, ca.IsCA)
	assert.Equal(t, 2048, ca.PublicKey.(*rsa.PublicKey).N.BitLen())
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	for _, name := range []string{"fluentd.example.com", "does-not-resolve.invalid", "localhost", "127.0.0.1"} {
		_, err := server.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		assert.NoError(t, err, "server certificate for %s", name)
	}
	_, err := server.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.com"})
	assert.Error(t, err, "a name not asked for is not in the certificate")
	_, err = client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	_, err = client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	assert.Error(t, err, "the client certificate is for clients only")

	// Each key belongs to its certificate; the CA and client keys are plain
	// PKCS#8, the server key is encrypted.
	_, err = tls.X509KeyPair(read(t, dir, CACertFile), read(t, dir, CAKeyFile))
	assert.NoError(t, err)
	_, err = tls.X509KeyPair(read(t, dir, ClientCertFile), read(t, dir, ClientKeyFile))
	assert.NoError(t, err)
	_, err = tls.X509KeyPair(read(t, dir, ServerCertFile), read(t, dir, ServerKeyFile))
	assert.Error(t, err, "server.key is encrypted")
	assert.True(t, time.Until(server.NotAfter) > 87000*time.Hour, "ten years by default")
}

// A TLS server like Fluentd's (server.crt, server.key decrypted with the
// passphrase from fluent.conf, client certificates required and verified
// against ca.crt) accepts client.crt, and rejects a client certificate of
// another CA and a client without one.
func TestMutualTLS(t *testing.T) {
	dir, res := configured(t)
	pass := passphraseIn(t, read(t, dir, FluentdConf))
	assert.Equal(t, res.Passphrase, pass)
	assert.Equal(t, pass, passphraseIn(t, read(t, dir, FluentdHTTP)))
	_, err := DecryptKey(read(t, dir, ServerKeyFile), pass)
	require.NoError(t, err)
	_, err = DecryptKey(read(t, dir, ServerKeyFile), "wrong")
	require.Error(t, err)

	addr, handshakes := serveFluentd(t, dir, pass)
	pool := caPool(t, dir)

	good, err := tls.X509KeyPair(read(t, dir, ClientCertFile), read(t, dir, ClientKeyFile))
	require.NoError(t, err)
	exchange := func(certs []tls.Certificate) (string, error) {
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if certs != nil {
			// Offer the certificate whatever CAs the server names (Go's
			// client would otherwise hold back one of another CA).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return "", err
		}
		// With TLS 1.3 a rejected client certificate shows on the first read.
		return bufio.NewReader(c).ReadString('\n')
	}
	got, err := exchange([]tls.Certificate{good})
	require.NoError(t, err)
	assert.Equal(t, "ack hello\n", got)
	require.NoError(t, <-handshakes)

	_, err = exchange([]tls.Certificate{foreignClientCert(t)})
	assert.Error(t, err, "a client certificate of another CA is rejected")
	assert.ErrorContains(t, <-handshakes, "certificate signed by unknown authority")
	_, err = exchange(nil)
	assert.Error(t, err, "a client without a certificate is rejected")
	assert.ErrorContains(t, <-handshakes, "client didn't provide a certificate")
}

// caPool holds the generated ca.crt.
func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(parseCert(t, read(t, dir, CACertFile)))
	return pool
}

// serveFluentd starts a TLS server like Fluentd's in_forward with
// fluent.conf's <transport tls> (server.crt, server.key decrypted with the
// passphrase, client certificates required and verified against ca.crt) on
// 127.0.0.1. It answers a line with "ack " and the line, and reports each
// handshake's result.
func serveFluentd(t *testing.T, dir, pass string) (string, <-chan error) {
	t.Helper()
	key, err := DecryptKey(read(t, dir, ServerKeyFile), pass)
	require.NoError(t, err)
	server := parseCert(t, read(t, dir, ServerCertFile))
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.Raw}, PrivateKey: key, Leaf: server}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    caPool(t, dir),
		MinVersion:   tls.VersionTLS12,
	})
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	handshakes := make(chan error, 10)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				err := c.(*tls.Conn).Handshake()
				handshakes <- err
				if err != nil {
					return
				}
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "ack "+line)
			}()
		}
	}()
	return lis.Addr().String(), handshakes
}

// foreignClientCert is a client certificate from a CA of its own.
func foreignClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// OpenSSL, which Fluentd (OpenSSL::PKey::RSA.new) and Fluent Bit use,
// reads the encrypted server key with the passphrase.
func TestOpenSSLReadsServerKey(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl binary")
	}
	dir, res := configured(t)
	out, err := exec.Command(openssl, "rsa", "-in", filepath.Join(dir, ServerKeyFile), "-passin", "pass:"+res.Passphrase, "-check", "-noout").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "RSA key ok")
	out, err = exec.Command(openssl, "rsa", "-in", filepath.Join(dir, ServerKeyFile), "-passin", "pass:wrong", "-noout").CombinedOutput()
	assert.Error(t, err, "%s", out)
}

// The TOML loads through the plugin's own loader, with relative paths
// resolved against the file.
func TestTOMLLoadsThroughConf(t *testing.T) {
	dir, _ := configured(t)
	path := filepath.Join(dir, TOMLFile)
	cfg, notices, err := conf.Load(func(k string) string {
		if k == "config" {
			return path
		}
		return ""
	}, nil)
	require.NoError(t, err)
	assert.Empty(t, notices)
	assert.Equal(t, "teleport.example.com:443", cfg.TeleportAddr)
	assert.Equal(t, filepath.Join(dir, "identity"), cfg.Identity)
	assert.Equal(t, filepath.Join(dir, "storage"), cfg.StorageDir)
	assert.True(t, cfg.RefreshEnabled)
	assert.Equal(t, time.Minute, cfg.RefreshInterval)
	assert.True(t, cfg.LockEnabled)
	assert.Equal(t, 5*time.Second, cfg.PollInterval)
	assert.True(t, cfg.StartTime.IsZero())

	// Without --lock, locking stays off; absolute paths are kept.
	files, err := Render(Options{Dir: dir, TeleportAddr: "auth:3025", Identity: "/var/lib/tbot/identity", Storage: "/var/lib/tfb", Resolve: noDNS}, "p")
	require.NoError(t, err)
	other := filepath.Join(t.TempDir(), TOMLFile)
	require.NoError(t, os.WriteFile(other, files[TOMLFile], 0o600))
	cfg, _, err = conf.Load(func(k string) string {
		if k == "config" {
			return other
		}
		return ""
	}, nil)
	require.NoError(t, err)
	assert.False(t, cfg.LockEnabled)
	assert.Equal(t, "/var/lib/tbot/identity", cfg.Identity)
	assert.Equal(t, "/var/lib/tfb", cfg.StorageDir)
	assert.NotContains(t, string(files[RoleFile]), "lock")

	// --start-time: the first run starts there (the compose demo sets it
	// just before its setup makes events, so they are exported).
	start := time.Date(2025, 6, 7, 8, 9, 10, 0, time.FixedZone("x", 3600))
	files, err = Render(Options{Dir: dir, TeleportAddr: "auth:3025", StartTime: start, Resolve: noDNS}, "p")
	require.NoError(t, err)
	assert.Contains(t, string(files[TOMLFile]), "\nstart-time = \"2025-06-07T07:09:10Z\"\n")
	require.NoError(t, os.WriteFile(other, files[TOMLFile], 0o600))
	cfg, _, err = conf.Load(func(k string) string {
		if k == "config" {
			return other
		}
		return ""
	}, nil)
	require.NoError(t, err)
	assert.True(t, cfg.StartTime.Equal(start), "start_time %s", cfg.StartTime)
}

func TestYAMLParses(t *testing.T) {
	dir, _ := configured(t)

	var fb struct {
		Service  map[string]any `yaml:"service"`
		Plugins  []string       `yaml:"plugins"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Filters []map[string]any `yaml:"filters"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(read(t, dir, FluentBitYAML)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&fb))
	assert.Equal(t, []string{"/opt/tfb/in_teleport.so"}, fb.Plugins)
	assert.Equal(t, filepath.Join(dir, "buffer"), fb.Service["storage.path"])
	require.Len(t, fb.Pipeline.Inputs, 1)
	in := fb.Pipeline.Inputs[0]
	assert.Equal(t, "teleport", in["name"])
	assert.Equal(t, AuditTag, in["tag"])
	assert.Equal(t, "filesystem", in["storage.type"])
	assert.Equal(t, filepath.Join(dir, TOMLFile), in["config"])
	require.Len(t, fb.Pipeline.Filters, 1)
	assert.Equal(t, "rewrite_tag", fb.Pipeline.Filters[0]["name"])
	assert.Equal(t, "$"+record.SessionIDField+" ^(.+)$ session.$1.log false", fb.Pipeline.Filters[0]["rule"])
	require.Len(t, fb.Pipeline.Outputs, 1)
	out := fb.Pipeline.Outputs[0]
	assert.Equal(t, "forward", out["name"])
	assert.Equal(t, "localhost", out["host"])
	assert.Equal(t, 24224, out["port"])
	assert.Equal(t, true, out["require_ack_response"])
	assert.Equal(t, "on", out["tls"])
	assert.Equal(t, "on", out["tls.verify"])
	assert.Equal(t, filepath.Join(dir, CACertFile), out["tls.ca_file"])
	assert.Equal(t, filepath.Join(dir, ClientCertFile), out["tls.crt_file"])
	assert.Equal(t, filepath.Join(dir, ClientKeyFile), out["tls.key_file"])

	// The role file: a role and a user, in two documents.
	dec = yaml.NewDecoder(bytes.NewReader(read(t, dir, RoleFile)))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		docs = append(docs, d)
	}
	require.Len(t, docs, 2)
	assert.Equal(t, "role", docs[0]["kind"])
	assert.Equal(t, "user", docs[1]["kind"])
	rules := docs[0]["spec"].(map[string]any)["allow"].(map[string]any)["rules"].([]any)
	assert.Equal(t, []any{
		map[string]any{"resources": []any{"event", "session"}, "verbs": []any{"list", "read"}},
		map[string]any{"resources": []any{"lock"}, "verbs": []any{"create", "update"}},
	}, rules)
	assert.Equal(t, []any{RoleName}, docs[1]["spec"].(map[string]any)["roles"])
}

// section is one [SECTION] of a classic Fluent Bit config.
type section struct {
	name string
	kv   map[string]string
}

func parseClassic(t *testing.T, b []byte) []section {
	t.Helper()
	var out []section
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]"):
			require.Equal(t, trimmed, line, "line %d: a section header starts the line", i+1)
			out = append(out, section{name: trimmed[1 : len(trimmed)-1], kv: map[string]string{}})
		default:
			require.NotEmpty(t, out, "line %d: a key outside any section", i+1)
			require.True(t, strings.HasPrefix(line, "    "), "line %d: keys are indented", i+1)
			f := strings.Fields(trimmed)
			require.GreaterOrEqual(t, len(f), 2, "line %d: key without value", i+1)
			k := strings.ToLower(f[0])
			_, dup := out[len(out)-1].kv[k]
			require.False(t, dup, "line %d: %s given twice", i+1, k)
			out[len(out)-1].kv[k] = strings.TrimSpace(strings.TrimPrefix(trimmed, f[0]))
		}
	}
	return out
}

func TestFluentBitConf(t *testing.T) {
	dir, _ := configured(t)
	secs := parseClassic(t, read(t, dir, FluentBitConf))
	var names []string
	for _, s := range secs {
		names = append(names, s.name)
	}
	require.Equal(t, []string{"SERVICE", "INPUT", "FILTER", "OUTPUT"}, names)
	svc, in, filter, out := secs[0].kv, secs[1].kv, secs[2].kv, secs[3].kv
	assert.Equal(t, filepath.Join(dir, PluginsConf), svc["plugins_file"])
	assert.Equal(t, filepath.Join(dir, "buffer"), svc["storage.path"])
	assert.Equal(t, map[string]string{"name": "teleport", "tag": AuditTag, "storage.type": "filesystem",
		"config": filepath.Join(dir, TOMLFile)}, in)
	assert.Equal(t, "rewrite_tag", filter["name"])
	assert.Equal(t, AuditTag, filter["match"])
	assert.Equal(t, "$recording_session_id ^(.+)$ session.$1.log false", filter["rule"])
	assert.Equal(t, "filesystem", filter["emitter_storage.type"])
	for k, v := range map[string]string{
		"name": "forward", "host": "localhost", "port": "24224", "require_ack_response": "true",
		"tls": "on", "tls.verify": "on", "tls.verify_hostname": "on",
		"tls.ca_file": filepath.Join(dir, CACertFile), "tls.crt_file": filepath.Join(dir, ClientCertFile),
		"tls.key_file": filepath.Join(dir, ClientKeyFile),
	} {
		assert.Equal(t, v, out[k], k)
	}
	// No [PLUGINS] section in the main file (it aborts Fluent Bit 5.1):
	// plugins.conf holds it.
	plugins := parseClassic(t, read(t, dir, PluginsConf))
	require.Len(t, plugins, 1)
	assert.Equal(t, "PLUGINS", plugins[0].name)
	assert.Equal(t, map[string]string{"path": "/opt/tfb/in_teleport.so"}, plugins[0].kv)
}

func TestFluentdConf(t *testing.T) {
	dir, res := configured(t)
	for _, f := range []struct {
		name, typ, port string
	}{{FluentdConf, "forward", "24224"}, {FluentdHTTP, "http", "8888"}} {
		s := string(read(t, dir, f.name))
		assert.Contains(t, s, "  @type "+f.typ+"\n", f.name)
		assert.Contains(t, s, "  port "+f.port+"\n", f.name)
		for _, want := range []string{
			"  <transport tls>\n",
			`    ca_path "` + filepath.Join(dir, CACertFile) + `"` + "\n",
			`    cert_path "` + filepath.Join(dir, ServerCertFile) + `"` + "\n",
			`    private_key_path "` + filepath.Join(dir, ServerKeyFile) + `"` + "\n",
			`    private_key_passphrase "` + res.Passphrase + `"` + "\n",
			"    client_cert_auth true\n",
			"  </transport>\n",
			"<match teleport.**>\n", "<match session.**>\n",
		} {
			assert.Contains(t, s, want, f.name)
		}
		// Balanced directives.
		assert.Equal(t, strings.Count(s, "<source>"), strings.Count(s, "</source>"))
		assert.Equal(t, strings.Count(s, "<match "), strings.Count(s, "</match>"))
	}
}

func TestRefusesToOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	o := Options{Dir: dir, TeleportAddr: "auth:3025", Length: 1024, Resolve: noDNS}
	_, err := Configure(o)
	require.NoError(t, err)
	before := read(t, dir, CACertFile)

	_, err = Configure(o)
	var exists *ExistsError
	require.ErrorAs(t, err, &exists)
	assert.Equal(t, filepath.Join(dir, CACertFile), exists.Path)
	assert.Equal(t, filepath.Join(dir, CACertFile)+" already exists; refusing to overwrite it (use --force to replace every generated file)", err.Error())
	assert.Equal(t, before, read(t, dir, CACertFile))

	o.Force = true
	res, err := Configure(o)
	require.NoError(t, err)
	assert.Len(t, res.Files, len(Files))
	assert.NotEqual(t, before, read(t, dir, CACertFile), "--force replaces")
	fi, err := os.Stat(filepath.Join(dir, CACertFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Any one existing file stops the run before anything is written.
	other := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(other, FluentdConf), []byte("mine"), 0o644))
	o.Dir, o.Force = other, false
	_, err = Configure(o)
	require.ErrorAs(t, err, &exists)
	assert.Equal(t, filepath.Join(other, FluentdConf), exists.Path)
	entries, err := os.ReadDir(other)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
	fi, err = os.Stat(other)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "an existing directory keeps its mode")
}

func TestNames(t *testing.T) {
	// The Fluentd host is added, and ServerVHost (never looked up); IPs given
	// as names become IP SANs; a name that does not resolve is fine.
	var asked []string
	var mu sync.Mutex
	n, err := Options{Dir: "x", TeleportAddr: "a:1", DNSNames: []string{"fluentd", "10.0.0.5", "fluentd"},
		Fluentd: "logs.internal:24224", Resolve: func(_ context.Context, h string) ([]net.IP, error) {
			mu.Lock()
			asked = append(asked, h)
			mu.Unlock()
			if h == "fluentd" {
				return []net.IP{net.ParseIP("172.18.0.3")}, nil
			}
			return nil, errors.New("nxdomain")
		}}.normalize()
	require.NoError(t, err)
	notes := n.resolve()
	assert.Equal(t, []string{"fluentd", "logs.internal", ServerVHost}, n.DNSNames)
	assert.Equal(t, "logs.internal", n.vhost, "a DNS name is checked as it is")
	assert.Equal(t, []string{"logs.internal does not resolve here; the server certificate names it by DNS name only"}, notes)
	assert.Equal(t, "[10.0.0.5 172.18.0.3]", ipsString(n.ips))
	assert.ElementsMatch(t, []string{"fluentd", "logs.internal"}, asked)

	// With --ip, nothing is looked up.
	n, err = Options{Dir: "x", TeleportAddr: "a:1", IPs: []string{"192.0.2.1"}, Resolve: func(context.Context, string) ([]net.IP, error) {
		t.Fatal("looked up")
		return nil, nil
	}}.normalize()
	require.NoError(t, err)
	assert.Empty(t, n.resolve())
	assert.Equal(t, []string{"localhost", ServerVHost}, n.DNSNames, "the Fluentd host")
	assert.Equal(t, "[192.0.2.1]", ipsString(n.ips))
}

func ipsString(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{TeleportAddr: "a:1"}, "no output directory given"},
		{Options{Dir: "d", TeleportAddr: "teleport.example.com"}, `invalid Teleport address "teleport.example.com": expected host:port`},
		{Options{Dir: "d", TeleportAddr: "a:99999"}, `port must be a number from 1 to 65535`},
		{Options{Dir: "d", TeleportAddr: "a:1", Length: 512}, "invalid --length 512: must be one of 1024, 2048, 3072, 4096"},
		{Options{Dir: "d", TeleportAddr: "a:1", TTL: -time.Hour}, "invalid --ttl -1h0m0s: must be positive"},
		{Options{Dir: "d", TeleportAddr: "a:1", IPs: []string{"300.1.1.1"}}, `invalid --ip "300.1.1.1": not an IP address`},
		{Options{Dir: "d", TeleportAddr: "a:1", DNSNames: []string{"bad name"}}, `invalid DNS name "bad name"`},
		{Options{Dir: "d", TeleportAddr: "a:1", Fluentd: "fluentd"}, `invalid Fluentd address (--fluentd) "fluentd"`},
		{Options{Dir: "d", TeleportAddr: "a:1", Plugin: "in_teleport.so"}, "invalid plugin path in_teleport.so: must be absolute"},
		{Options{Dir: `d"x`, TeleportAddr: "a:1"}, "contains a character the generated configuration files cannot carry"},
	} {
		_, err := Configure(tc.o)
		require.Error(t, err, "%+v", tc.o)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "\n")
	}
}

// Whatever --fluentd names, the Fluent Bit configurations check Fluentd's
// certificate for a DNS name it carries (tls.vhost): Fluent Bit before 5.0.6
// matches tls.vhost with OpenSSL's X509_VERIFY_PARAM_set1_host, DNS names
// only, so an IP address there fails on Fluent Bit 3.2 and 4.0. A client
// verifying like Fluent Bit (ca.crt, the vhost, client.crt) gets through to
// a server like Fluentd's; with another CA or another name it does not.
func TestFluentBitVHost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		host  string
		vhost string
	}{
		{name: "DNS name", o: Options{Fluentd: "fluentd.example.com:24224"},
			host: "fluentd.example.com", vhost: "fluentd.example.com"},
		{name: "IPv4 address", o: Options{Fluentd: "127.0.0.1:24224"},
			host: "127.0.0.1", vhost: ServerVHost},
		{name: "IPv6 address", o: Options{Fluentd: "[::1]:24224"},
			host: "::1", vhost: ServerVHost},
		{name: "IP address, --ip only: no other DNS name", o: Options{Fluentd: "127.0.0.1:24224", IPs: []string{"127.0.0.1"}},
			host: "127.0.0.1", vhost: ServerVHost},
		{name: "IP address and --dns-names", o: Options{Fluentd: "127.0.0.1:24224", DNSNames: []string{"fluentd.internal"}},
			host: "127.0.0.1", vhost: ServerVHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Dir, o.TeleportAddr, o.Length, o.Resolve = t.TempDir(), "auth:3025", 1024, noDNS
			res, err := Configure(o)
			require.NoError(t, err)
			dir := res.Dir
			assert.Equal(t, tc.vhost, res.VHost)

			// Both configurations connect to the host and check the vhost.
			secs := parseClassic(t, read(t, dir, FluentBitConf))
			classic := secs[len(secs)-1]
			require.Equal(t, "OUTPUT", classic.name)
			var fb struct {
				Pipeline struct {
					Outputs []map[string]any `yaml:"outputs"`
				} `yaml:"pipeline"`
			}
			require.NoError(t, yaml.Unmarshal(read(t, dir, FluentBitYAML), &fb))
			require.Len(t, fb.Pipeline.Outputs, 1)
			y := fb.Pipeline.Outputs[0]
			assert.Equal(t, tc.host, classic.kv["host"])
			assert.Equal(t, tc.host, y["host"])
			for k, v := range map[string]string{"tls": "on", "tls.verify": "on", "tls.verify_hostname": "on", "tls.vhost": tc.vhost} {
				assert.Equal(t, v, classic.kv[k], "fluent-bit.conf %s", k)
				assert.Equal(t, v, y[k], "fluent-bit.yaml %s", k)
			}

			// The vhost is a DNS name of the server certificate.
			server := parseCert(t, read(t, dir, ServerCertFile))
			assert.Nil(t, net.ParseIP(tc.vhost), "tls.vhost is no IP address")
			assert.Contains(t, server.DNSNames, tc.vhost)
			assert.Contains(t, server.DNSNames, ServerVHost, "every server certificate carries it")

			addr, handshakes := serveFluentd(t, dir, res.Passphrase)
			client, err := tls.X509KeyPair(read(t, dir, ClientCertFile), read(t, dir, ClientKeyFile))
			require.NoError(t, err)
			exchange := func(roots *x509.CertPool, serverName string) error {
				c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName, Certificates: []tls.Certificate{client}})
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, "hello\n"); err != nil {
					return err
				}
				got, err := bufio.NewReader(c).ReadString('\n')
				if err == nil && got != "ack hello\n" {
					err = errors.New("unexpected answer " + got)
				}
				return err
			}
			require.NoError(t, exchange(caPool(t, dir), tc.vhost), "Fluent Bit's check: ca.crt and tls.vhost")
			require.NoError(t, <-handshakes)

			foreign := x509.NewCertPool()
			foreign.AddCert(foreignCA(t))
			err = exchange(foreign, tc.vhost)
			var unknown x509.UnknownAuthorityError
			assert.ErrorAs(t, err, &unknown, "a server certificate of another CA is refused")
			<-handshakes
			err = exchange(caPool(t, dir), "other.example.com")
			var mismatch x509.HostnameError
			assert.ErrorAs(t, err, &mismatch, "the name is checked")
			<-handshakes

			// OpenSSL's own host check, the one Fluent Bit 3.2 and 4.0 make
			// (openssl verify -verify_hostname is X509_VERIFY_PARAM_set1_host):
			// the vhost passes, an IP address given as host name does not.
			openssl, err := exec.LookPath("openssl")
			if err != nil {
				t.Log("no openssl binary: OpenSSL's host check not run")
				return
			}
			verify := func(args ...string) (string, error) {
				args = append(append([]string{"verify", "-CAfile", filepath.Join(dir, CACertFile)}, args...), filepath.Join(dir, ServerCertFile))
				out, err := exec.Command(openssl, args...).CombinedOutput()
				return string(out), err
			}
			out, err := verify("-verify_hostname", tc.vhost)
			assert.NoError(t, err, "%s", out)
			if ip := net.ParseIP(tc.host); ip != nil {
				out, err = verify("-verify_hostname", tc.host)
				assert.Error(t, err)
				assert.Contains(t, out, "hostname mismatch", "what Fluent Bit 3.2 and 4.0 report for tls.vhost %s", tc.host)
				out, err = verify("-verify_ip", tc.host)
				assert.NoError(t, err, "the IP SAN is there (Fluent Bit 5.0.6+ checks it): %s", out)
			}
		})
	}
}

// foreignCA is a CA certificate other than the generated one.
func foreignCA(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(foreignClientCert(t).Certificate[0])
	require.NoError(t, err)
	return c
}

// --cluster: one more teleport input per cluster, each with its own TOML
// file (address, identity, cursor), name and tag, and its recordings
// filter; every input loads through the plugin's loader.
func TestSeveralClusters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	o := Options{Dir: dir, TeleportAddr: "prod.example.com:443", Length: 1024, Resolve: noDNS,
		Clusters: []Cluster{{Name: "staging", Addr: "staging.example.com:443"}, {Name: "eu", Addr: "eu.example.com:3025"}}}
	res, err := Configure(o)
	require.NoError(t, err)
	for _, f := range []string{ClusterTOML("staging"), ClusterTOML("eu")} {
		assert.Contains(t, res.Files, filepath.Join(dir, f))
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}

	var fb struct {
		Service  map[string]any `yaml:"service"`
		Plugins  []string       `yaml:"plugins"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Filters []map[string]any `yaml:"filters"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(read(t, dir, FluentBitYAML)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&fb))
	require.Len(t, fb.Pipeline.Inputs, 3)
	type want struct{ name, addr, identity, storage, tag string }
	wants := []want{
		{"prod.example.com", "prod.example.com:443", "identity", "storage", AuditTag},
		{"staging", "staging.example.com:443", "identity-staging", "storage-staging", AuditTag + ".staging"},
		{"eu", "eu.example.com:3025", "identity-eu", "storage-eu", AuditTag + ".eu"},
	}
	for i, in := range fb.Pipeline.Inputs {
		cfg, _, err := conf.Load(func(k string) string {
			if v, ok := in[k]; ok {
				return fmt.Sprint(v)
			}
			return ""
		}, nil)
		require.NoError(t, err)
		w := wants[i]
		assert.Equal(t, w.name, cfg.Name())
		assert.Equal(t, w.addr, cfg.TeleportAddr)
		assert.Equal(t, filepath.Join(dir, w.identity), cfg.Identity)
		assert.Equal(t, filepath.Join(dir, w.storage), cfg.StorageDir)
		assert.Equal(t, w.tag, in["tag"])
		assert.Equal(t, "filesystem", in["storage.type"])
		require.Len(t, fb.Pipeline.Filters, 3)
		assert.Equal(t, w.tag, fb.Pipeline.Filters[i]["match"], "a recordings filter per tag")
	}
	assert.Contains(t, string(read(t, dir, FluentBitYAML)), MultiClusterReleases)

	secs := parseClassic(t, read(t, dir, FluentBitConf))
	var names []string
	for _, s := range secs {
		names = append(names, s.name)
	}
	require.Equal(t, []string{"SERVICE", "INPUT", "INPUT", "INPUT", "FILTER", "FILTER", "FILTER", "OUTPUT"}, names)
	assert.Equal(t, map[string]string{"name": "teleport", "alias": "eu", "cluster": "eu", "tag": AuditTag + ".eu",
		"storage.type": "filesystem", "config": filepath.Join(dir, ClusterTOML("eu"))}, secs[3].kv)
	assert.Equal(t, AuditTag+".staging", secs[5].kv["match"])
	assert.Equal(t, EmitterName+"_staging", secs[5].kv["emitter_name"])
	assert.Contains(t, string(read(t, dir, RoleFile)), "(also staging, eu)")

	// A second run refuses to replace a cluster's TOML file too.
	require.NoError(t, os.Remove(filepath.Join(dir, CACertFile)))
	for _, f := range Files {
		_ = os.Remove(filepath.Join(dir, f))
	}
	_, err = Configure(o)
	var exists *ExistsError
	require.ErrorAs(t, err, &exists)
	assert.Equal(t, filepath.Join(dir, ClusterTOML("staging")), exists.Path)
}

func TestClusterOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		clusters []Cluster
		want     string
	}{
		{[]Cluster{{"eu", "eu:443"}, {"eu", "eu2:443"}}, `invalid --cluster name "eu": every cluster needs a name of its own`},
		{[]Cluster{{"prod.example.com", "x:443"}}, `invalid --cluster name "prod.example.com": every cluster needs a name of its own (the first is named after its host, prod.example.com)`},
		{[]Cluster{{"eu west", "eu:443"}}, `invalid --cluster name "eu west"`},
		{[]Cluster{{"eu", "eu"}}, `invalid Teleport address of cluster eu "eu": expected host:port`},
	} {
		err := Options{Dir: t.TempDir(), TeleportAddr: "prod.example.com:443", Clusters: tc.clusters}.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// The note for a Fluent Bit receiving instead of Fluentd states the
// in_forward buffer that takes the plugin's largest chunk with the
// default callback_bytes, and what to set with a larger one.
func TestReceiverBufferNote(t *testing.T) {
	dir, _ := configured(t)
	largest := conf.LargestChunk(conf.DefaultCallbackBytes)
	require.Less(t, largest, 6144000, "in_forward's default Buffer_Max_Size takes it")
	want := fmt.Sprintf("%d,%03d,%03d bytes", largest/1000000, largest/1000%1000, largest%1000)
	for _, f := range []string{FluentBitConf, FluentBitYAML} {
		text := strings.Join(strings.Fields(strings.ReplaceAll(string(read(t, dir, f)), "#", "")), " ")
		assert.Contains(t, text, "at most "+want+" with the plugin's default callback_bytes (1000K)", f)
		assert.Regexp(t, `(?i)set buffer_max_size to at least 2,048,000 bytes plus callback_bytes`, text, f)
	}
}
