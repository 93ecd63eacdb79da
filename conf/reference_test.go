package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referencePath is the configuration reference. Its key tables are checked
// against keyDefs, so a key added to conf without a row there (or a row
// left behind for a key removed) fails here and in `make docs-check`.
var referencePath = filepath.Join("..", "docs", "configuration.md")

// referenceRows returns the rows of the reference's key tables by the
// property in their first cell: a table row whose first cell starts with a
// code span. A property with two rows is a problem.
func referenceRows(doc string) (map[string]string, []string) {
	first := regexp.MustCompile("^\\|\\s*`([^`]+)`")
	rows := map[string]string{}
	var problems []string
	for _, line := range strings.Split(doc, "\n") {
		m := first.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			problems = append(problems, fmt.Sprintf("two rows for %s", m[1]))
		}
		rows[m[1]] = line
	}
	return rows, problems
}

// shortDuration writes d the way the reference does: 24h, 5m, 1m30s, 500ms.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// kindWord is what the reference's type column says for each kind.
var kindWord = map[kind]string{
	kindString:   "string",
	kindPath:     "path",
	kindBool:     "on/off",
	kindInt:      "integer",
	kindDuration: "duration",
	kindSize:     "size",
	kindList:     "list",
	kindTime:     "RFC 3339 time",
}

// defaultText is the default of d as the reference writes it, or "" when
// the key has none to show (unset, or a zero duration meaning "never").
func defaultText(d *keyDef) string {
	switch v := d.field(Default()).(type) {
	case *string:
		return *v
	case *bool:
		if *v {
			return "on"
		}
		return "off"
	case *int:
		if d.kind == kindSize {
			return formatSize(int64(*v))
		}
		if *v == 0 {
			return ""
		}
		return fmt.Sprint(*v)
	case *time.Duration:
		if *v == 0 {
			return ""
		}
		return shortDuration(*v)
	case *[]string:
		return strings.Join(*v, ",")
	case *time.Time:
		return ""
	}
	panic(fmt.Sprintf("key %s: unexpected field type %T", d.prop, d.field(Default())))
}

// boundText is the bound of d the reference must state, or "".
func boundText(d *keyDef) string {
	switch {
	case d.kind == kindInt && d.max > 0:
		return fmt.Sprintf("%d to %d", d.min, d.max)
	case d.kind == kindInt && d.min > 0:
		return fmt.Sprintf("at least %d", d.min)
	case d.kind == kindSize && d.min > 0:
		return "at least `" + formatSize(d.min) + "`"
	case d.kind == kindDuration && d.min > 1:
		return "at least `" + shortDuration(time.Duration(d.min)) + "`"
	}
	return ""
}

// referenceProblems lists what the reference doc lacks or holds too much
// of, measured against conf's own tables (keyDefs, the config key, the
// ignored Event Handler settings).
func referenceProblems(doc string) []string {
	rows, problems := referenceRows(doc)
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	for i := range keyDefs {
		d := &keyDefs[i]
		row, ok := rows[d.prop]
		if !ok {
			add("no table row for the key %s (a row starting with | `%s` |)", d.prop, d.prop)
			continue
		}
		names := append(append(append([]string{}, d.propAliases...), d.env...), d.toml...)
		for _, n := range names {
			if !strings.Contains(row, "`"+n+"`") {
				add("the row of %s must name %s", d.prop, n)
			}
		}
		if !strings.Contains(row, kindWord[d.kind]) {
			add("the row of %s must give its type (%s)", d.prop, kindWord[d.kind])
		}
		if def := defaultText(d); def != "" && !strings.Contains(row, "`"+def+"`") {
			add("the row of %s must give its default `%s`", d.prop, def)
		}
		if b := boundText(d); b != "" && !strings.Contains(row, b) {
			add("the row of %s must give its bound (%s)", d.prop, b)
		}
	}

	// The file is named by a property and a variable only.
	if row, ok := rows[configProp]; !ok {
		add("no table row for the key %s", configProp)
	} else if !strings.Contains(row, "`"+configEnv+"`") {
		add("the row of %s must name %s", configProp, configEnv)
	}

	// Every row is a key the plugin reads: none is left behind.
	known := map[string]bool{}
	for _, p := range Properties {
		known[p] = true
	}
	for prop := range rows {
		if !known[prop] {
			add("a row for %s, which is not a property the plugin reads", prop)
		}
	}

	// What is accepted and ignored is said too.
	for _, n := range ignoredEnv {
		if !strings.Contains(doc, "`"+n+"`") {
			add("the ignored variable %s is not named", n)
		}
	}
	if !strings.Contains(doc, "`["+fluentdTable+"]`") {
		add("the ignored table [%s] is not named", fluentdTable)
	}
	for _, k := range fluentdKeys {
		if !strings.Contains(doc, "`"+k+"`") {
			add("the ignored key %s.%s is not named", fluentdTable, k)
		}
	}
	if !strings.Contains(doc, "`"+namespaceKey+"`") {
		add("the TOML key %s is not named", namespaceKey)
	}
	return problems
}

func TestReferenceDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	require.NoError(t, err)
	for _, p := range referenceProblems(string(data)) {
		t.Errorf("%s: %s", referencePath, p)
	}
}

// The check finds a key taken out of the reference, a wrong default, a
// missing alias and a row for a key that does not exist.
func TestReferenceCheckFindsWhatIsMissing(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	require.NoError(t, err)
	doc := string(data)
	var kept []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "| `queue_bytes`") {
			kept = append(kept, line)
		}
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"row removed", strings.Join(kept, "\n"), "no table row for the key queue_bytes (a row starting with | `queue_bytes` |)"},
		{"default changed", strings.Replace(doc, "| `48h` |", "| `24h` |", 1), "the row of session_give_up_after must give its default `48h`"},
		{"variable left out", strings.Replace(doc, ", `FDFWD_LOCKING_PERIOD`", "", 1), "the row of lock_period must name FDFWD_LOCKING_PERIOD"},
		{"bound changed", strings.Replace(doc, "1 to 256", "1 to 255", 1), "the row of concurrency must give its bound (1 to 256)"},
		{"row for no key", doc + "\n| `bogus_key` | x |\n", "a row for bogus_key, which is not a property the plugin reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEqual(t, doc, tc.doc, "the change must apply to the reference")
			assert.Equal(t, []string{tc.want}, referenceProblems(tc.doc))
		})
	}
}

func TestReferenceTextHelpers(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 5 * time.Minute: "5m", time.Minute: "1m", 90 * time.Second: "1m30s",
		500 * time.Millisecond: "500ms", 10 * time.Second: "10s", 36 * time.Hour: "36h", 90 * time.Minute: "1h30m",
	} {
		assert.Equal(t, want, shortDuration(d))
	}
	for i := range keyDefs {
		_, ok := kindWord[keyDefs[i].kind]
		assert.True(t, ok, "a word for the kind of %s", keyDefs[i].prop)
	}
}
