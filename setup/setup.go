// Package setup is `teleport-fluent-bit configure`: it writes everything
// needed to run the plugin and deliver its records to Fluentd over mutual
// TLS, like `teleport-event-handler configure` and more:
//
//   - ca.crt, ca.key: a CA made for this pipeline;
//   - server.crt, server.key: Fluentd's certificate, the key encrypted
//     (PKCS#8) under a random passphrase that only fluent.conf carries;
//   - client.crt, client.key: Fluent Bit's client certificate;
//   - teleport-fluent-bit-role.yaml: the Teleport role and user (tctl create);
//   - teleport-fluent-bit.toml: the plugin configuration (Event Handler format);
//   - fluent-bit.conf + plugins.conf, and fluent-bit.yaml: Fluent Bit with the
//     plugin, filesystem buffering, the rewrite_tag rule for recordings and
//     out_forward to Fluentd over mutual TLS with acknowledgements;
//   - fluent.conf: Fluentd's in_forward with <transport tls> and
//     client_cert_auth; fluent-http.conf: the Event Handler's in_http variant.
//
// Files are 0600 and a new directory 0700; no existing file is replaced
// without Force.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names of the files Configure writes, relative to the directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
	RoleFile       = "teleport-fluent-bit-role.yaml"
	TOMLFile       = "teleport-fluent-bit.toml"
	FluentBitConf  = "fluent-bit.conf"
	PluginsConf    = "plugins.conf"
	FluentBitYAML  = "fluent-bit.yaml"
	FluentdConf    = "fluent.conf"
	FluentdHTTP    = "fluent-http.conf"
)

// Files lists every file Configure writes, in the order it writes them.
var Files = []string{
	CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile,
	RoleFile, TOMLFile, FluentBitConf, PluginsConf, FluentBitYAML, FluentdConf, FluentdHTTP,
}

// ConfigFiles are the files Render produces (no key material).
var ConfigFiles = []string{RoleFile, TOMLFile, FluentBitConf, PluginsConf, FluentBitYAML, FluentdConf, FluentdHTTP}

// Teleport names used in the generated role file.
const (
	RoleName = "teleport-fluent-bit"
	UserName = "teleport-fluent-bit"
)

// Defaults.
const (
	DefaultLength   = 4096
	DefaultTTL      = 87600 * time.Hour // ten years, like the Event Handler
	DefaultFluentd  = "localhost:24224"
	DefaultPlugin   = "/opt/teleport-fluent-bit/in_teleport.so"
	DefaultIdentity = "identity"
	DefaultStorage  = "storage"
	DefaultBuffer   = "buffer"
	FluentdHTTPPort = 8888
)

// DefaultDNSNames are the server certificate's names when none are given.
var DefaultDNSNames = []string{"localhost"}

// ServerVHost is a DNS name every generated server certificate carries, and
// the name Fluent Bit checks it for (tls.vhost) when --fluentd is an IP
// address. Fluent Bit before 5.0.6 checks tls.vhost (or, without it, the
// Host) with OpenSSL's X509_VERIFY_PARAM_set1_host, which matches DNS names
// only (src/tls/openssl.c, setup_hostname_validation): an IP address there
// never matches the certificate's IP SANs ("hostname mismatch", X509 code
// 62). A DNS name matches on every release. Under .invalid (RFC 6761) it is
// never looked up and names no real host; the CA is this pipeline's own, so
// only the certificate configure made for Fluentd carries it.
const ServerVHost = "fluentd.teleport-fluent-bit.invalid"

// FluentBitReleases are the Fluent Bit releases the generated Fluent Bit
// configurations are for; MultiClusterReleases those with several teleport
// inputs (Options.Clusters): the Go proxy's per-instance callbacks.
const (
	FluentBitReleases    = "Fluent Bit 3.2 and later"
	MultiClusterReleases = "Fluent Bit 4.1 and later"
)

// Cluster is one more Teleport cluster the generated Fluent Bit exports,
// in a teleport input of its own (docs/multiple-clusters.md).
type Cluster struct {
	Name string // the input's alias and cluster key
	Addr string // its Auth Service or Proxy, host:port
}

// ClusterTOML is the plugin configuration file of cluster name.
func ClusterTOML(name string) string { return "teleport-fluent-bit-" + name + ".toml" }

