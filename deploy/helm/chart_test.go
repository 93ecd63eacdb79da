// Package helm holds only tests of the chart in teleport-fluent-bit/: they
// render it with Helm's own library as `helm template` does (the chart
// loader, values.schema.json, the template engine, Helm's install order)
// and lint it like `helm lint`, decode every document strictly into the
// Kubernetes API types (an unknown or misplaced field fails), and check that
// what refers to what lines up: volumes, Secrets, ConfigMaps, service
// accounts, ports and the paths in Fluent Bit's configuration, whose
// teleport input loads through the plugin's own configuration loader.
package helm

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

const (
	chartDir  = "teleport-fluent-bit"
	release   = "teleport-fluent-bit"
	namespace = "teleport-fluent-bit"
	// The static manifest and the values it is rendered with.
	staticManifest = "../kubernetes/teleport-fluent-bit.yaml"
	staticValues   = "../kubernetes/values.yaml"
)

var update = flag.Bool("update", false, "rewrite "+staticManifest+" from the chart")

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	require.NoError(t, err)
	return ch
}

// render is `helm template release chartDir --namespace namespace -f
// values`: the values are checked against values.schema.json and merged
// over values.yaml, every template runs, NOTES.txt is left out and the
// documents come in Helm's install order, each under a "# Source:" line
// (helm.sh/helm/v3 pkg/action/action.go renderResources, cmd/helm/template.go).
func render(ch *chart.Chart, vals map[string]any) (string, error) {
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(ch, top)
	if err != nil {
		return "", err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	_, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return strings.TrimSpace(b.String()) + "\n", nil
}

// values parses YAML documents and merges them, later ones over earlier
// ones, like repeated `--values` files.
func values(t *testing.T, docs ...string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, d := range docs {
		v, err := chartutil.ReadValues([]byte(d))
		require.NoError(t, err)
		out = chartutil.CoalesceTables(v.AsMap(), out)
	}
	return out
}

// The least a working install needs: a Teleport address, an identity
// Secret, the plugin image, and the Fluentd end of the default output.
const baseValues = `
image: {repository: registry.example.com/teleport-fluent-bit}
teleport:
  address: teleport.example.com:443
  identitySecretName: teleport-plugin-identity
fluentd:
  host: fluentd.logging.svc.cluster.local
  certificate: {secretName: teleport-fluent-bit-fluentd-tls}
`

// ServiceMonitor is the part of the Prometheus Operator's type
// (monitoring.coreos.com/v1) the chart writes; it is decoded strictly too.
type ServiceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// objects are the rendered documents, decoded.
type objects struct {
	accounts        map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	services        map[string]*corev1.Service
	roles           map[string]*rbacv1.Role
	bindings        []*rbacv1.RoleBinding
	deployments     []*appsv1.Deployment
	statefulSets    []*appsv1.StatefulSet
	serviceMonitors []*ServiceMonitor
}

func decodeAll(t *testing.T, manifest string) *objects {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, corev1.AddToScheme(scheme))
	require.NoError(t, appsv1.AddToScheme(scheme))
	require.NoError(t, rbacv1.AddToScheme(scheme))
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	o := &objects{accounts: map[string]*corev1.ServiceAccount{}, configMaps: map[string]*corev1.ConfigMap{},
		services: map[string]*corev1.Service{}, roles: map[string]*rbacv1.Role{}}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		var head struct{ APIVersion, Kind string }
		require.NoError(t, sigsyaml.Unmarshal(doc, &head), "document %d", i)
		if head.Kind == "" {
			continue // a comment only
		}
		if head.APIVersion == "monitoring.coreos.com/v1" && head.Kind == "ServiceMonitor" {
			var sm ServiceMonitor
			require.NoError(t, sigsyaml.UnmarshalStrict(doc, &sm), "document %d", i)
			o.serviceMonitors = append(o.serviceMonitors, &sm)
			continue
		}
		obj, gvk, err := ser.Decode(doc, nil, nil)
		require.NoError(t, err, "document %d:\n%s", i, doc)
		switch v := obj.(type) {
		case *corev1.ServiceAccount:
			o.accounts[v.Name] = v
		case *corev1.ConfigMap:
			o.configMaps[v.Name] = v
		case *corev1.Service:
			o.services[v.Name] = v
		case *rbacv1.Role:
			o.roles[v.Name] = v
		case *rbacv1.RoleBinding:
			o.bindings = append(o.bindings, v)
		case *appsv1.Deployment:
			o.deployments = append(o.deployments, v)
		case *appsv1.StatefulSet:
			o.statefulSets = append(o.statefulSets, v)
		default:
			t.Fatalf("document %d: unexpected kind %s", i, gvk)
		}
		m := obj.(interface{ GetNamespace() string })
		assert.Equal(t, namespace, m.GetNamespace(), "document %d (%s) in the release's namespace", i, gvk.Kind)
	}
	return o
}

