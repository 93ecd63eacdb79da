package setup

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"text/template"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// Tags of the generated pipeline: audit events keep the input's tag,
// recordings are re-tagged session.<sid>.log like the Event Handler's
// session-url + ".<sid>.log".
const (
	AuditTag      = "teleport.audit"
	RecordingTag  = "session.$1.log"
	RecordingRule = "$" + record.SessionIDField + " ^(.+)$ " + RecordingTag + " false"
	EmitterName   = "teleport_recordings"
)

// data is what the templates see.
type data struct {
	Dir, Addr                                          string
	CA, ServerCert, ServerKey, ClientCert, ClientKey   string // absolute paths
	TOML, PluginsFile, Plugin, Buffer                  string // absolute paths
	Identity, Storage                                  string // as written in the TOML
	Passphrase                                         string
	FluentdHost, VHost, FluentBitReleases              string
	FluentdIsIP                                        bool
	FluentdPort, HTTPPort                              int
	Lock                                               bool
	AuditTag, RecordingRule, EmitterName, SessionField string
	RoleName, UserName                                 string
	StartTime                                          string // RFC 3339; "" = unset
	Clusters                                           []clusterData
}

// clusterData is one more cluster's teleport input.
type clusterData struct {
	Name, Tag, TOML, EmitterName string
}

