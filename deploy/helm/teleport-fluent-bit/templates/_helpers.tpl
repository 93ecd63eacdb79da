{{/* The chart's name. */}}
{{- define "tfb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object. */}}
{{- define "tfb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tfb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tfb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tfb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tfb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tfb.tbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tfb.name" . }}-tbot
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The Teleport address: teleport.address, else tbot's. */}}
{{- define "tfb.teleportAddress" -}}
{{- $addr := .Values.teleport.address }}
{{- if and (not $addr) .Values.tbot.enabled }}
{{- $addr = coalesce .Values.tbot.teleportProxyAddress .Values.tbot.teleportAuthAddress }}
{{- end }}
{{- required "teleport.address is required: the Auth Service (host:3025) or Proxy Service (host:443) address (with tbot.enabled, tbot.teleportProxyAddress or tbot.teleportAuthAddress also does)" $addr }}
{{- end }}

{{/* The Secret holding the identity. */}}
{{- define "tfb.identitySecretName" -}}
{{- if .Values.teleport.identitySecretName }}
{{- .Values.teleport.identitySecretName }}
{{- else if .Values.tbot.enabled }}
{{- include "tfb.fullname" . }}-identity
{{- else }}
{{- required "teleport.identitySecretName is required: the Secret holding the plugin's identity file (or set tbot.enabled=true to have tbot write it)" "" }}
{{- end }}
{{- end }}

{{/* Its key: tbot's identity output always writes "identity". */}}
{{- define "tfb.identitySecretPath" -}}
{{- if .Values.tbot.enabled }}identity{{ else }}{{ required "teleport.identitySecretPath is required: the key of teleport.identitySecretName holding the identity" .Values.teleport.identitySecretPath }}{{ end }}
{{- end }}

{{- define "tfb.tbot.name" -}}
{{- include "tfb.fullname" . | trunc 58 | trimSuffix "-" }}-tbot
{{- end }}

{{- define "tfb.tbot.token" -}}
{{- .Values.tbot.token | default (printf "%s-bot" (include "tfb.fullname" .)) }}
{{- end }}

{{/* Paths inside the Fluent Bit container. */}}
{{- define "tfb.configDir" -}}/fluent-bit/etc/teleport-fluent-bit{{- end }}
{{- define "tfb.pluginDir" -}}/fluent-bit/plugins{{- end }}
{{- define "tfb.identityDir" -}}/var/run/teleport-identity{{- end }}
{{- define "tfb.fluentdTLSDir" -}}/etc/teleport-fluent-bit/fluentd-tls{{- end }}
{{- define "tfb.caDir" -}}/etc/teleport-tls-ca{{- end }}

{{/* The data volume's mount: the parent of the cursor directory. */}}
{{- define "tfb.dataDir" -}}
{{- $p := .Values.eventHandler.storagePath }}
{{- if or (not (isAbs $p)) (eq (dir $p) "/") (eq (base $p) "buffer") }}
{{- fail (printf "eventHandler.storagePath %q: must be an absolute path below a directory (the data volume is mounted on its parent, e.g. /var/lib/teleport-fluent-bit/state), and not named buffer (Fluent Bit's buffer is <parent>/buffer)" $p) }}
{{- end }}
{{- dir $p }}
{{- end }}

{{- define "tfb.bufferDir" -}}
{{- include "tfb.dataDir" . }}/buffer
{{- end }}

{{/* The audit tag of an entry of clusters: (dict "root" $ "c" $entry). */}}
{{- define "tfb.clusterTag" -}}
{{- .c.tag | default (printf "%s.%s" .root.Values.routing.auditTag .c.name) }}
{{- end }}

{{/* Checks across values that the schema cannot express; rendered by every workload. */}}
{{- define "tfb.validate" -}}
{{- if not .Values.image.repository }}
{{- fail "image.repository is required: the plugin image built with deploy/kubernetes/Dockerfile (the init container copies in_teleport.so from it)" }}
{{- end }}
{{- if and (not .Values.fluentd.enabled) (empty .Values.outputs) }}
{{- fail "no output: set fluentd.enabled=true (forward to Fluentd over mutual TLS) or give outputs" }}
{{- end }}
{{- if .Values.fluentd.enabled }}
{{- if not .Values.fluentd.host }}
{{- fail "fluentd.host is required with fluentd.enabled: Fluentd's forward input (e.g. fluentd.logging.svc.cluster.local)" }}
{{- end }}
{{- if not .Values.fluentd.certificate.secretName }}
{{- fail "fluentd.certificate.secretName is required with fluentd.enabled: the Secret with ca.crt, client.crt and client.key from teleport-fluent-bit configure" }}
{{- end }}
{{- end }}
{{- if .Values.tbot.enabled }}
{{- if not .Values.tbot.clusterName }}
{{- fail "tbot.clusterName is required with tbot.enabled: the Teleport cluster's name" }}
{{- end }}
{{- if and .Values.tbot.teleportProxyAddress .Values.tbot.teleportAuthAddress }}
{{- fail "tbot.teleportProxyAddress and tbot.teleportAuthAddress are mutually exclusive" }}
{{- end }}
{{- if not (or .Values.tbot.teleportProxyAddress .Values.tbot.teleportAuthAddress) }}
{{- fail "tbot.teleportProxyAddress or tbot.teleportAuthAddress is required with tbot.enabled" }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if .Values.clusters }}
{{- $tag := toString .Values.fluentBit.image.tag }}
{{- if or (hasPrefix "3." $tag) (hasPrefix "4.0" $tag) (hasPrefix "2." $tag) (hasPrefix "1." $tag) }}
{{- fail (printf "clusters needs Fluent Bit 4.1 or later (several teleport inputs in one Fluent Bit need the Go proxy's per-instance callbacks); fluentBit.image.tag is %s" $tag) }}
{{- end }}
{{- $seen := dict (base .Values.eventHandler.storagePath) "eventHandler.storagePath" "buffer" "Fluent Bit's buffer" }}
{{- range $c := .Values.clusters }}
{{- with get $seen $c.name }}
{{- fail (printf "clusters: the name %q is already used by %s: each cluster needs its own name (it is its cursor directory, alias and metrics label)" $c.name .) }}
{{- end }}
{{- $_ := set $seen $c.name (printf "another entry of clusters") }}
{{- end }}
{{- end }}
{{- $_ := include "tfb.teleportAddress" . }}
{{- $_ = include "tfb.identitySecretName" . }}
{{- $_ = include "tfb.dataDir" . }}
{{- end }}

{{/* tbot's configuration. */}}
{{- define "tfb.tbot.config" -}}
{{- $secret := include "tfb.identitySecretName" . -}}
version: v2
{{- with .Values.tbot.teleportProxyAddress }}
proxy_server: {{ . | toJson }}
{{- end }}
{{- with .Values.tbot.teleportAuthAddress }}
auth_server: {{ . | toJson }}
{{- end }}
onboarding:
  join_method: {{ .Values.tbot.joinMethod | toJson }}
  token: {{ include "tfb.tbot.token" . | toJson }}
storage:
  type: memory
credential_ttl: {{ .Values.tbot.credentialTTL | toJson }}
renewal_interval: {{ .Values.tbot.renewalInterval | toJson }}
outputs:
  # Writes the key "identity" of the Secret.
  - type: identity
    destination:
      type: kubernetes_secret
      name: {{ $secret | toJson }}
{{- end }}