// The strict decoder does reject what a lenient one would drop.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, appsv1.AddToScheme(scheme))
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	_, _, err := ser.Decode([]byte("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  replica: 1\n"), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown field "spec.replica"`)
	var sm ServiceMonitor
	assert.Error(t, sigsyaml.UnmarshalStrict([]byte("spec: {endpoint: []}"), &sm))
}

// fluentBitConfig is Fluent Bit's YAML configuration as the chart writes it.
type fluentBitConfig struct {
	Service  map[string]any `yaml:"service"`
	Plugins  []string       `yaml:"plugins"`
	Pipeline struct {
		Inputs  []map[string]any `yaml:"inputs"`
		Filters []map[string]any `yaml:"filters"`
		Outputs []map[string]any `yaml:"outputs"`
	} `yaml:"pipeline"`
}

// rendered is one release: its objects, Fluent Bit's configuration and the
// plugin's configuration as the plugin loads it.
type rendered struct {
	o    *objects
	sts  *appsv1.StatefulSet
	spec corev1.PodSpec
	fb   corev1.Container
	fbc  fluentBitConfig
	cfg  *conf.Config   // the first teleport input
	cfgs []*conf.Config // every teleport input, in order
}

// check renders vals and checks what holds for every release.
func check(t *testing.T, ch *chart.Chart, vals map[string]any) *rendered {
	t.Helper()
	manifest, err := render(ch, vals)
	require.NoError(t, err)
	o := decodeAll(t, manifest)
	require.Len(t, o.statefulSets, 1)
	s := o.statefulSets[0]
	rel := &rendered{o: o, sts: s, spec: s.Spec.Template.Spec}
	spec := rel.spec

	// One exporter, selected by its Service.
	require.NotNil(t, s.Spec.Replicas)
	assert.Equal(t, int32(1), *s.Spec.Replicas, "one export per cursor")
	assert.True(t, labels.SelectorFromSet(s.Spec.Selector.MatchLabels).Matches(labels.Set(s.Spec.Template.Labels)))
	svc := o.services[s.Spec.ServiceName]
	require.NotNil(t, svc, "serviceName %s", s.Spec.ServiceName)
	assert.Equal(t, "None", svc.Spec.ClusterIP, "a headless governing service")
	assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)))
	podChecks(t, o, s.Name, spec, s.Spec.VolumeClaimTemplates)
	for _, d := range o.deployments {
		assert.True(t, labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)))
		assert.False(t, labels.SelectorFromSet(s.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)),
			"the StatefulSet does not select %s's pods", d.Name)
		podChecks(t, o, d.Name, d.Spec.Template.Spec, nil)
	}
	for _, b := range o.bindings {
		assert.Equal(t, "Role", b.RoleRef.Kind)
		assert.Contains(t, o.roles, b.RoleRef.Name)
		for _, s := range b.Subjects {
			assert.Contains(t, o.accounts, s.Name)
		}
	}

	// Fluent Bit's configuration: a key of the mounted ConfigMap.
	fb := container(t, spec, "fluent-bit")
	rel.fb = fb
	assert.Regexp(t, `^fluent/fluent-bit:\d+\.\d+\.\d+$`, fb.Image)
	require.Equal(t, "-c", fb.Args[0])
	cfgPath := fb.Args[1]
	cfgMount := mountFor(fb, cfgPath)
	require.NotNil(t, cfgMount, "%s is mounted", cfgPath)
	cm := o.configMaps[volume(t, spec, cfgMount.Name).ConfigMap.Name]
	require.NotNil(t, cm)
	fbYAML, ok := cm.Data[filepath.Base(cfgPath)]
	require.True(t, ok, "ConfigMap %s has %s", cm.Name, filepath.Base(cfgPath))
	dec := yaml.NewDecoder(strings.NewReader(fbYAML))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&rel.fbc), fbYAML)
	fbc := rel.fbc

	// The plugin: copied by the init container into the shared emptyDir.
	require.Len(t, fbc.Plugins, 1)
	so := fbc.Plugins[0]
	pm := mountFor(fb, so)
	require.NotNil(t, pm, "the plugin %s is mounted", so)
	require.NotNil(t, volume(t, spec, pm.Name).EmptyDir)
	install := container(t, spec, "install-plugin")
	require.Len(t, install.VolumeMounts, 1)
	im := install.VolumeMounts[0]
	assert.Equal(t, pm.Name, im.Name)
	dest := install.Command[len(install.Command)-1]
	assert.Equal(t, path.Clean(im.MountPath), path.Clean(dest), "cp copies into the shared volume")
	assert.Equal(t, path.Join(pm.MountPath, path.Base(so)), so)
	assert.Contains(t, install.Command, "/opt/teleport-fluent-bit/"+path.Base(so), "the file the Dockerfile installs")

	// The teleport inputs (one per cluster), through the plugin's own
	// loader: each with its own cursor and name, on the data volume, and
	// its identity from a Secret mounted whole.
	var ins []map[string]any
	for _, i := range fbc.Pipeline.Inputs {
		if i["name"] == "teleport" {
			ins = append(ins, i)
		}
	}
	require.NotEmpty(t, ins, "a teleport input")
	in := ins[0]
	dataVols := map[string]bool{}
	for _, c := range s.Spec.VolumeClaimTemplates {
		dataVols[c.Name] = true
	}
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil || v.EmptyDir != nil && v.Name != pm.Name {
			dataVols[v.Name] = true
		}
	}
	names, dirs := map[string]bool{}, map[string]bool{}
	for n, in := range ins {
		assert.Equal(t, "filesystem", in["storage.type"])
		cfg, _, err := conf.Load(func(k string) string {
			if v, ok := in[k]; ok {
				return fmt.Sprint(v)
			}
			return ""
		}, func(k string) string {
			for _, e := range fb.Env {
				if e.Name == k {
					return e.Value
				}
			}
			return ""
		})
		require.NoError(t, err, "the plugin loads the input's properties")
		if n == 0 {
			rel.cfg = cfg
		}
		rel.cfgs = append(rel.cfgs, cfg)
		assert.True(t, cfg.RefreshEnabled, "follows the identity as the Secret changes")
		assert.False(t, names[cfg.Name()], "input %d: a name of its own (%s)", n, cfg.Name())
		assert.False(t, dirs[cfg.StorageDir], "input %d: a storage_dir of its own (%s)", n, cfg.StorageDir)
		names[cfg.Name()], dirs[cfg.StorageDir] = true, true

		// The cursor and the buffer: subdirectories of the data volume (the
		// plugin creates storage_dir 0700 itself), which is the claim unless
		// it was turned off.
		for _, p := range []string{cfg.StorageDir, fbc.Service["storage.path"].(string)} {
			dm := mountFor(fb, p)
			require.NotNil(t, dm, "%s is mounted", p)
			assert.True(t, dataVols[dm.Name], "%s is on the data volume", p)
			assert.NotEqual(t, path.Clean(dm.MountPath), path.Clean(p), "%s: a subdirectory of the volume", p)
			assert.False(t, dm.ReadOnly)
		}
		assert.NotEqual(t, cfg.StorageDir, fbc.Service["storage.path"])

		// The identity: a Secret mounted whole, so the kubelet updates the file.
		idm := mountFor(fb, cfg.Identity)
		require.NotNil(t, idm, "%s is mounted", cfg.Identity)
		assert.Empty(t, idm.SubPath, "a subPath mount never sees a renewed Secret")
		idVol := volume(t, spec, idm.Name)
		require.NotNil(t, idVol.Secret, "the identity comes from a Secret")
		assert.Empty(t, idVol.Secret.Items, "the key is the file name")
	}
	for _, i := range fbc.Pipeline.Inputs {
		assert.Equal(t, "filesystem", i["storage.type"], "every input buffers on disk")
	}

	// Recordings are routed by the field the plugin adds.
	rt := filter(fbc, "rewrite_tag")
	if rt != nil {
		assert.Equal(t, in["tag"], rt["match"])
		assert.Regexp(t, `^\$`+record.SessionIDField+` \^\(\.\+\)\$ \S+ false$`, rt["rule"])
		assert.Equal(t, "filesystem", rt["emitter_storage.type"])
	}

	// The forward output: mTLS files from the Secret of configure's output.
	for _, out := range fbc.Pipeline.Outputs {
		if out["name"] != "forward" || out["tls"] == nil {
			continue
		}
		assert.Equal(t, true, out["require_ack_response"])
		assert.Equal(t, out["host"], out["tls.vhost"], "the certificate is checked against the host")
		for k, file := range map[string]string{"tls.ca_file": "ca.crt", "tls.crt_file": "client.crt", "tls.key_file": "client.key"} {
			p := out[k].(string)
			sm := mountFor(fb, p)
			require.NotNil(t, sm, "%s %s is mounted", k, p)
			v := volume(t, spec, sm.Name)
			require.NotNil(t, v.Secret, k)
			assert.True(t, slices.ContainsFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return it.Path == path.Base(p) }),
				"%s: the Secret's items make %s", k, p)
			assert.Equal(t, file, path.Base(p), "a file configure writes")
		}
	}

	// Non-root, read-only root filesystem, no privilege escalation.
	psc := spec.SecurityContext
	require.NotNil(t, psc)
	require.NotNil(t, psc.RunAsNonRoot)
	assert.True(t, *psc.RunAsNonRoot)
	require.NotNil(t, psc.FSGroupChangePolicy)
	assert.Equal(t, corev1.FSGroupChangeOnRootMismatch, *psc.FSGroupChangePolicy,
		"a recursive chmod on every mount would open the cursor directory to the group")
	return rel
}

// podChecks holds for every pod template: mounts name volumes that exist,
// ConfigMaps and service accounts exist, images are pinned, containers are
// locked down.
func podChecks(t *testing.T, o *objects, name string, spec corev1.PodSpec, claims []corev1.PersistentVolumeClaim) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		assert.NotContains(t, vols, v.Name, "%s: volume %s twice", name, v.Name)
		vols[v.Name] = v
		if v.ConfigMap != nil {
			assert.Contains(t, o.configMaps, v.ConfigMap.Name, "%s: volume %s", name, v.Name)
		}
	}
	for _, c := range claims {
		assert.NotContains(t, vols, c.Name, "%s: claim %s is also a volume", name, c.Name)
		vols[c.Name] = corev1.Volume{Name: c.Name}
	}
	require.NotEmpty(t, spec.ServiceAccountName)
	assert.Contains(t, o.accounts, spec.ServiceAccountName, "%s: service account", name)
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		assert.Regexp(t, `:[0-9][\w.-]*$`, c.Image, "%s/%s: image pinned to a version", name, c.Name)
		for _, m := range c.VolumeMounts {
			assert.Contains(t, vols, m.Name, "%s/%s mounts %s", name, c.Name, m.Name)
		}
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s/%s: securityContext", name, c.Name)
		assert.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s/%s: read-only root filesystem", name, c.Name)
		assert.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s/%s: no privilege escalation", name, c.Name)
		assert.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s/%s: non-root", name, c.Name)
	}
}

// mountFor returns the mount of c whose path holds p.
func mountFor(c corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = m
		}
	}
	return best
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func volume(t *testing.T, spec corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	t.Fatalf("no volume %s", name)
	return nil
}

func filter(fbc fluentBitConfig, name string) map[string]any {
	for _, f := range fbc.Pipeline.Filters {
		if f["name"] == name {
			return f
		}
	}
	return nil
}

// tbotConfig is the part of tbot.yaml the chart writes.
type tbotConfig struct {
	Version     string `yaml:"version"`
	ProxyServer string `yaml:"proxy_server"`
	AuthServer  string `yaml:"auth_server"`
	Onboarding  struct {
		JoinMethod string `yaml:"join_method"`
		Token      string `yaml:"token"`
	} `yaml:"onboarding"`
	Storage struct {
		Type string `yaml:"type"`
	} `yaml:"storage"`
	CredentialTTL   string `yaml:"credential_ttl"`
	RenewalInterval string `yaml:"renewal_interval"`
	Outputs         []struct {
		Type        string `yaml:"type"`
		Destination struct {
			Type string `yaml:"type"`
			Name string `yaml:"name"`
		} `yaml:"destination"`
	} `yaml:"outputs"`
}

// checkTbot: tbot joins with a projected service account token, writes the
// Secret the Fluent Bit pod mounts (key "identity"), and may write exactly
// that Secret.
func checkTbot(t *testing.T, rel *rendered) tbotConfig {
	t.Helper()
	o := rel.o
	require.Len(t, o.deployments, 1, "tbot's Deployment")
	d := o.deployments[0]
	spec := d.Spec.Template.Spec
	c := container(t, spec, "tbot")
	assert.Regexp(t, `^public\.ecr\.aws/gravitational/tbot-distroless:\d+\.\d+\.\d+$`, c.Image)
	require.Equal(t, []string{"start", "--config"}, c.Args[:2])
	cfgMount := mountFor(c, c.Args[2])
	require.NotNil(t, cfgMount)
	cm := o.configMaps[volume(t, spec, cfgMount.Name).ConfigMap.Name]
	var tc tbotConfig
	dec := yaml.NewDecoder(strings.NewReader(cm.Data[path.Base(c.Args[2])]))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&tc))
	assert.Equal(t, "v2", tc.Version)
	assert.Equal(t, "kubernetes", tc.Onboarding.JoinMethod)
	require.Len(t, tc.Outputs, 1)
	assert.Equal(t, "identity", tc.Outputs[0].Type)
	assert.Equal(t, "kubernetes_secret", tc.Outputs[0].Destination.Type)

	idVol := volume(t, rel.spec, mountFor(rel.fb, rel.cfg.Identity).Name)
	assert.Equal(t, idVol.Secret.SecretName, tc.Outputs[0].Destination.Name, "tbot writes the Secret Fluent Bit mounts")
	assert.Equal(t, "identity", path.Base(rel.cfg.Identity), "tbot's identity output writes the key \"identity\"")

	var tokenPath, podNS string
	for _, e := range c.Env {
		switch e.Name {
		case "KUBERNETES_TOKEN_PATH":
			tokenPath = e.Value
		case "POD_NAMESPACE":
			require.NotNil(t, e.ValueFrom)
			podNS = e.ValueFrom.FieldRef.FieldPath
		}
	}
	assert.Equal(t, "metadata.namespace", podNS)
	m := mountFor(c, tokenPath)
	require.NotNil(t, m, "the join token %s is mounted", tokenPath)
	v := volume(t, spec, m.Name)
	require.NotNil(t, v.Projected)
	sat := v.Projected.Sources[0].ServiceAccountToken
	require.NotNil(t, sat)
	assert.Equal(t, path.Base(tokenPath), sat.Path)

	var canWrite bool
	for _, b := range o.bindings {
		bound := slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == spec.ServiceAccountName && s.Namespace == d.Namespace
		})
		for _, r := range o.roles[b.RoleRef.Name].Rules {
			if bound && slices.Contains(r.ResourceNames, idVol.Secret.SecretName) && slices.Contains(r.Verbs, "update") {
				canWrite = true
			}
		}
	}
	assert.True(t, canWrite, "tbot's service account may update Secret %s", idVol.Secret.SecretName)
	return tc
}

// TestChart renders value sets a user would install and checks each.
func TestChart(t *testing.T) {
	ch := loadChart(t)
	tests := []struct {
		name  string
		vals  []string
		check func(t *testing.T, rel *rendered)
	}{{
		name: "identity from a plain Secret",
		vals: []string{baseValues},
		check: func(t *testing.T, rel *rendered) {
			assert.Empty(t, rel.o.deployments, "no tbot")
			assert.Equal(t, "teleport.example.com:443", rel.cfg.TeleportAddr)
			idVol := volume(t, rel.spec, mountFor(rel.fb, rel.cfg.Identity).Name)
			assert.Equal(t, "teleport-plugin-identity", idVol.Secret.SecretName)
			assert.Equal(t, "auth_id", path.Base(rel.cfg.Identity), "the Event Handler chart's default key")
			// The defaults: the forward output to Fluentd, recordings re-tagged.
			require.Len(t, rel.fbc.Pipeline.Outputs, 1)
			out := rel.fbc.Pipeline.Outputs[0]
			assert.Equal(t, "forward", out["name"])
			assert.Equal(t, "fluentd.logging.svc.cluster.local", out["host"])
			assert.Equal(t, 24224, out["port"])
			tls := volume(t, rel.spec, "fluentd-tls").Secret
			assert.Equal(t, "teleport-fluent-bit-fluentd-tls", tls.SecretName)
			assert.Equal(t, "session.$1.log", strings.Fields(filter(rel.fbc, "rewrite_tag")["rule"].(string))[2])
			assert.False(t, rel.cfg.LockEnabled)
			assert.Empty(t, rel.cfg.MetricsListen)
			assert.Empty(t, rel.o.serviceMonitors)
			// The cursor on the StatefulSet's claim.
			require.Len(t, rel.sts.Spec.VolumeClaimTemplates, 1)
			assert.Equal(t, "5Gi", rel.sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String())
			assert.Equal(t, "/var/lib/teleport-fluent-bit/state", rel.cfg.StorageDir)
			assert.Equal(t, "registry.example.com/teleport-fluent-bit:"+loadChart(t).Metadata.AppVersion,
				container(t, rel.spec, "install-plugin").Image, "the plugin image's tag defaults to appVersion")
		},
	}, {
		name: "identity from tbot",
		vals: []string{`
image: {repository: registry.example.com/teleport-fluent-bit, tag: 0.1.0}
tbot:
  enabled: true
  clusterName: teleport.example.com
  teleportProxyAddress: teleport.example.com:443
fluentd:
  host: fluentd.logging.svc.cluster.local
  certificate: {secretName: fluentd-tls}
`},
		check: func(t *testing.T, rel *rendered) {
			tc := checkTbot(t, rel)
			assert.Equal(t, "teleport.example.com:443", tc.ProxyServer)
			assert.Equal(t, rel.cfg.TeleportAddr, tc.ProxyServer, "teleport.address defaults to tbot's")
			assert.Equal(t, "teleport-fluent-bit-bot", tc.Onboarding.Token)
			assert.Equal(t, "teleport-fluent-bit-identity", tc.Outputs[0].Destination.Name)
			sat := volume(t, rel.o.deployments[0].Spec.Template.Spec, "join-sa-token").Projected.Sources[0].ServiceAccountToken
			assert.Equal(t, "teleport.example.com", sat.Audience, "the cluster name")
		},
	}, {
		name: "tbot writing a named Secret, joining the Auth Service",
		vals: []string{baseValues, `
teleport: {address: "", identitySecretName: my-identity, identitySecretPath: auth_id}
tbot: {enabled: true, clusterName: example, teleportAuthAddress: "auth.teleport.svc:3025", token: my-token}
`},
		check: func(t *testing.T, rel *rendered) {
			tc := checkTbot(t, rel)
			assert.Equal(t, "auth.teleport.svc:3025", tc.AuthServer)
			assert.Empty(t, tc.ProxyServer)
			assert.Equal(t, "auth.teleport.svc:3025", rel.cfg.TeleportAddr)
			assert.Equal(t, "my-token", tc.Onboarding.Token)
			assert.Equal(t, "my-identity", tc.Outputs[0].Destination.Name)
		},
	}, {
		name: "locking on",
		vals: []string{baseValues, `
locking: {enabled: true, failedAttemptsCount: 5, period: 2m, for: 24h}
`},
		check: func(t *testing.T, rel *rendered) {
			assert.True(t, rel.cfg.LockEnabled)
			assert.Equal(t, 5, rel.cfg.LockFailedAttempts)
			assert.Equal(t, "2m0s", rel.cfg.LockPeriod.String())
			assert.Equal(t, "24h0m0s", rel.cfg.LockFor.String())
		},
	}, {
		name: "plugin settings",
		vals: []string{baseValues, `
eventHandler:
  storagePath: /var/lib/teleport/plugins/event-handler/storage
  timeout: 10s
  batch: 20
  windowSize: 12h
  types: [session.start, user.login]
  skipEventTypes: [app.session.chunk]
  skipSessionTypes: []
  startTime: "2024-01-01T00:00:00Z"
  concurrency: 2
  extraProperties: {queue_bytes: 16M, session_give_up_after: 24h}
teleport: {debug: true, refreshInterval: 30s}
routing: {auditTag: audit, recordingTag: ""}
`},
		check: func(t *testing.T, rel *rendered) {
			c := rel.cfg
			assert.Equal(t, "/var/lib/teleport/plugins/event-handler/storage", c.StorageDir)
			assert.Equal(t, "10s", c.PollInterval.String())
			assert.Equal(t, 20, c.Batch)
			assert.Equal(t, "12h0m0s", c.WindowSize.String())
			assert.Equal(t, []string{"session.start", "user.login"}, c.Types)
			assert.Equal(t, []string{"app.session.chunk"}, c.SkipEventTypes)
			assert.Empty(t, c.SkipSessionTypes, "[]: every recording type exported")
			assert.Equal(t, "2024-01-01T00:00:00Z", c.StartTime.Format("2006-01-02T15:04:05Z07:00"))
			assert.Equal(t, 2, c.Concurrency)
			assert.Equal(t, 16<<20, c.QueueBytes)
			assert.Equal(t, "24h0m0s", c.SessionGiveUpAfter.String())
			assert.True(t, c.Debug)
			assert.Equal(t, "30s", c.RefreshInterval.String())
			assert.Nil(t, filter(rel.fbc, "rewrite_tag"), "recordings keep the audit tag")
			assert.Equal(t, "audit", rel.fbc.Pipeline.Inputs[0]["tag"])
		},
	}, {
		name: "custom output, no Fluentd",
		vals: []string{baseValues, `
fluentd: {enabled: false}
outputs:
  - {name: s3, match: "*", bucket: audit, region: eu-west-1, store_dir: /var/lib/teleport-fluent-bit/s3}
  - {name: forward, match: "session.*", host: collector, port: 24224}
filters:
  - {name: grep, match: teleport.audit, exclude: "event ^app\\.session\\.chunk$"}
volumes:
  - {name: aws, secret: {secretName: aws-credentials}}
volumeMounts:
  - {name: aws, mountPath: /etc/aws, readOnly: true}
extraEnv:
  - {name: AWS_SHARED_CREDENTIALS_FILE, value: /etc/aws/credentials}
`},
		check: func(t *testing.T, rel *rendered) {
			want := []map[string]any{
				{"name": "s3", "match": "*", "bucket": "audit", "region": "eu-west-1", "store_dir": "/var/lib/teleport-fluent-bit/s3"},
				{"name": "forward", "match": "session.*", "host": "collector", "port": 24224},
			}
			assert.Equal(t, want, rel.fbc.Pipeline.Outputs)
			assert.Equal(t, []string{"rewrite_tag", "grep"}, []string{
				rel.fbc.Pipeline.Filters[0]["name"].(string), rel.fbc.Pipeline.Filters[1]["name"].(string)})
			for _, v := range rel.spec.Volumes {
				assert.NotEqual(t, "fluentd-tls", v.Name)
			}
			m := mountFor(rel.fb, "/etc/aws/credentials")
			require.NotNil(t, m)
			assert.Equal(t, "aws-credentials", volume(t, rel.spec, m.Name).Secret.SecretName)
		},
	}, {
		name: "metrics on",
		vals: []string{baseValues, `
metrics: {enabled: true, port: 9102, serviceMonitor: {enabled: true, labels: {release: prometheus}}}
`},
		check: func(t *testing.T, rel *rendered) {
			_, port, ok := strings.Cut(rel.cfg.MetricsListen, ":")
			require.True(t, ok, rel.cfg.MetricsListen)
			assert.Equal(t, "9102", port)
			ports := map[string]int32{}
			for _, p := range rel.fb.Ports {
				ports[p.Name] = p.ContainerPort
			}
			assert.Equal(t, int32(9102), ports["metrics"], "the container port is metrics_listen's")
			assert.Equal(t, int32(rel.fbc.Service["http_port"].(int)), ports["http"])
			svc := rel.o.services[rel.sts.Spec.ServiceName]
			svcPorts := map[string]string{}
			for _, p := range svc.Spec.Ports {
				svcPorts[p.Name] = p.TargetPort.String()
				assert.Contains(t, ports, p.TargetPort.String(), "Service port %s targets a container port", p.Name)
			}
			require.Len(t, rel.o.serviceMonitors, 1)
			sm := rel.o.serviceMonitors[0]
			assert.True(t, labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)), "selects the Service")
			assert.Equal(t, []string{namespace}, sm.Spec.NamespaceSelector.MatchNames)
			assert.Equal(t, "prometheus", sm.Metadata.Labels["release"])
			var paths []string
			for _, e := range sm.Spec.Endpoints {
				assert.Contains(t, svcPorts, e.Port, "endpoint port %s is a Service port", e.Port)
				paths = append(paths, e.Port+e.Path)
			}
			assert.ElementsMatch(t, []string{"metrics/metrics", "http/api/v2/metrics/prometheus"}, paths)
		},
	}, {
		name: "existing claim, a CA for the Proxy",
		vals: []string{baseValues, `
persistentVolumeClaim: {existingClaim: event-handler-storage}
tls: {existingCASecretName: teleport-ca}
`},
		check: func(t *testing.T, rel *rendered) {
			assert.Empty(t, rel.sts.Spec.VolumeClaimTemplates)
			dm := mountFor(rel.fb, rel.cfg.StorageDir)
			assert.Equal(t, "event-handler-storage", volume(t, rel.spec, dm.Name).PersistentVolumeClaim.ClaimName)
			var certFile string
			for _, e := range rel.fb.Env {
				if e.Name == "SSL_CERT_FILE" {
					certFile = e.Value
				}
			}
			m := mountFor(rel.fb, certFile)
			require.NotNil(t, m, "SSL_CERT_FILE %q is mounted", certFile)
			assert.Equal(t, "teleport-ca", volume(t, rel.spec, m.Name).Secret.SecretName)
			assert.Equal(t, "ca.pem", path.Base(certFile))
		},
	}, {
		name: "no claim",
		vals: []string{baseValues, `persistentVolumeClaim: {enabled: false}`},
		check: func(t *testing.T, rel *rendered) {
			assert.Empty(t, rel.sts.Spec.VolumeClaimTemplates)
			dm := mountFor(rel.fb, rel.cfg.StorageDir)
			assert.NotNil(t, volume(t, rel.spec, dm.Name).EmptyDir)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := values(t, tt.vals...)
			rel := check(t, ch, vals)
			tt.check(t, rel)
			lintClean(t, vals)
		})
	}
}

// lintClean runs `helm lint` with vals: no warning, no error.
func lintClean(t *testing.T, vals map[string]any) {
	t.Helper()
	l := lint.All(chartDir, vals, namespace, false)
	for _, m := range l.Messages {
		assert.Less(t, m.Severity, support.WarningSev, "helm lint: %s", m)
	}
}

// helm upgrade restarts the pods when their configuration changes, and
// only then.
func TestConfigChangeRestartsPods(t *testing.T) {
	ch := loadChart(t)
	checksums := func(extra string) (string, string) {
		manifest, err := render(ch, values(t, baseValues, `tbot: {enabled: true, clusterName: c, teleportProxyAddress: "p:443"}`, extra))
		require.NoError(t, err)
		o := decodeAll(t, manifest)
		return o.statefulSets[0].Spec.Template.Annotations["checksum/config"],
			o.deployments[0].Spec.Template.Annotations["checksum/config"]
	}
	fb, tb := checksums("")
	require.NotEmpty(t, fb)
	require.NotEmpty(t, tb)
	fb2, tb2 := checksums("")
	assert.Equal(t, fb, fb2)
	assert.Equal(t, tb, tb2)
	fb3, tb3 := checksums("eventHandler: {batch: 100}")
	assert.NotEqual(t, fb, fb3, "Fluent Bit's configuration changed")
	assert.Equal(t, tb, tb3)
	_, tb4 := checksums(`tbot: {teleportProxyAddress: "q:443"}`)
	assert.NotEqual(t, tb, tb4, "tbot's configuration changed")
}

// Bad values fail at render time (values.schema.json, or the chart's own
// checks) with a message naming the value.
func TestBadValues(t *testing.T) {
	ch := loadChart(t)
	tests := []struct {
		name, vals, want string
	}{
		{"no Teleport address", `teleport: {address: ""}`, "teleport.address is required"},
		{"no identity", `teleport: {identitySecretName: ""}`, "teleport.identitySecretName is required"},
		{"no plugin image", `image: {repository: ""}`, "image.repository is required"},
		{"tbot without a cluster name", `tbot: {enabled: true, teleportProxyAddress: "p:443"}`, "tbot.clusterName is required"},
		{"tbot with both addresses", `tbot: {enabled: true, clusterName: c, teleportProxyAddress: "p:443", teleportAuthAddress: "a:3025"}`, "mutually exclusive"},
		{"tbot without an address", `{teleport: {address: ""}, tbot: {enabled: true, clusterName: c}}`, "tbot.teleportProxyAddress or tbot.teleportAuthAddress is required"},
		{"no Fluentd host", `fluentd: {host: ""}`, "fluentd.host is required"},
		{"no Fluentd certificates", `fluentd: {certificate: {secretName: ""}}`, "fluentd.certificate.secretName is required"},
		{"no output at all", `fluentd: {enabled: false}`, "no output"},
		{"cursor at the root", `eventHandler: {storagePath: /state}`, "eventHandler.storagePath"},
		{"cursor named like the buffer", `eventHandler: {storagePath: /data/buffer}`, "eventHandler.storagePath"},
		{"ServiceMonitor without metrics", `metrics: {serviceMonitor: {enabled: true}}`, "metrics.serviceMonitor.enabled needs metrics.enabled"},
		// values.schema.json
		{"an Event Handler value with no meaning here", `fluentd: {url: "https://fluentd:8888/test.log"}`, "url"},
		{"a misspelled value", `teleport: {adress: x}`, "adress"},
		{"batch out of range", `eventHandler: {batch: 0}`, "batch"},
		{"batch not a number", `eventHandler: {batch: many}`, "batch"},
		{"not a duration", `eventHandler: {timeout: 5 seconds}`, "timeout"},
		{"address without a port", `teleport: {address: teleport.example.com}`, "address"},
		{"output without a name", `outputs: [{match: "*"}]`, "name"},
		{"two clusters of one name", `clusters: [{name: eu, address: "eu:443", identitySecretName: a}, {name: eu, address: "eu2:443", identitySecretName: b}]`,
			`clusters: the name "eu" is already used by another entry of clusters`},
		{"a cluster named like the first cursor", `clusters: [{name: state, address: "eu:443", identitySecretName: a}]`,
			`the name "state" is already used by eventHandler.storagePath`},
		{"a cluster named like the buffer", `clusters: [{name: buffer, address: "eu:443", identitySecretName: a}]`,
			`the name "buffer" is already used by Fluent Bit's buffer`},
		{"clusters on Fluent Bit 4.0", `{fluentBit: {image: {tag: "4.0.14"}}, clusters: [{name: eu, address: "eu:443", identitySecretName: a}]}`,
			"clusters needs Fluent Bit 4.1 or later"},
		{"a cluster without its identity", `clusters: [{name: eu, address: "eu:443"}]`, "identitySecretName"},
		{"a cluster name unfit for a volume", `clusters: [{name: EU_1, address: "eu:443", identitySecretName: a}]`, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(ch, values(t, baseValues, tt.vals))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			t.Log(err)
		})
	}
	t.Run("the chart's defaults alone", func(t *testing.T) {
		_, err := render(ch, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is required")
	})
}