// Options configure Configure. Zero values get the defaults.
type Options struct {
	Dir          string // output directory; created 0700 when missing
	TeleportAddr string // Auth Service or Proxy, host:port

	Length   int           // RSA key size (KeyLengths)
	TTL      time.Duration // certificate lifetime
	DNSNames []string      // server certificate DNS names
	IPs      []string      // server certificate IP addresses
	Force    bool          // replace existing files
	Lock     bool          // lock_enabled in the TOML, lock create/update in the role

	// Fluentd is where Fluent Bit forwards to (host:port); its host is
	// added to the server certificate when missing there.
	Fluentd string
	// Plugin is the path of in_teleport.so in plugins.conf and fluent-bit.yaml.
	Plugin string
	// Identity is the Teleport identity file named in the TOML (relative
	// paths are relative to Dir). Storage is the plugin's storage_dir, also
	// in the TOML. Buffer is Fluent Bit's storage.path (relative: to Dir).
	Identity, Storage, Buffer string
	// StartTime is the TOML's start-time, where the first run starts
	// (zero: unset, the time of the first run).
	StartTime time.Time

	// Clusters are more Teleport clusters, each with its own TOML file
	// (ClusterTOML), identity (Identity-<name>), storage_dir
	// (Storage-<name>) and tag (AuditTag.<name>).
	Clusters []Cluster

	// Resolve looks a server name up, to add its addresses when no IPs are
	// given; nil uses the system resolver. A name that does not resolve is
	// only noted.
	Resolve func(ctx context.Context, host string) ([]net.IP, error)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Result is what Configure did.
type Result struct {
	Dir   string   // absolute
	Files []string // absolute paths written, in order
	// Passphrase of server.key (also in fluent.conf and fluent-http.conf).
	Passphrase string
	DNSNames   []string
	IPs        []net.IP
	// VHost is the name Fluent Bit checks the server certificate for
	// (tls.vhost): the --fluentd host, or ServerVHost when that is an IP
	// address.
	VHost string
	// Notes are lines worth showing (e.g. a name that did not resolve).
	Notes []string
}

// ExistsError is returned when a file exists and Force is off.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already exists; refusing to overwrite it (use --force to replace every generated file)", e.Path)
}

// normalized holds validated options.
type normalized struct {
	Options
	dir         string
	fluentdHost string
	fluentdPort int
	vhost       string // tls.vhost of the generated Fluent Bit configurations
	ips         []net.IP
}

