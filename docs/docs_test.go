package docs

import (
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
)

// root is the repository, seen from this package's directory.
const root = ".."

// skipDirs are never searched for Markdown or for mentions of docs/ pages.
var skipDirs = map[string]bool{".git": true, "build": true, "testdata": true, "node_modules": true}

var (
	// inlineLink matches [text](target) and ![alt](target), with an
	// optional title.
	inlineLink = regexp.MustCompile(`\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// codeSpan is a backtick code span; links inside one are text.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// htmlAnchor is an explicit anchor: <a id="x"> or <a name="x">.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	// scheme marks an absolute URL (http:, https:, mailto:, ...).
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// pageMention is a docs/ page named in code, comments or templates,
	// e.g. "see docs/operating.md#troubleshooting".
	pageMention = regexp.MustCompile("(?:^|[\\s\"'(`])((?:\\.\\./)*docs/[A-Za-z0-9_.-]+\\.md)(#[A-Za-z0-9_-]+)?")
)

// problem is a link that leads nowhere.
type problem struct {
	file, target, why string
	line              int
}

func (p problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.file, p.line, p.target, p.why)
}

// markdown is a Markdown file's lines outside fenced code blocks, with code
// spans blanked, by line number (1-based).
func markdown(text string) map[int]string {
	out := map[int]string{}
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out[i+1] = codeSpan.ReplaceAllString(line, "")
	}
	return out
}

// slug is GitHub's anchor for a heading: lower case, punctuation other
// than - and _ dropped, spaces made hyphens.
func slug(heading string) string {
	heading = inlineLinkText(heading)
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// inlineLinkText replaces [text](url) by text.
func inlineLinkText(s string) string {
	return regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(s, "$1")
}

// anchors returns the anchors a Markdown file defines: one per heading
// (repeats numbered -1, -2 as GitHub does) and explicit <a id> anchors.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimLeft(line, "#")
		if h == "" || h[0] != ' ' {
			continue
		}
		s := slug(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(h), "#")))
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// checkTarget says what is wrong with target, linked from file (both
// relative to repo), or "".
func checkTarget(repo, file, target string) string {
	path, anchor, _ := strings.Cut(target, "#")
	var dest string
	switch {
	case path == "":
		dest = file
	case strings.HasPrefix(path, "/"):
		dest = filepath.Clean(strings.TrimPrefix(path, "/"))
	default:
		dest = filepath.Join(filepath.Dir(file), path)
	}
	if dest == ".." || strings.HasPrefix(dest, "../") {
		return "leads outside the repository"
	}
	fi, err := os.Stat(filepath.Join(repo, dest))
	if err != nil {
		return "no such file or directory: " + dest
	}
	if anchor == "" {
		return ""
	}
	if fi.IsDir() || !strings.HasSuffix(dest, ".md") {
		return "an anchor into something that is not a Markdown file"
	}
	data, err := os.ReadFile(filepath.Join(repo, dest))
	if err != nil {
		return err.Error()
	}
	if !anchors(string(data))[anchor] {
		return fmt.Sprintf("no heading in %s has the anchor #%s", dest, anchor)
	}
	return ""
}

// walk calls fn for every file under repo (relative path) outside skipDirs.
func walk(t *testing.T, repo string, fn func(rel string)) {
	t.Helper()
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != repo && (skipDirs[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			return err
		}
		fn(filepath.ToSlash(rel))
		return nil
	})
	require.NoError(t, err)
}