// deploy/kubernetes/teleport-fluent-bit.yaml, for kubectl apply without
// Helm, is the chart rendered with deploy/kubernetes/values.yaml; `go test
// -run TestStaticManifest -update` rewrites it.
func TestStaticManifest(t *testing.T) {
	ch := loadChart(t)
	v, err := chartutil.ReadValuesFile(staticValues)
	require.NoError(t, err)
	manifest, err := render(ch, v.AsMap())
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(staticManifest, []byte(manifest), 0o644))
	}
	have, err := os.ReadFile(staticManifest)
	require.NoError(t, err)
	if manifest != string(have) {
		want, got := strings.Split(manifest, "\n"), strings.Split(string(have), "\n")
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Errorf("%s is stale (go test -run TestStaticManifest -update, in deploy/helm): line %d is %q, the chart renders %q",
			staticManifest, i+1, line(got), line(want))
	}
	rel := check(t, ch, v.AsMap())
	tc := checkTbot(t, rel)
	lintClean(t, v.AsMap())

	// The Teleport token of deploy/kubernetes/tctl lets exactly this tbot
	// join: its name, and the service account in the namespace.
	data, err := os.ReadFile("../kubernetes/tctl/teleport-fluent-bit-bot.yaml")
	require.NoError(t, err)
	var found bool
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var r struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     struct {
				JoinMethod string `yaml:"join_method"`
				Kubernetes struct {
					Allow []struct {
						ServiceAccount string `yaml:"service_account"`
					}
				}
			}
		}
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		if r.Kind != "token" {
			continue
		}
		found = true
		assert.Equal(t, tc.Onboarding.Token, r.Metadata.Name)
		assert.Equal(t, tc.Onboarding.JoinMethod, r.Spec.JoinMethod)
		require.Len(t, r.Spec.Kubernetes.Allow, 1)
		assert.Equal(t, namespace+":"+rel.o.deployments[0].Spec.Template.Spec.ServiceAccountName, r.Spec.Kubernetes.Allow[0].ServiceAccount)
	}
	assert.True(t, found, "a token in deploy/kubernetes/tctl")
}

