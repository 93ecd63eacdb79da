// Package kubernetes holds only tests: they decode the manifests in this
// directory strictly into the Kubernetes API types (k8s.io/api), so an
// unknown or misplaced field fails, and check that what refers to what
// (volumes, ConfigMaps, Secrets, service accounts, paths in the Fluent Bit
// and plugin configurations) lines up. The Kubernetes dependencies stay in
// this test package; the plugin does not link them.
package kubernetes

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// objects are the decoded manifests, by kind.
type objects struct {
	namespaces   []*corev1.Namespace
	accounts     map[string]*corev1.ServiceAccount
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	roles        map[string]*rbacv1.Role
	bindings     []*rbacv1.RoleBinding
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
}

// decodeAll reads every document of every *.yaml here with the strict
// YAML serializer (unknown and duplicate fields are errors).
func decodeAll(t *testing.T) *objects {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, corev1.AddToScheme(scheme))
	require.NoError(t, appsv1.AddToScheme(scheme))
	require.NoError(t, rbacv1.AddToScheme(scheme))
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})

	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	o := &objects{accounts: map[string]*corev1.ServiceAccount{}, configMaps: map[string]*corev1.ConfigMap{},
		services: map[string]*corev1.Service{}, roles: map[string]*rbacv1.Role{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, gvk, err := ser.Decode(doc, nil, nil)
			require.NoError(t, err, "%s, document %d", f, i)
			switch v := obj.(type) {
			case *corev1.Namespace:
				o.namespaces = append(o.namespaces, v)
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
				t.Fatalf("%s, document %d: unexpected kind %s", f, i, gvk)
			}
		}
	}
	return o
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// The strict decoder does reject what a lenient one would drop.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, appsv1.AddToScheme(scheme))
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	_, _, err := ser.Decode([]byte("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  replica: 1\n"), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown field "spec.replica"`)
}

func TestManifestKinds(t *testing.T) {
	o := decodeAll(t)
	require.Len(t, o.namespaces, 1)
	ns := o.namespaces[0].Name
	require.Len(t, o.statefulSets, 1)
	require.Len(t, o.deployments, 1)
	for _, m := range []metaNS{o.statefulSets[0], o.deployments[0]} {
		assert.Equal(t, ns, m.GetNamespace())
	}
	for _, cm := range o.configMaps {
		assert.Equal(t, ns, cm.Namespace)
	}
}

type metaNS interface{ GetNamespace() string }

// podChecks holds for every pod template: mounts name volumes that exist,
// ConfigMaps and service accounts exist, images are pinned.
func podChecks(t *testing.T, o *objects, name string, spec corev1.PodSpec, claims []corev1.PersistentVolumeClaim) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
		if v.ConfigMap != nil {
			assert.Contains(t, o.configMaps, v.ConfigMap.Name, "%s: volume %s", name, v.Name)
		}
	}
	for _, c := range claims {
		vols[c.Name] = corev1.Volume{Name: c.Name}
	}
	if spec.ServiceAccountName != "" {
		assert.Contains(t, o.accounts, spec.ServiceAccountName, "%s: service account", name)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		assert.Regexp(t, `:[0-9][\w.-]*$`, c.Image, "%s/%s: image pinned to a version", name, c.Name)
		for _, m := range c.VolumeMounts {
			assert.Contains(t, vols, m.Name, "%s/%s mounts %s", name, c.Name, m.Name)
		}
	}
}

func TestWorkloadsReferToWhatExists(t *testing.T) {
	o := decodeAll(t)
	for _, d := range o.deployments {
		sel, err := metaSelector(d.Spec.Selector.MatchLabels)
		require.NoError(t, err)
		assert.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: selector matches the pods", d.Name)
		podChecks(t, o, d.Name, d.Spec.Template.Spec, nil)
	}
	for _, s := range o.statefulSets {
		sel, err := metaSelector(s.Spec.Selector.MatchLabels)
		require.NoError(t, err)
		assert.True(t, sel.Matches(labels.Set(s.Spec.Template.Labels)), "%s: selector matches the pods", s.Name)
		podChecks(t, o, s.Name, s.Spec.Template.Spec, s.Spec.VolumeClaimTemplates)
		svc := o.services[s.Spec.ServiceName]
		require.NotNil(t, svc, "%s: serviceName %s", s.Name, s.Spec.ServiceName)
		assert.Equal(t, "None", svc.Spec.ClusterIP, "a headless governing service")
		assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)))
		require.NotNil(t, s.Spec.Replicas)
		assert.Equal(t, int32(1), *s.Spec.Replicas, "one export per storage_dir")
	}
	for _, b := range o.bindings {
		assert.Equal(t, "Role", b.RoleRef.Kind)
		assert.Contains(t, o.roles, b.RoleRef.Name)
		for _, s := range b.Subjects {
			assert.Contains(t, o.accounts, s.Name)
		}
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return labels.SelectorFromSet(m), nil
}

// mountFor returns the mount of c whose path holds path.
func mountFor(c corev1.Container, path string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = m
		}
	}
	return best
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// The Fluent Bit pod: its configuration (from the ConfigMap) loads the
// plugin from where the init container puts it; the plugin's TOML loads
// through the plugin's own loader, with the cursor on the claim and the
// identity from tbot's Secret; the TLS files come from the Secret made
// from configure's output.
func TestFluentBitPodLinesUp(t *testing.T) {
	o := decodeAll(t)
	s := o.statefulSets[0]
	spec := s.Spec.Template.Spec
	fb := container(t, spec, "fluent-bit")
	m := regexp.MustCompile(`^fluent/fluent-bit:(\d+)\.\d+\.\d+$`).FindStringSubmatch(fb.Image)
	require.NotNil(t, m, fb.Image)
	major, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, major, 5)

	// Fluent Bit's configuration file is a key of the mounted ConfigMap.
	require.Equal(t, "-c", fb.Args[0])
	cfgPath := fb.Args[1]
	cfgMount := mountFor(fb, cfgPath)
	require.NotNil(t, cfgMount)
	cm := o.configMaps[volume(spec, cfgMount.Name).ConfigMap.Name]
	fbYAML, ok := cm.Data[filepath.Base(cfgPath)]
	require.True(t, ok, "ConfigMap %s has %s", cm.Name, filepath.Base(cfgPath))

	var fbc struct {
		Service  map[string]any `yaml:"service"`
		Plugins  []string       `yaml:"plugins"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Filters []map[string]any `yaml:"filters"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	dec := yaml.NewDecoder(strings.NewReader(fbYAML))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&fbc))

	// The plugin: copied by the init container into the shared emptyDir.
	require.Len(t, fbc.Plugins, 1)
	pm := mountFor(fb, fbc.Plugins[0])
	require.NotNil(t, pm, "the plugin %s is mounted", fbc.Plugins[0])
	require.NotNil(t, volume(spec, pm.Name).EmptyDir)
	install := container(t, spec, "install-plugin")
	im := install.VolumeMounts[0]
	assert.Equal(t, pm.Name, im.Name)
	assert.Equal(t, filepath.Join(im.MountPath, filepath.Base(fbc.Plugins[0])),
		filepath.Join(strings.TrimSuffix(install.Command[len(install.Command)-1], "/"), filepath.Base(fbc.Plugins[0])))
	assert.Contains(t, install.Command, "/opt/teleport-fluent-bit/"+filepath.Base(fbc.Plugins[0]))

	// The input: filesystem storage, its TOML from the ConfigMap.
	in := fbc.Pipeline.Inputs[0]
	assert.Equal(t, "teleport", in["name"])
	assert.Equal(t, "filesystem", in["storage.type"])
	tomlPath := in["config"].(string)
	tm := mountFor(fb, tomlPath)
	require.NotNil(t, tm)
	require.Equal(t, cfgMount.Name, tm.Name)
	tomlText, ok := cm.Data[filepath.Base(tomlPath)]
	require.True(t, ok)
	assert.Equal(t, "$"+record.SessionIDField+" ^(.+)$ session.$1.log false", fbc.Pipeline.Filters[0]["rule"])

	// The TOML loads through the plugin's own loader.
	tomlFile := filepath.Join(t.TempDir(), "teleport-fluent-bit.toml")
	require.NoError(t, os.WriteFile(tomlFile, []byte(tomlText), 0o600))
	cfg, _, err := conf.Load(func(k string) string {
		if k == "config" {
			return tomlFile
		}
		return ""
	}, nil)
	require.NoError(t, err)
	assert.True(t, cfg.RefreshEnabled, "follows the identity tbot renews")

	// storage_dir and the buffer: on the claim, in subdirectories (the
	// plugin creates storage_dir 0700 itself).
	claims := map[string]bool{}
	for _, c := range s.Spec.VolumeClaimTemplates {
		claims[c.Name] = true
	}
	for _, p := range []string{cfg.StorageDir, fbc.Service["storage.path"].(string)} {
		dm := mountFor(fb, p)
		require.NotNil(t, dm, "%s is mounted", p)
		assert.True(t, claims[dm.Name], "%s is on the PersistentVolumeClaim", p)
		assert.NotEqual(t, dm.MountPath, p, "a subdirectory of the claim")
		assert.False(t, dm.ReadOnly)
	}
	assert.Nil(t, spec.SecurityContext.FSGroup, "no fsGroup: it would open storage_dir to the group")

	// The identity: the Secret tbot writes, mounted without subPath.
	idm := mountFor(fb, cfg.Identity)
	require.NotNil(t, idm)
	assert.Empty(t, idm.SubPath, "a subPath mount never sees tbot's renewals")
	idVol := volume(spec, idm.Name)
	require.NotNil(t, idVol.Secret)
	var tbot struct {
		Outputs []struct {
			Type        string `yaml:"type"`
			Destination struct {
				Type string `yaml:"type"`
				Name string `yaml:"name"`
			} `yaml:"destination"`
		} `yaml:"outputs"`
		Onboarding struct {
			JoinMethod string `yaml:"join_method"`
		} `yaml:"onboarding"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(o.configMaps["tbot-config"].Data["tbot.yaml"]), &tbot))
	require.Len(t, tbot.Outputs, 1)
	assert.Equal(t, "identity", tbot.Outputs[0].Type)
	assert.Equal(t, "kubernetes_secret", tbot.Outputs[0].Destination.Type)
	assert.Equal(t, idVol.Secret.SecretName, tbot.Outputs[0].Destination.Name)
	assert.Equal(t, "identity", filepath.Base(cfg.Identity), "tbot's identity output writes the key \"identity\"")
	assert.Equal(t, "kubernetes", tbot.Onboarding.JoinMethod)
	// tbot may write exactly that Secret.
	var canWrite bool
	for _, r := range o.roles["tbot-identity-secret"].Rules {
		if slices.Contains(r.ResourceNames, idVol.Secret.SecretName) && slices.Contains(r.Verbs, "update") {
			canWrite = true
		}
	}
	assert.True(t, canWrite)

	// The forward output: mTLS files from the Secret of configure's output.
	out := fbc.Pipeline.Outputs[0]
	assert.Equal(t, "forward", out["name"])
	assert.Equal(t, true, out["require_ack_response"])
	for _, k := range []string{"tls.ca_file", "tls.crt_file", "tls.key_file"} {
		p := out[k].(string)
		sm := mountFor(fb, p)
		require.NotNil(t, sm, "%s %s is mounted", k, p)
		v := volume(spec, sm.Name)
		require.NotNil(t, v.Secret, k)
		assert.Contains(t, []string{"ca.crt", "client.crt", "client.key"}, filepath.Base(p), "a file configure writes")
	}
}