func (o Options) normalize() (*normalized, error) {
	n := &normalized{Options: o}
	if n.Dir == "" {
		return nil, errors.New("no output directory given")
	}
	dir, err := filepath.Abs(n.Dir)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %v", n.Dir, err)
	}
	n.dir = dir
	if err := checkHostPort("Teleport address", n.TeleportAddr, "teleport.example.com:443 or auth.example.com:3025"); err != nil {
		return nil, err
	}
	if n.Length == 0 {
		n.Length = DefaultLength
	}
	if !slices.Contains(KeyLengths, n.Length) {
		return nil, fmt.Errorf("invalid --length %d: must be one of %s", n.Length, joinInts(KeyLengths))
	}
	if n.TTL == 0 {
		n.TTL = DefaultTTL
	}
	if n.TTL < 0 {
		return nil, fmt.Errorf("invalid --ttl %s: must be positive", n.TTL)
	}
	if n.Fluentd == "" {
		n.Fluentd = DefaultFluentd
	}
	if err := checkHostPort("Fluentd address (--fluentd)", n.Fluentd, "fluentd.example.com:24224"); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(n.Fluentd)
	n.fluentdHost = host
	n.fluentdPort, _ = strconv.Atoi(port)
	if n.Plugin == "" {
		n.Plugin = DefaultPlugin
	}
	if !filepath.IsAbs(n.Plugin) {
		return nil, fmt.Errorf("invalid plugin path %s: must be absolute (Fluent Bit resolves it against its own working directory)", n.Plugin)
	}
	if n.Identity == "" {
		n.Identity = DefaultIdentity
	}
	if n.Storage == "" {
		n.Storage = DefaultStorage
	}
	if n.Buffer == "" {
		n.Buffer = DefaultBuffer
	}
	firstHost, _, _ := net.SplitHostPort(n.TeleportAddr)
	seen := map[string]bool{firstHost: true}
	for _, c := range n.Clusters {
		if !clusterName.MatchString(c.Name) {
			return nil, fmt.Errorf("invalid --cluster name %q: must be 1 to 63 letters, digits, '.', '_' or '-'", c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("invalid --cluster name %q: every cluster needs a name of its own (the first is named after its host, %s)", c.Name, firstHost)
		}
		seen[c.Name] = true
		if err := checkHostPort("Teleport address of cluster "+c.Name, c.Addr, "teleport.example.com:443"); err != nil {
			return nil, err
		}
	}
	if !filepath.IsAbs(n.Buffer) {
		n.Buffer = filepath.Join(dir, n.Buffer)
	}
	if n.Now == nil {
		n.Now = time.Now
	}

	// Names: the given ones (or localhost), IPs given as names moved over,
	// then Fluentd's host when missing, then ServerVHost.
	var names []string
	dns := n.DNSNames
	if len(dns) == 0 && len(n.IPs) == 0 {
		dns = DefaultDNSNames
	}
	for _, d := range dns {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		if ip := net.ParseIP(d); ip != nil {
			n.ips = appendIP(n.ips, ip)
			continue
		}
		if err := checkDNSName(d); err != nil {
			return nil, err
		}
		if !slices.Contains(names, d) {
			names = append(names, d)
		}
	}
	for _, s := range n.IPs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("invalid --ip %q: not an IP address", s)
		}
		n.ips = appendIP(n.ips, ip)
	}
	n.vhost = n.fluentdHost
	if ip := net.ParseIP(n.fluentdHost); ip != nil {
		n.ips = appendIP(n.ips, ip)
		n.vhost = ServerVHost
	} else if !slices.Contains(names, n.fluentdHost) {
		if err := checkDNSName(n.fluentdHost); err != nil {
			return nil, err
		}
		names = append(names, n.fluentdHost)
	}
	if !slices.Contains(names, ServerVHost) {
		names = append(names, ServerVHost)
	}
	n.DNSNames = names

	for _, p := range []struct{ what, v string }{
		{"output directory", n.dir}, {"plugin path", n.Plugin}, {"identity path", n.Identity},
		{"storage path", n.Storage}, {"buffer path", n.Buffer}, {"Teleport address", n.TeleportAddr},
	} {
		if strings.ContainsAny(p.v, "\"\\#\n\r\t${}") {
			return nil, fmt.Errorf("%s %q contains a character the generated configuration files cannot carry (one of \" \\ # $ { } or a control character)", p.what, p.v)
		}
	}
	return n, nil
}

func checkHostPort(what, v, example string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("invalid %s %q: expected host:port, such as %s", what, v, example)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("invalid %s %q: port must be a number from 1 to 65535", what, v)
	}
	return nil
}

// checkDNSName accepts what a certificate can carry as a DNS name
// (letters, digits, hyphens, dots, underscores and a leading "*."); whether
// it resolves does not matter.
func checkDNSName(s string) error {
	body := strings.TrimPrefix(s, "*.")
	if body == "" || len(s) > 253 {
		return fmt.Errorf("invalid DNS name %q", s)
	}
	for _, label := range strings.Split(body, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid DNS name %q: empty or overlong label", s)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("invalid DNS name %q: %q is not allowed", s, r)
			}
		}
	}
	return nil
}

func appendIP(ips []net.IP, ip net.IP) []net.IP {
	for _, have := range ips {
		if have.Equal(ip) {
			return ips
		}
	}
	return append(ips, ip)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// resolve adds the addresses of the DNS names when no IP was given, like
// the Event Handler, so that Fluentd can also be reached by address. A name
// that does not resolve (yet: a container that is not up, a name only the
// clients' DNS knows) is noted, never an error.
func (n *normalized) resolve() []string {
	if len(n.IPs) > 0 {
		return nil
	}
	lookup := n.Resolve
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]net.IP, error) {
			addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
			ips := make([]net.IP, len(addrs))
			for i, a := range addrs {
				ips[i] = a.IP
			}
			return ips, err
		}
	}
	type answer struct {
		ips []net.IP
		err error
	}
	answers := make([]answer, len(n.DNSNames))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan struct{})
	for i, name := range n.DNSNames {
		go func() {
			defer func() { done <- struct{}{} }()
			if strings.HasPrefix(name, "*.") || name == ServerVHost {
				return
			}
			ips, err := lookup(ctx, name)
			answers[i] = answer{ips, err}
		}()
	}
	for range n.DNSNames {
		<-done
	}
	var notes []string
	for i, name := range n.DNSNames {
		a := answers[i]
		if name == ServerVHost {
			continue
		}
		if a.err != nil || (len(a.ips) == 0 && !strings.HasPrefix(name, "*.")) {
			notes = append(notes, fmt.Sprintf("%s does not resolve here; the server certificate names it by DNS name only", name))
			continue
		}
		for _, ip := range a.ips {
			n.ips = appendIP(n.ips, ip)
		}
	}
	return notes
}

