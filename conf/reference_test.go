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
// code span.
func referenceRows(t *testing.T, doc string) map[string]string {
	t.Helper()
	first := regexp.MustCompile("^\\|\\s*`([^`]+)`")
	rows := map[string]string{}
	for _, line := range strings.Split(doc, "\n") {
		m := first.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		require.NotContains(t, rows, m[1], "%s: two rows for %s", referencePath, m[1])
		rows[m[1]] = line
	}
	return rows
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

func TestReferenceDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	require.NoError(t, err)
	doc := string(data)
	rows := referenceRows(t, doc)

	for i := range keyDefs {
		d := &keyDefs[i]
		row, ok := rows[d.prop]
		if !assert.True(t, ok, "%s: no table row for the key %s (a row starting with | `%s` |)", referencePath, d.prop, d.prop) {
			continue
		}
		names := append(append(append([]string{}, d.propAliases...), d.env...), d.toml...)
		for _, n := range names {
			assert.Contains(t, row, "`"+n+"`", "%s: the row of %s must name %s", referencePath, d.prop, n)
		}
		assert.Contains(t, row, kindWord[d.kind], "%s: the row of %s must give its type", referencePath, d.prop)
		if def := defaultText(d); def != "" {
			assert.Contains(t, row, "`"+def+"`", "%s: the row of %s must give its default", referencePath, d.prop)
		}
		if b := boundText(d); b != "" {
			assert.Contains(t, row, b, "%s: the row of %s must give its bound", referencePath, d.prop)
		}
	}

	// The file is named by a property and a variable only.
	if row, ok := rows[configProp]; assert.True(t, ok, "%s: no row for %s", referencePath, configProp) {
		assert.Contains(t, row, "`"+configEnv+"`")
	}

	// Every row is a key the plugin reads: none is left behind.
	known := map[string]bool{}
	for _, p := range Properties {
		known[p] = true
	}
	for prop := range rows {
		assert.True(t, known[prop], "%s: a row for %s, which is not a property the plugin reads", referencePath, prop)
	}

	// What is accepted and ignored is said too.
	for _, n := range ignoredEnv {
		assert.Contains(t, doc, "`"+n+"`", "%s: the ignored variable %s", referencePath, n)
	}
	assert.Contains(t, doc, "`["+fluentdTable+"]`")
	for _, k := range fluentdKeys {
		assert.Contains(t, doc, "`"+k+"`", "%s: the ignored key %s.%s", referencePath, fluentdTable, k)
	}
	assert.Contains(t, doc, "`"+namespaceKey+"`")
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