// brokenLinks checks every relative link of every Markdown file under repo.
func brokenLinks(t *testing.T, repo string) []problem {
	var out []problem
	walk(t, repo, func(rel string) {
		if !strings.HasSuffix(rel, ".md") {
			return
		}
		data, err := os.ReadFile(filepath.Join(repo, rel))
		require.NoError(t, err)
		lines := markdown(string(data))
		nums := make([]int, 0, len(lines))
		for n := range lines {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		for _, n := range nums {
			for _, m := range inlineLink.FindAllStringSubmatch(lines[n], -1) {
				target := m[1]
				if scheme.MatchString(target) {
					continue
				}
				if why := checkTarget(repo, rel, target); why != "" {
					out = append(out, problem{file: rel, line: n, target: target, why: why})
				}
			}
		}
	})
	return out
}

// brokenMentions checks every docs/ page named outside Markdown (code,
// comments, templates, configuration files): the page and its anchor exist.
func brokenMentions(t *testing.T, repo string) []problem {
	var out []problem
	walk(t, repo, func(rel string) {
		if strings.HasSuffix(rel, ".md") || strings.HasPrefix(rel, "docs/") {
			return
		}
		data, err := os.ReadFile(filepath.Join(repo, rel))
		require.NoError(t, err)
		if slices.Contains(data, 0) {
			return // binary
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range pageMention.FindAllStringSubmatch(line, -1) {
				target := m[1] + m[2]
				from := rel
				if !strings.HasPrefix(m[1], "../") {
					from = "README.md" // docs/x.md: from the repository root
				}
				if why := checkTarget(repo, from, target); why != "" {
					out = append(out, problem{file: rel, line: i + 1, target: target, why: why})
				}
			}
		}
	})
	return out
}

func TestLinksLeadSomewhere(t *testing.T) {
	for _, p := range brokenLinks(t, root) {
		t.Errorf("broken link: %s", p)
	}
}

func TestDocsPagesNamedInCodeExist(t *testing.T) {
	for _, p := range brokenMentions(t, root) {
		t.Errorf("a docs page named that does not exist: %s", p)
	}
}

// Every page in docs/ is listed in the README's documentation index, so a
// reader starting at the front door finds it.
func TestReadmeIndexListsEveryPage(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, pages)
	for _, p := range pages {
		link := "](docs/" + filepath.Base(p) + ")"
		assert.Contains(t, string(readme), link, "README.md: the documentation index must link docs/%s", filepath.Base(p))
	}
}

// The checker itself finds what it must, on a repository made for it.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	repo := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(repo, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	write("README.md", strings.Join([]string{
		"# Title",
		"[ok](docs/a.md) [ok anchor](docs/a.md#the-cursor-storage_dirstatejson) [ok dir](deploy/)",
		"[ok self](#title) [ok second](docs/a.md#setup-1) [ok html](docs/a.md#custom) [web](https://example.com/x.md)",
		"[missing](docs/nope.md)",
		"[bad anchor](docs/a.md#nope)",
		"`[in code](docs/nope2.md)`",
		"```",
		"[in a fence](docs/nope3.md)",
		"```",
		"[outside](../etc/passwd)",
	}, "\n"))
	write("docs/a.md", "# A\n## The cursor (`storage_dir/state.json`)\n## Setup\n## Setup\n<a id=\"custom\"></a>\n[up](../README.md#title) [bad up](../README.md#nothing)\n")
	write("deploy/x.yaml", "# see docs/a.md#setup and docs/gone.md\n")
	write("conf/x.go", "// see ../docs/a.md#missing-anchor\n")

	var got []string
	for _, p := range brokenLinks(t, repo) {
		got = append(got, fmt.Sprintf("%s:%d %s", p.file, p.line, p.target))
	}
	assert.ElementsMatch(t, []string{
		"README.md:4 docs/nope.md",
		"README.md:5 docs/a.md#nope",
		"README.md:10 ../etc/passwd",
		"docs/a.md:6 ../README.md#nothing",
	}, got)

	got = nil
	for _, p := range brokenMentions(t, repo) {
		got = append(got, fmt.Sprintf("%s:%d %s", p.file, p.line, p.target))
	}
	assert.ElementsMatch(t, []string{
		"deploy/x.yaml:1 docs/gone.md",
		"conf/x.go:1 ../docs/a.md#missing-anchor",
	}, got)
}

// fencedBlocks returns the fenced code blocks of a Markdown text whose info
// string is lang, with the line each starts on.
func fencedBlocks(text, lang string) (blocks []string, lines []int) {
	var cur []string
	in, start := false, 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```"+lang:
			in, cur, start = true, nil, i+1
		case in && trimmed == "```":
			in = false
			blocks, lines = append(blocks, strings.Join(cur, "\n")), append(lines, start)
		case in:
			cur = append(cur, line)
		}
	}
	return blocks, lines
}

// fluentBitInputKeys are properties Fluent Bit itself reads on any input;
// besides these, any key with a dot (storage.type, thread.ring_buffer...)
// is Fluent Bit's.
var fluentBitInputKeys = map[string]bool{
	"name": true, "tag": true, "alias": true, "log_level": true, "mem_buf_limit": true, "threaded": true,
}