// Validate checks o as Configure would, without writing or generating
// anything.
func (o Options) Validate() error {
	_, err := o.normalize()
	return err
}

// Configure writes the certificates and configuration files into o.Dir. It
// checks every file first: when one exists and Force is off, it writes
// nothing and returns an *ExistsError naming it.
func Configure(o Options) (*Result, error) {
	n, err := o.normalize()
	if err != nil {
		return nil, err
	}
	if err := prepareDir(n.dir); err != nil {
		return nil, err
	}
	if !n.Force {
		for _, f := range n.files() {
			p := filepath.Join(n.dir, f)
			if _, err := os.Lstat(p); err == nil {
				return nil, &ExistsError{Path: p}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: %v", p, bare(err))
			}
		}
	}
	notes := n.resolve()

	passphrase, err := newPassphrase()
	if err != nil {
		return nil, err
	}
	auth, err := generate(n.Length, n.TTL, n.DNSNames, n.ips, n.Now())
	if err != nil {
		return nil, err
	}
	caKey, err := auth.ca.keyPEM()
	if err != nil {
		return nil, err
	}
	serverKey, err := encryptedKeyPEM(auth.server.key, passphrase)
	if err != nil {
		return nil, fmt.Errorf("encrypting the server key: %w", err)
	}
	clientKey, err := auth.client.keyPEM()
	if err != nil {
		return nil, err
	}
	configs, err := n.render(passphrase)
	if err != nil {
		return nil, err
	}
	contents := map[string][]byte{
		CACertFile:     auth.ca.certPEM(),
		CAKeyFile:      caKey,
		ServerCertFile: auth.server.certPEM(),
		ServerKeyFile:  serverKey,
		ClientCertFile: auth.client.certPEM(),
		ClientKeyFile:  clientKey,
	}
	for k, v := range configs {
		contents[k] = v
	}

	res := &Result{Dir: n.dir, Passphrase: passphrase, DNSNames: n.DNSNames, IPs: n.ips, VHost: n.vhost, Notes: notes}
	for _, f := range n.files() {
		p := filepath.Join(n.dir, f)
		if err := writeFile(p, contents[f], n.Force); err != nil {
			return res, err
		}
		res.Files = append(res.Files, p)
	}
	return res, nil
}

// Render returns the configuration files (not the key material) Configure
// would write for o, with passphrase standing for the server key's. It is
// how the examples under deploy/ are produced and checked.
func Render(o Options, passphrase string) (map[string][]byte, error) {
	n, err := o.normalize()
	if err != nil {
		return nil, err
	}
	return n.render(passphrase)
}

// prepareDir creates dir 0700 when missing; an existing directory is left
// as it is (the files in it are 0600 anyway).
func prepareDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("output directory %s: %v", dir, bare(err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create output directory %s: %v", dir, bare(err))
	}
	return os.Chmod(dir, 0o700)
}

// writeFile writes data to path with mode 0600. Without force it refuses an
// existing file (O_EXCL, so a file that appeared since the check is not
// replaced either); with force it replaces it atomically.
func writeFile(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return &ExistsError{Path: path}
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %v", path, bare(err))
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("cannot write %s: %v", path, bare(err))
		}
		return os.Chmod(path, 0o600)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %v", path, bare(err))
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot write %s: %v", path, bare(err))
	}
	return nil
}

func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// clusterName is the plugin's rule for the cluster key.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// files is Files plus the TOML file of every further cluster.
func (n *normalized) files() []string {
	out := slices.Clone(Files)
	for _, c := range n.Clusters {
		out = append(out, ClusterTOML(c.Name))
	}
	return out
}