// q quotes s as a JSON string, which is also a valid TOML basic string, a
// YAML double-quoted scalar and a Fluentd double-quoted value (normalize
// refuses the characters where they would differ).
func q(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

var templates = template.Must(template.New("").Funcs(template.FuncMap{"q": q}).Parse(`
{{define "role"}}# The Teleport role and user of teleport-fluent-bit, written by
# ` + "`teleport-fluent-bit configure`" + `. Create them with
#   tctl create -f {{.Dir}}/` + RoleFile + `
{{- if .Clusters}}
# in every cluster this configuration exports (also {{range $i, $c := .Clusters}}{{if $i}}, {{end}}{{$c.Name}}{{end}}),
{{- end}}
# then give the plugin an identity: a Machine ID bot with this role
# (tctl bots add {{.UserName}} --roles={{.RoleName}}, then tbot), or
#   tctl auth sign --user={{.UserName}} --format=file --out={{.Dir}}/identity --ttl=8760h
kind: role
version: v7
metadata:
  name: {{.RoleName}}
  description: Exports audit events and session recordings to Fluent Bit
spec:
  options:
    # Lets tctl auth sign --ttl issue a long-lived identity for this user
    # (tbot gives a bot short-lived ones instead).
    max_session_ttl: 8760h
  allow:
    rules:
      - resources: ['event', 'session']
        verbs: ['list', 'read']
{{- if .Lock}}
      # lock_enabled: lock users after repeated failed logins.
      - resources: ['lock']
        verbs: ['create', 'update']
{{- end}}
---
kind: user
version: v2
metadata:
  name: {{.UserName}}
spec:
  roles: ['{{.RoleName}}']
{{end}}

{{define "toml"}}# teleport-fluent-bit.toml, written by ` + "`teleport-fluent-bit configure`" + `.
#
# The teleport input of Fluent Bit reads it through its config property (see
# fluent-bit.conf and fluent-bit.yaml), and so do ` + "`teleport-fluent-bit check`" + `
# and ` + "`export`" + ` with --config. It has the format of teleport-event-handler.toml.
# Relative paths are relative to this file. Fluent Bit properties and FDFWD_*
# variables override what is set here.

# The durable cursor: a 0700 directory, locked while the plugin runs.
storage = {{q .Storage}}

# Where the first run starts (RFC 3339); later runs resume where they stopped.
{{- if .StartTime}}
# Once a cursor exists, this must stay equal to its start time (or be
# removed): after ` + "`teleport-fluent-bit cursor set`" + `, change or remove it.
start-time = {{q .StartTime}}
{{- else}}
# Unset: from the time of the first run on. To move it later, use
# ` + "`teleport-fluent-bit cursor set --storage DIR --start-time TIME`" + `.
# start-time = "2024-01-01T00:00:00Z"
{{- end}}

# How often to look for new events once caught up.
timeout = "5s"

# Lock Teleport users after repeated failed logins (the role then needs lock
# create and update: configure --lock adds them).
lock-enabled = {{.Lock}}
# lock-failed-attempts-count = 3
# lock-period = "1m"
# lock-for = "24h"  # unset: the lock never expires

[teleport]
# The Auth Service (:3025) or the Proxy Service (:443).
addr = {{q .Addr}}
# The identity file tbot (or tctl auth sign) writes. It is re-read every
# refresh.interval, so certificates that tbot renews keep working.
identity = {{q .Identity}}
refresh.enabled = true
refresh.interval = "1m"
{{end}}

{{define "plugins"}}# plugins.conf, written by ` + "`teleport-fluent-bit configure`" + `: loaded by
# fluent-bit.conf through Plugins_File (a [PLUGINS] section inside the main
# file aborts Fluent Bit 5.1).
[PLUGINS]
    Path {{.Plugin}}
{{end}}

{{define "fluentbit.conf"}}# fluent-bit.conf, written by ` + "`teleport-fluent-bit configure`" + `.
#   fluent-bit -c {{.Dir}}/` + FluentBitConf + `
#
# Teleport audit events and session recordings, buffered on disk (what the
# plugin has handed over survives a crash), forwarded to Fluentd over mutual
# TLS with acknowledgements. For {{.FluentBitReleases}}.

[SERVICE]
    Flush                     1
    Log_Level                 info
    Plugins_File              {{.PluginsFile}}
    storage.path              {{.Buffer}}
    storage.sync              normal
    storage.backlog.mem_limit 64M

[INPUT]
    Name              teleport
    Tag               {{.AuditTag}}
    storage.type      filesystem
    config            {{.TOML}}
{{- range .Clusters}}

# Teleport cluster {{.Name}}: its own identity, cursor and tag.
[INPUT]
    Name              teleport
    Alias             {{.Name}}
    cluster           {{.Name}}
    Tag               {{.Tag}}
    storage.type      filesystem
    config            {{.TOML}}
{{- end}}

# Session recordings carry {{.SessionField}}; audit events never do.
# Recordings go out as session.<sid>.log, audit events as {{.AuditTag}}.
[FILTER]
    Name                  rewrite_tag
    Match                 {{.AuditTag}}
    Rule                  {{.RecordingRule}}
    Emitter_Name          {{.EmitterName}}
    Emitter_Storage.type  filesystem
{{- range .Clusters}}

[FILTER]
    Name                  rewrite_tag
    Match                 {{.Tag}}
    Rule                  {{$.RecordingRule}}
    Emitter_Name          {{.EmitterName}}
    Emitter_Storage.type  filesystem
{{- end}}

# Without Require_ack_response a client Fluentd rejects loses its records
# without an error.
{{- template "vhost-comment" .}}
[OUTPUT]
    Name                  forward
    Match                 *
    Host                  {{.FluentdHost}}
    Port                  {{.FluentdPort}}
    Require_ack_response  true
    Retry_Limit           no_limits
    tls                   on
    tls.verify            on
    tls.verify_hostname   on
    tls.vhost             {{.VHost}}
    tls.ca_file           {{.CA}}
    tls.crt_file          {{.ClientCert}}
    tls.key_file          {{.ClientKey}}
{{end}}

{{define "fluentbit.yaml"}}# fluent-bit.yaml, written by ` + "`teleport-fluent-bit configure`" + `.
#   fluent-bit -c {{.Dir}}/` + FluentBitYAML + `
#
# The same pipeline as fluent-bit.conf: Teleport audit events and session
# recordings, buffered on disk, forwarded to Fluentd over mutual TLS with
# acknowledgements. For {{.FluentBitReleases}}.
service:
  flush: 1
  log_level: info
  storage.path: {{q .Buffer}}
  storage.sync: normal
  storage.backlog.mem_limit: 64M

plugins:
  - {{q .Plugin}}

pipeline:
  inputs:
    - name: teleport
      tag: {{.AuditTag}}
      storage.type: filesystem
      config: {{q .TOML}}
{{- range .Clusters}}
    # Teleport cluster {{.Name}}: its own identity, cursor and tag.
    - name: teleport
      alias: {{q .Name}}
      cluster: {{q .Name}}
      tag: {{q .Tag}}
      storage.type: filesystem
      config: {{q .TOML}}
{{- end}}

  filters:
    # Session recordings carry {{.SessionField}}; audit events never do.
    - name: rewrite_tag
      match: {{.AuditTag}}
      rule: {{q .RecordingRule}}
      emitter_name: {{.EmitterName}}
      emitter_storage.type: filesystem
{{- range .Clusters}}
    - name: rewrite_tag
      match: {{q .Tag}}
      rule: {{q $.RecordingRule}}
      emitter_name: {{q .EmitterName}}
      emitter_storage.type: filesystem
{{- end}}

  outputs:
{{- template "vhost-comment-yaml" .}}
    - name: forward
      match: "*"
      host: {{q .FluentdHost}}
      port: {{.FluentdPort}}
      require_ack_response: true
      retry_limit: no_limits
      tls: on
      tls.verify: on
      tls.verify_hostname: on
      tls.vhost: {{q .VHost}}
      tls.ca_file: {{q .CA}}
      tls.crt_file: {{q .ClientCert}}
      tls.key_file: {{q .ClientKey}}
{{end}}

{{define "vhost-comment"}}
{{- if .FluentdIsIP}}
#
# Host is an IP address: Fluent Bit checks Fluentd's certificate for
# tls.vhost instead, a DNS name the certificate always carries (releases
# before 5.0.6 match tls.vhost only against DNS names, never IP addresses).
{{- end}}
#
# A Fluent Bit receiving instead of Fluentd (in_forward with tls.crt_file
# server.crt) requires this client certificate only from 5.0 on, with
# tls.verify_client_cert on and tls.ca_file ca.crt; older releases let in a
# client that offers none. Its default Buffer_Max_Size (6,144,000 bytes)
# takes every chunk: at most 3,072,000 bytes with the plugin's default
# callback_bytes (1000K); with a larger callback_bytes set Buffer_Max_Size
# to at least 2,048,000 bytes plus callback_bytes.
{{- end}}

{{define "vhost-comment-yaml"}}
{{- if .FluentdIsIP}}
    # host is an IP address: Fluent Bit checks Fluentd's certificate for
    # tls.vhost instead, a DNS name the certificate always carries (releases
    # before 5.0.6 match tls.vhost only against DNS names, never IP addresses).
    #
{{- end}}
    # A Fluent Bit receiving instead of Fluentd (in_forward with tls.crt_file
    # server.crt) requires this client certificate only from 5.0 on, with
    # tls.verify_client_cert on and tls.ca_file ca.crt; older releases let in
    # a client that offers none. Its default buffer_max_size (6,144,000
    # bytes) takes every chunk: at most 3,072,000 bytes with the plugin's
    # default callback_bytes (1000K); with a larger callback_bytes set
    # buffer_max_size to at least 2,048,000 bytes plus callback_bytes.
{{- end}}

{{define "tls"}}  <transport tls>
    ca_path {{q .CA}}
    cert_path {{q .ServerCert}}
    private_key_path {{q .ServerKey}}
    private_key_passphrase {{q .Passphrase}}
    client_cert_auth true
  </transport>
{{- end}}

{{define "matches"}}
# Audit events: the raw Teleport event JSON.
<match teleport.**>
  @type stdout
</match>

# Session recordings, one tag per session: session.<sid>.log.
<match session.**>
  @type stdout
</match>
{{- end}}

{{define "fluentd"}}# fluent.conf, written by ` + "`teleport-fluent-bit configure`" + `: Fluentd receiving
# from Fluent Bit's forward output over mutual TLS.
#   fluentd -c {{.Dir}}/` + FluentdConf + `
# It holds the passphrase of server.key: keep it 0600.
<source>
  @type forward
  bind 0.0.0.0
  port {{.FluentdPort}}
{{template "tls" .}}
</source>
{{template "matches" .}}
{{end}}

{{define "fluentd-http"}}# fluent-http.conf, written by ` + "`teleport-fluent-bit configure`" + `: the
# in_http variant of the Event Handler's Fluentd guide, for a
# teleport-event-handler posting to https://<host>:{{.HTTPPort}}/teleport.audit
# (url) and https://<host>:{{.HTTPPort}}/session (session-url, tag
# session.<sid>.log) with client.crt and client.key. Fluent Bit uses
# fluent.conf (forward) instead.
#   fluentd -c {{.Dir}}/` + FluentdHTTP + `
# It holds the passphrase of server.key: keep it 0600.
<source>
  @type http
  bind 0.0.0.0
  port {{.HTTPPort}}
{{template "tls" .}}
  <parse>
    @type json
    time_key time
    time_type string
    time_format %Y-%m-%dT%H:%M:%S
    keep_time_key true
  </parse>
</source>
{{template "matches" .}}
{{end}}
`))

// render produces the configuration files.
func (n *normalized) render(passphrase string) (map[string][]byte, error) {
	p := func(f string) string { return filepath.Join(n.dir, f) }
	d := data{
		Dir: n.dir, Addr: n.TeleportAddr,
		CA: p(CACertFile), ServerCert: p(ServerCertFile), ServerKey: p(ServerKeyFile),
		ClientCert: p(ClientCertFile), ClientKey: p(ClientKeyFile),
		TOML: p(TOMLFile), PluginsFile: p(PluginsConf), Plugin: n.Plugin, Buffer: n.Buffer,
		Identity: n.Identity, Storage: n.Storage,
		Passphrase:  passphrase,
		FluentdHost: n.fluentdHost, FluentdPort: n.fluentdPort, HTTPPort: FluentdHTTPPort,
		VHost: n.vhost, FluentdIsIP: n.vhost != n.fluentdHost, FluentBitReleases: FluentBitReleases,
		Lock:     n.Lock,
		AuditTag: AuditTag, RecordingRule: RecordingRule, EmitterName: EmitterName, SessionField: record.SessionIDField,
		RoleName: RoleName, UserName: UserName,
	}
	if !n.StartTime.IsZero() {
		d.StartTime = n.StartTime.UTC().Format(time.RFC3339Nano)
	}
	if len(n.Clusters) > 0 {
		d.FluentBitReleases = MultiClusterReleases
	}
	for _, c := range n.Clusters {
		d.Clusters = append(d.Clusters, clusterData{Name: c.Name, Tag: AuditTag + "." + c.Name,
			TOML: p(ClusterTOML(c.Name)), EmitterName: EmitterName + "_" + c.Name})
	}
	out := map[string][]byte{}
	for _, c := range n.Clusters {
		// The same file as the first cluster's, with its own address,
		// identity and cursor.
		cd := d
		cd.Addr, cd.Identity, cd.Storage = c.Addr, n.Identity+"-"+c.Name, n.Storage+"-"+c.Name
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, "toml", cd); err != nil {
			return nil, err
		}
		out[ClusterTOML(c.Name)] = b.Bytes()
	}
	for file, tmpl := range map[string]string{
		RoleFile: "role", TOMLFile: "toml", PluginsConf: "plugins",
		FluentBitConf: "fluentbit.conf", FluentBitYAML: "fluentbit.yaml",
		FluentdConf: "fluentd", FluentdHTTP: "fluentd-http",
	} {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, tmpl, d); err != nil {
			return nil, err
		}
		out[file] = b.Bytes()
	}
	return out, nil
}
