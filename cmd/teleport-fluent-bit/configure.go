package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/setup"
)

const configureSynopsis = `configure DIR TELEPORT_ADDR [flags]

Writes into DIR (created 0700; every file 0600; nothing is replaced without --force):
  ca.crt ca.key                  a CA for the Fluent Bit -> Fluentd link
  server.crt server.key          Fluentd's certificate; the key is encrypted, its
                                 passphrase is in fluent.conf
  client.crt client.key          Fluent Bit's client certificate
  teleport-fluent-bit-role.yaml  the Teleport role and user (tctl create -f)
  teleport-fluent-bit.toml       the plugin configuration (TELEPORT_ADDR, identity)
  fluent-bit.conf plugins.conf   Fluent Bit: the teleport input, rewrite_tag for
  fluent-bit.yaml                recordings, forward to Fluentd over mutual TLS
  fluent.conf                    Fluentd: in_forward with TLS and client_cert_auth
  fluent-http.conf               Fluentd: the Event Handler's in_http variant
  teleport-fluent-bit-NAME.toml  with --cluster NAME=ADDR (repeatable, Fluent Bit 4.1
                                 and later): one more Teleport cluster, its own
                                 teleport input (identity-NAME, storage-NAME)`

func configureCmd(args []string, stdout, stderr io.Writer) error {
	o, err := parseConfigure(args, stderr)
	if err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("configure: %v", err)
	}
	fmt.Fprintf(stdout, "generating RSA %d keys and certificates...\n", o.Length)
	res, err := setup.Configure(o)
	var exists *setup.ExistsError
	if errors.As(err, &exists) {
		return fmt.Errorf("configure: %v", err)
	}
	if err != nil {
		if res != nil && len(res.Files) > 0 {
			return fmt.Errorf("configure: %v (written so far: %s)", err, strings.Join(res.Files, ", "))
		}
		return fmt.Errorf("configure: %v", err)
	}
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	var ipStrs []string
	for _, ip := range res.IPs {
		ipStrs = append(ipStrs, ip.String())
	}
	fmt.Fprintf(stdout, "server certificate names: %s\n", strings.Join(append(append([]string{}, res.DNSNames...), ipStrs...), ", "))
	if res.VHost == setup.ServerVHost {
		fmt.Fprintf(stdout, "Fluent Bit checks Fluentd's certificate for %s (tls.vhost): --fluentd is an IP address, which Fluent Bit before 5.0.6 never matches\n", res.VHost)
	} else {
		fmt.Fprintf(stdout, "Fluent Bit checks Fluentd's certificate for %s (tls.vhost)\n", res.VHost)
	}
	releases := setup.FluentBitReleases
	if len(o.Clusters) > 0 {
		releases = setup.MultiClusterReleases
	}
	fmt.Fprintf(stdout, "%s and %s are for %s\n", setup.FluentBitConf, setup.FluentBitYAML, releases)
	for _, n := range res.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	d := res.Dir
	identity := o.Identity
	if !filepath.IsAbs(identity) {
		identity = filepath.Join(d, identity)
	}
	for _, c := range o.Clusters {
		fmt.Fprintf(stdout, "cluster %s (%s): create the same role and user there, and give it an identity at %s (%s)\n",
			c.Name, c.Addr, identity+"-"+c.Name, filepath.Join(d, setup.ClusterTOML(c.Name)))
	}
	fmt.Fprintf(stdout, `
next steps:
  1. create the Teleport role and user:
       tctl create -f %[1]s
  2. give the plugin an identity at %[2]s: a Machine ID bot with role %[3]s
     (tctl bots add %[4]s --roles=%[3]s; tbot writing an identity output there), or
       tctl auth sign --user=%[4]s --format=file --out=%[2]s --ttl=8760h
  3. check it:
       teleport-fluent-bit check --config %[5]s
  4. start Fluentd and Fluent Bit:
       fluentd -c %[6]s
       fluent-bit -c %[7]s
     (a Fluent Bit receiving instead of Fluentd, with in_forward, requires
     client certificates only from 5.0 on: tls.verify_client_cert on)
`, filepath.Join(d, setup.RoleFile), identity, setup.RoleName, setup.UserName,
		filepath.Join(d, setup.TOMLFile), filepath.Join(d, setup.FluentdConf), filepath.Join(d, setup.FluentBitConf))
	return nil
}