// tbot joins with a projected service account token whose path is the one
// it is told, and the pod runs as the service account the Role is bound to.
func TestTbotDeployment(t *testing.T) {
	o := decodeAll(t)
	d := o.deployments[0]
	spec := d.Spec.Template.Spec
	c := container(t, spec, "tbot")
	assert.Regexp(t, `^public\.ecr\.aws/gravitational/tbot-distroless:17\.\d+\.\d+$`, c.Image)
	var tokenPath string
	for _, e := range c.Env {
		if e.Name == "KUBERNETES_TOKEN_PATH" {
			tokenPath = e.Value
		}
	}
	require.NotEmpty(t, tokenPath)
	m := mountFor(c, tokenPath)
	require.NotNil(t, m)
	v := volume(spec, m.Name)
	require.NotNil(t, v.Projected)
	sat := v.Projected.Sources[0].ServiceAccountToken
	require.NotNil(t, sat)
	assert.Equal(t, filepath.Base(tokenPath), sat.Path)
	assert.NotEmpty(t, sat.Audience)
	bound := false
	for _, b := range o.bindings {
		for _, s := range b.Subjects {
			bound = bound || (s.Kind == "ServiceAccount" && s.Name == spec.ServiceAccountName && s.Namespace == d.Namespace)
		}
	}
	assert.True(t, bound, "tbot's service account may write its Secret")
}