// teleportInputs returns the property names of every teleport input in a
// classic (ini) or YAML Fluent Bit configuration block.
func teleportInputs(t *testing.T, block, lang string) [][]string {
	var out [][]string
	switch lang {
	case "ini":
		var keys []string
		isTeleport, inInput := false, false
		flush := func() {
			if inInput && isTeleport {
				out = append(out, keys)
			}
			keys, isTeleport = nil, false
		}
		for _, line := range strings.Split(block, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "...":
			case strings.HasPrefix(f[0], "["):
				flush()
				inInput = strings.EqualFold(f[0], "[INPUT]")
			case inInput:
				k := strings.ToLower(f[0])
				keys = append(keys, k)
				if k == "name" && len(f) > 1 && f[1] == "teleport" {
					isTeleport = true
				}
			}
		}
		flush()
	case "yaml":
		if !strings.Contains(block, "pipeline:") {
			return nil // not a Fluent Bit configuration (a Teleport role, prometheus.yml)
		}
		var doc struct {
			Pipeline struct {
				Inputs []map[string]any `yaml:"inputs"`
			} `yaml:"pipeline"`
		}
		if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
			t.Errorf("a yaml block does not parse: %v", err)
			return nil
		}
		for _, in := range doc.Pipeline.Inputs {
			if in["name"] != "teleport" {
				continue
			}
			var keys []string
			for k := range in {
				keys = append(keys, strings.ToLower(k))
			}
			out = append(out, keys)
		}
	}
	return out
}

// pages are the user documentation: the README and docs/.
func pages(t *testing.T) []string {
	p, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	return append([]string{filepath.Join(root, "README.md")}, p...)
}

// Every teleport input in the documentation's Fluent Bit examples uses only
// properties the plugin reads: a renamed or misspelled key in an example
// fails here.
func TestExamplesUseRealProperties(t *testing.T) {
	known := map[string]bool{}
	for _, p := range conf.Properties {
		known[p] = true
	}
	n := 0
	for _, page := range pages(t) {
		data, err := os.ReadFile(page)
		require.NoError(t, err)
		for _, lang := range []string{"ini", "yaml"} {
			blocks, lines := fencedBlocks(string(data), lang)
			for i, b := range blocks {
				for _, keys := range teleportInputs(t, b, lang) {
					n++
					for _, k := range keys {
						if !known[k] && !fluentBitInputKeys[k] && !strings.Contains(k, ".") {
							t.Errorf("%s: the %s block at line %d gives the teleport input %q, which is not a property the plugin reads", page, lang, lines[i], k)
						}
					}
				}
			}
		}
	}
	assert.Positive(t, n, "no teleport input found in the examples: is the block parser broken?")
}

// Every TOML example loads with the plugin's own loader. A snippet may
// leave out required keys, but every key in it must be known and its value
// valid.
func TestTOMLExamplesLoad(t *testing.T) {
	n := 0
	for _, page := range pages(t) {
		data, err := os.ReadFile(page)
		require.NoError(t, err)
		blocks, lines := fencedBlocks(string(data), "toml")
		for i, b := range blocks {
			n++
			path := filepath.Join(t.TempDir(), "example.toml")
			require.NoError(t, os.WriteFile(path, []byte(b), 0o600))
			_, _, err := conf.Load(func(k string) string {
				if k == "config" {
					return path
				}
				return ""
			}, nil)
			if err != nil && !strings.HasPrefix(err.Error(), "no ") {
				t.Errorf("%s: the toml block at line %d does not load: %v", page, lines[i], err)
			}
		}
	}
	assert.Positive(t, n, "no toml example found")
}

// The metrics table in operating.md has a row for every metric the plugin
// serves, with its type, and names every kind of error counted.
func TestMetricsTableListsEveryMetric(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "docs", "operating.md"))
	require.NoError(t, err)
	rows := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := regexp.MustCompile("^\\|\\s*`(teleport_fluent_bit_[a-z_]+)").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}

	rec := httptest.NewRecorder()
	metrics.New(time.Now, "").Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	n := 0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		// promhttp adds its own promhttp_metric_handler_errors_total, named
		// in the text above the table.
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "teleport_fluent_bit_") {
			n++
			row, ok := rows[f[2]]
			if assert.True(t, ok, "docs/operating.md: no row for the metric %s", f[2]) {
				assert.Contains(t, row, "| "+f[3]+" |", "docs/operating.md: the row of %s must give its type %s", f[2], f[3])
			}
		}
		if m := regexp.MustCompile(`^(teleport_fluent_bit_errors_total)\{kind="([a-z_]+)"\}`).FindStringSubmatch(line); m != nil {
			assert.Contains(t, rows[m[1]], "`"+m[2]+"`", "docs/operating.md: the errors_total row must name the kind %s", m[2])
		}
	}
	assert.Positive(t, n, "no metric served")
}