// Every value in values.yaml is in the README's values table.
func TestREADMEListsEveryValue(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, yaml.Unmarshal(data, &v))
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, x := range m {
			key := prefix + k
			if sub, ok := x.(map[string]any); ok && len(sub) > 0 && !freeForm[key] {
				walk(key+".", sub)
				continue
			}
			assert.True(t, bytes.Contains(readme, []byte("| `"+key+"`")), "README.md: a row for %s", key)
		}
	}
	walk("", v)
}

// freeForm values are passed through as they are; the README lists them
// whole.
var freeForm = map[string]bool{
	"podSecurityContext": true, "securityContext": true, "resources": true, "tbot.resources": true,
}

// clusters: one teleport input per Teleport cluster in one Fluent Bit, each
// with its own identity Secret, cursor directory, name and tag, and its
// recordings re-tagged by its own filter.
func TestSeveralClusters(t *testing.T) {
	ch := loadChart(t)
	vals := values(t, baseValues, `
metrics: {enabled: true}
locking: {enabled: true}
clusters:
  - name: staging
    address: staging.example.com:443
    identitySecretName: identity-staging
  - name: eu
    address: eu.example.com:3025
    identitySecretName: identity-eu
    identitySecretPath: identity
    tag: eu.audit
    types: [user.login]
    startTime: "2026-01-01T00:00:00Z"
    extraProperties: {queue_bytes: 8M}
`)
	rel := check(t, ch, vals)
	lintClean(t, vals)
	require.Len(t, rel.cfgs, 3)
	first, staging, eu := rel.cfgs[0], rel.cfgs[1], rel.cfgs[2]
	assert.Equal(t, "teleport.example.com", first.Name())
	assert.Equal(t, "staging", staging.Name())
	assert.Equal(t, "staging.example.com:443", staging.TeleportAddr)
	assert.Equal(t, "/var/run/teleport-identity-staging/auth_id", staging.Identity)
	assert.Equal(t, "/var/lib/teleport-fluent-bit/staging", staging.StorageDir)
	assert.Equal(t, "/var/run/teleport-identity-eu/identity", eu.Identity)
	assert.Equal(t, []string{"user.login"}, eu.Types)
	assert.Equal(t, 8<<20, eu.QueueBytes)
	assert.Equal(t, "2026-01-01T00:00:00Z", eu.StartTime.UTC().Format(time.RFC3339))
	assert.Empty(t, first.Types, "per-cluster values stay with their cluster")
	for _, c := range rel.cfgs {
		assert.Equal(t, "0.0.0.0:2021", c.MetricsListen, "one listener, told apart by the cluster label")
		assert.True(t, c.LockEnabled)
	}
	for name, secret := range map[string]string{"identity-staging": "identity-staging", "identity-eu": "identity-eu"} {
		v := volume(t, rel.spec, name)
		require.NotNil(t, v.Secret)
		assert.Equal(t, secret, v.Secret.SecretName)
	}

	// Tags, and a recordings filter per tag.
	var tags []any
	for _, i := range rel.fbc.Pipeline.Inputs {
		tags = append(tags, i["tag"])
	}
	assert.Equal(t, []any{"teleport.audit", "teleport.audit.staging", "eu.audit"}, tags)
	var matches []any
	for _, f := range rel.fbc.Pipeline.Filters {
		if f["name"] == "rewrite_tag" {
			matches = append(matches, f["match"])
			assert.Equal(t, "$recording_session_id ^(.+)$ session.$1.log false", f["rule"])
		}
	}
	assert.Equal(t, tags, matches)
}
