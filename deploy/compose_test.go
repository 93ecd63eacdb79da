// Package deploy holds only tests: they check docker-compose.yml and the
// files it uses, with the loader `docker compose config` is built on
// (compose-go), since no Docker engine runs where these tests do. The
// compose-go dependency stays in this test package.
package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	return root
}

// loadCompose loads docker-compose.yml like `docker compose config`:
// schema validation, interpolation, normalization, consistency checks.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithName("teleport-fluent-bit"))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err)
	return p
}

func TestComposeLoads(t *testing.T) {
	p := loadCompose(t)
	assert.ElementsMatch(t, []string{"teleport", "setup", "fluentd", "fluent-bit"}, p.ServiceNames())
	assert.ElementsMatch(t, []string{"teleport-data", "config", "fluent-bit-data"}, keys(p.Volumes))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Official images, pinned to a version; Fluent Bit >= 5.0; one Teleport
// version for the server and the setup's tctl.
func TestComposeImagesPinned(t *testing.T) {
	p := loadCompose(t)
	tag := func(svc string) (string, string) {
		s, err := p.GetService(svc)
		require.NoError(t, err)
		i := strings.LastIndex(s.Image, ":")
		require.Greater(t, i, 0, "%s: image %s has no tag", svc, s.Image)
		return s.Image[:i], s.Image[i+1:]
	}
	img, v := tag("teleport")
	assert.Equal(t, "public.ecr.aws/gravitational/teleport-distroless", img)
	assert.Regexp(t, `^17\.\d+\.\d+$`, v)
	img, v2 := tag("setup")
	assert.Equal(t, "public.ecr.aws/gravitational/teleport-distroless-debug", img)
	assert.Equal(t, v, v2, "tctl of the same version as the Auth Service")

	img, v = tag("fluent-bit")
	assert.Equal(t, "fluent/fluent-bit", img)
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`).FindStringSubmatch(v)
	require.NotNil(t, m, "fluent-bit pinned to x.y.z, not %s", v)
	major, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, major, 5, "Fluent Bit >= 5.0 (verified client certificates on its servers, the plugin's tested ABI)")

	img, v = tag("fluentd")
	assert.Equal(t, "fluent/fluentd", img)
	assert.Regexp(t, `^v1\.\d+\.\d+-debian-\d+\.\d+$`, v)
}

// Every file a service mounts from the repository exists, or is built by
// `make build`; every named volume is declared.
func TestComposeMountsExist(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				assert.Contains(t, p.Volumes, v.Source, "%s: volume %s is declared", s.Name, v.Source)
			case types.VolumeTypeBind:
				rel, err := filepath.Rel(root, v.Source)
				require.NoError(t, err)
				require.False(t, strings.HasPrefix(rel, ".."), "%s mounts %s from outside the repository", s.Name, v.Source)
				if strings.HasPrefix(rel, "build/") {
					assert.Contains(t, string(makefile), "$(BUILD)/"+strings.TrimPrefix(rel, "build/"),
						"%s mounts %s, which make build must produce", s.Name, rel)
					continue
				}
				fi, err := os.Stat(v.Source)
				require.NoError(t, err, "%s mounts %s", s.Name, rel)
				assert.True(t, fi.Mode().IsRegular(), "%s is a file", rel)
				assert.True(t, v.ReadOnly, "%s: %s is mounted read-only", s.Name, rel)
			default:
				t.Errorf("%s: unexpected mount type %s", s.Name, v.Type)
			}
		}
	}
}

// mountOf returns the mount of service s whose target holds path.
func mountOf(s types.ServiceConfig, path string) *types.ServiceVolumeConfig {
	var best *types.ServiceVolumeConfig
	for i := range s.Volumes {
		v := &s.Volumes[i]
		if path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/") {
			if best == nil || len(v.Target) > len(best.Target) {
				best = v
			}
		}
	}
	return best
}

// The paths inside the containers line up: what setup.sh's configure
// writes, where Fluent Bit's configuration looks for it, where Fluentd's
// command looks, and what each container mounts.
func TestComposePathsLineUp(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)
	fb, err := p.GetService("fluent-bit")
	require.NoError(t, err)
	fd, err := p.GetService("fluentd")
	require.NoError(t, err)
	setup, err := p.GetService("setup")
	require.NoError(t, err)

	// Fluent Bit runs the file mounted from deploy/fluent-bit/.
	require.Len(t, fb.Command, 2)
	cfgPath := fb.Command[1]
	m := mountOf(fb, cfgPath)
	require.NotNil(t, m, "fluent-bit's config %s is mounted", cfgPath)
	assert.Equal(t, filepath.Join(root, "deploy/fluent-bit/fluent-bit.yaml"), m.Source)

	var conf struct {
		Service  map[string]any `yaml:"service"`
		Plugins  []string       `yaml:"plugins"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	b, err := os.ReadFile(m.Source)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &conf))

	// The plugin is mounted where the configuration loads it from.
	require.Len(t, conf.Plugins, 1)
	pm := mountOf(fb, conf.Plugins[0])
	require.NotNil(t, pm, "plugin %s is mounted", conf.Plugins[0])
	assert.Equal(t, filepath.Join(root, "build/in_teleport.so"), pm.Source)

	// Certificates and the TOML come from the config volume setup writes.
	var fromConfig []string
	fromConfig = append(fromConfig, conf.Pipeline.Inputs[0]["config"].(string))
	for _, k := range []string{"tls.ca_file", "tls.crt_file", "tls.key_file"} {
		fromConfig = append(fromConfig, conf.Pipeline.Outputs[0][k].(string))
	}
	for _, path := range fromConfig {
		fm := mountOf(fb, path)
		require.NotNil(t, fm, "fluent-bit: %s is mounted", path)
		assert.Equal(t, "config", fm.Source, path)
		sm := mountOf(setup, path)
		require.NotNil(t, sm, "setup writes %s", path)
		assert.Equal(t, "config", sm.Source)
		assert.Equal(t, fm.Target, sm.Target, "the same path in both containers")
	}
	// The buffer is on the data volume, writable.
	bm := mountOf(fb, conf.Service["storage.path"].(string))
	require.NotNil(t, bm)
	assert.Equal(t, "fluent-bit-data", bm.Source)
	assert.False(t, bm.ReadOnly)
	// Fluent Bit forwards to the fluentd service.
	assert.Equal(t, "fluentd", conf.Pipeline.Outputs[0]["host"])
	assert.Contains(t, fd.Expose, "24224")

	// Fluentd runs the fluent.conf setup writes into the config volume.
	ci := slices.Index(fd.Command, "-c")
	require.GreaterOrEqual(t, ci, 0)
	fdm := mountOf(fd, fd.Command[ci+1])
	require.NotNil(t, fdm)
	assert.Equal(t, "config", fdm.Source)

	// setup.sh: configure writes to the config volume, with the storage on
	// fluent-bit's data volume, the plugin where fluent-bit mounts it.
	script, err := os.ReadFile(filepath.Join(root, "deploy/compose/setup.sh"))
	require.NoError(t, err)
	var args []string
	for _, line := range strings.Split(string(script), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "teleport-fluent-bit" && f[1] == "configure" {
			args = f[2:]
		}
	}
	require.NotEmpty(t, args, "setup.sh runs teleport-fluent-bit configure")
	assert.Equal(t, "config", mountOf(setup, args[0]).Source, "configure's DIR is the config volume")
	assert.Equal(t, "teleport:3025", args[1])
	flag := func(name string) string {
		i := slices.Index(args, name)
		require.GreaterOrEqual(t, i, 0, "configure %s", name)
		return args[i+1]
	}
	assert.Equal(t, "fluent-bit-data", mountOf(fb, flag("--storage")).Source)
	assert.Equal(t, conf.Plugins[0], flag("--plugin"))
	assert.Contains(t, flag("--dns-names"), "fluentd")
	// The CLI is mounted into setup.
	assert.Equal(t, filepath.Join(root, "build/teleport-fluent-bit"), mountOf(setup, "/usr/local/bin/teleport-fluent-bit").Source)
	assert.Equal(t, types.NetworkModeServicePrefix+"teleport", setup.NetworkMode, "tctl next to the Auth Service")
	assert.Equal(t, types.ServiceConditionCompletedSuccessfully, fb.DependsOn["setup"].Condition)
	assert.Equal(t, types.ServiceConditionCompletedSuccessfully, fd.DependsOn["setup"].Condition)
}

// `docker compose config -q`, where the Docker CLI and its compose plugin
// are installed (it needs no engine).
func TestDockerComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI")
	}
	if err := exec.Command(docker, "compose", "version").Run(); err != nil {
		t.Skip("no docker compose plugin")
	}
	cmd := exec.Command(docker, "compose", "-f", filepath.Join(repoRoot(t), "docker-compose.yml"), "config", "-q")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), out.String())
}
