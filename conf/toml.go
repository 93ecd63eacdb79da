package conf

import (
	"errors"
	"fmt"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"
)

// The TOML file is the Event Handler's teleport-event-handler.toml: every
// key the Event Handler reads is accepted (settings the plugin has no use
// for, [forward.fluentd], are accepted and ignored with a notice), plus the
// plugin's own keys. Any other key is an error, so that a typo never goes
// unnoticed.

// fluentdTable is the Event Handler's output section. Fluent Bit's outputs
// replace it.
const fluentdTable = "forward.fluentd"

// fluentdKeys are the keys of [forward.fluentd] the Event Handler reads
// (session.url is how its resolver also finds session-url).
var fluentdKeys = []string{"url", "session-url", "session.url", "ca", "cert", "key"}

// namespaceKey is accepted for old Event Handler files; only "default" is
// valid.
const namespaceKey = "namespace"

// tomlFile is a TOML file read and checked against the known keys.
type tomlFile struct {
	path   string         // as named by the config property or FDFWD_CONFIG
	dir    string         // directory relative paths are resolved against
	values map[string]any // dotted key path -> decoded value
}

// tomlSchema indexes the accepted key paths.
type tomlSchema struct {
	leaves   map[string]bool // accepted value paths
	tables   map[string]bool // proper prefixes of accepted paths
	ignored  map[string]bool // paths accepted and ignored
	known    []string        // documented paths, for suggestions
	resolved map[string]bool // paths whose relative values are resolved against the file's directory
}

var schema = func() *tomlSchema {
	s := &tomlSchema{
		leaves:   map[string]bool{},
		tables:   map[string]bool{},
		ignored:  map[string]bool{},
		resolved: map[string]bool{},
	}
	add := func(path string) {
		s.leaves[path] = true
		parts := strings.Split(path, ".")
		for i := 1; i < len(parts); i++ {
			s.tables[strings.Join(parts[:i], ".")] = true
		}
	}
	for _, d := range keyDefs {
		for _, p := range d.toml {
			add(p)
			if d.kind == kindPath {
				s.resolved[p] = true
			}
		}
		s.known = append(s.known, d.toml[0])
	}
	add(namespaceKey)
	s.known = append(s.known, namespaceKey)
	s.tables[fluentdTable] = true
	s.tables["forward"] = true
	for _, k := range fluentdKeys {
		p := fluentdTable + "." + k
		add(p)
		s.ignored[p] = true
		s.known = append(s.known, p)
	}
	return s
}()

// readTOML reads, decodes and checks the file at path. It returns the
// values of the known keys and the notices to log.
func readTOML(path string) (*tomlFile, []string, error) {
	data, err := readConfigFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("config file %s: cannot read: %v", path, err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			msg := strings.TrimPrefix(de.Error(), "toml: ")
			return nil, nil, fmt.Errorf("config file %s: line %d, column %d: %s", path, row, col, logging.OneLine(msg))
		}
		return nil, nil, fmt.Errorf("config file %s: %s", path, logging.OneLine(err.Error()))
	}

	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	f := &tomlFile{path: path, dir: dir, values: map[string]any{}}
	if err := f.walk(doc, ""); err != nil {
		return nil, nil, err
	}

	var notices []string
	if _, ok := lookupTable(doc, fluentdTable); ok {
		notices = append(notices, fmt.Sprintf(
			"config file %s: [%s] is ignored: Fluent Bit's outputs deliver the records (see docs/configuration.md)",
			path, fluentdTable))
	}
	if v, ok := f.values[namespaceKey]; ok {
		if s, isString := v.(string); !isString || s != "default" {
			return nil, nil, f.errorf(`invalid %s %s: only "default" is supported`, namespaceKey, quote(display(v)))
		}
	}
	return f, notices, nil
}

// maxConfigSize bounds the TOML file: an Event Handler file is a few
// hundred bytes.
const maxConfigSize = 1 << 20

// readConfigFile reads a regular file of at most maxConfigSize bytes. It
// never blocks: a named pipe or a device such as /dev/zero is refused
// rather than waited on or read forever.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := fi.Mode()
	switch {
	case m.IsDir():
		return nil, errors.New("is a directory")
	case m&os.ModeNamedPipe != 0:
		return nil, errors.New("not a regular file (a named pipe)")
	case m&os.ModeDevice != 0:
		return nil, errors.New("not a regular file (a device)")
	case !m.IsRegular():
		return nil, fmt.Errorf("not a regular file (%s)", m.Type())
	case fi.Size() > maxConfigSize:
		return nil, fmt.Errorf("%d bytes, more than a configuration can be (at most %d)", fi.Size(), maxConfigSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err == nil && len(data) > maxConfigSize {
		err = fmt.Errorf("more than %d bytes, more than a configuration can be", maxConfigSize)
	}
	return data, err
}

// walk records the value of every accepted key under table m (at prefix)
// and fails on the first unknown key, in sorted order.
func (f *tomlFile) walk(m map[string]any, prefix string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		v := m[k]
		sub, isTable := v.(map[string]any)
		switch {
		case schema.leaves[path]:
			if isTable {
				return f.errorf("%s must be a value, not a table", quote(path))
			}
			if !schema.ignored[path] {
				f.values[path] = v
			}
		case schema.tables[path]:
			if !isTable {
				return f.errorf("%s must be a table", quote(path))
			}
			if err := f.walk(sub, path); err != nil {
				return err
			}
		default:
			msg := fmt.Sprintf("unknown key %s", quote(path))
			if s := suggest(path, schema.known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", quote(s))
			} else if prefix != "" {
				msg += fmt.Sprintf(" (known keys of [%s]: %s)", prefix, strings.Join(schema.knownIn(prefix), ", "))
			}
			return f.errorf("%s", msg)
		}
	}
	return nil
}

// errorf formats an error about the file.
func (f *tomlFile) errorf(format string, args ...any) error {
	return fmt.Errorf("config file %s: %s", f.path, fmt.Sprintf(format, args...))
}

// resolve returns a path value of the file, relative ones joined to the
// file's directory.
func (f *tomlFile) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

// knownIn lists the documented keys under table prefix, relative to it.
func (s *tomlSchema) knownIn(prefix string) []string {
	var out []string
	for _, k := range s.known {
		if rest, ok := strings.CutPrefix(k, prefix+"."); ok {
			out = append(out, rest)
		}
	}
	return out
}

// lookupTable finds the table at a dotted path.
func lookupTable(doc map[string]any, path string) (map[string]any, bool) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		next, ok := cur[part].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// display renders a decoded TOML value the way an error message shows it.
func display(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = display(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, or "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3 // at most two edits
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