// parseConfigure turns configure's command line into setup options.
func parseConfigure(args []string, stderr io.Writer) (setup.Options, error) {
	fs := newFlags("configure", configureSynopsis, stderr)
	var o setup.Options
	var dns, ips listFlag
	var clusters clusterFlags
	fs.IntVar(&o.Length, "length", setup.DefaultLength, "RSA key length in bits (1024, 2048, 3072 or 4096)")
	fs.DurationVar(&o.TTL, "ttl", setup.DefaultTTL, "lifetime of the generated certificates")
	fs.Var(&dns, "dns-names", "DNS names of Fluentd in the server certificate, comma-separated or repeated (default localhost; the --fluentd host and "+setup.ServerVHost+" are added); a name need not resolve")
	fs.Var(&ips, "ip", "IP addresses of Fluentd in the server certificate, comma-separated or repeated (default: the addresses the DNS names resolve to)")
	fs.BoolVar(&o.Force, "force", false, "replace existing files")
	fs.BoolVar(&o.Lock, "lock", false, "enable lock_enabled (lock users after failed logins) and grant lock create/update in the role")
	fs.StringVar(&o.Fluentd, "fluentd", setup.DefaultFluentd, "`host:port` of Fluentd's forward input, where Fluent Bit sends")
	fs.StringVar(&o.Plugin, "plugin", defaultPlugin(), "absolute path of in_teleport.so in the Fluent Bit configurations")
	fs.StringVar(&o.Identity, "identity", setup.DefaultIdentity, "Teleport identity file in the TOML (relative: to DIR)")
	fs.StringVar(&o.Storage, "storage", setup.DefaultStorage, "the plugin's storage_dir in the TOML (relative: to DIR)")
	fs.StringVar(&o.Buffer, "buffer", setup.DefaultBuffer, "Fluent Bit's filesystem buffer, storage.path (relative: to DIR)")
	fs.Var(&clusters, "cluster", "`NAME=ADDR`: one more Teleport cluster exported by the same Fluent Bit (4.1 and later), repeatable; its input is named NAME and reads teleport-fluent-bit-NAME.toml")
	start := fs.String("start-time", "", "start-time in the TOML, where the first run starts: RFC 3339, or now (the time configure runs, to the second); default unset (the time of the first run)")
	pos, err := parseAll(fs, args)
	if err != nil {
		return o, flagErr(err)
	}
	switch v := strings.TrimSpace(*start); v {
	case "":
	case "now":
		o.StartTime = time.Now().UTC().Truncate(time.Second)
	default:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return o, fmt.Errorf("configure: invalid --start-time %q: must be now or an RFC 3339 time such as 2024-01-02T15:04:05Z", v)
		}
		o.StartTime = t
	}
	if len(pos) != 2 {
		fs.Usage()
		return o, fmt.Errorf("configure: expected DIR and TELEPORT_ADDR, got %d argument(s)", len(pos))
	}
	o.Dir, o.TeleportAddr = pos[0], pos[1]
	o.DNSNames, o.IPs, o.Clusters = dns, ips, clusters
	return o, nil
}

// clusterFlags are repeated --cluster NAME=ADDR.
type clusterFlags []setup.Cluster

func (c *clusterFlags) String() string {
	var s []string
	for _, x := range *c {
		s = append(s, x.Name+"="+x.Addr)
	}
	return strings.Join(s, ",")
}

func (c *clusterFlags) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("expected NAME=ADDR, such as staging=staging.example.com:443")
	}
	*c = append(*c, setup.Cluster{Name: strings.TrimSpace(name), Addr: strings.TrimSpace(addr)})
	return nil
}

// defaultPlugin is in_teleport.so next to this executable when it is there
// (make build puts both in build/), else the install location of README.md.
func defaultPlugin() string {
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), "in_teleport.so")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return setup.DefaultPlugin
}
