package conf

import (
	"strconv"
	"strings"
	"time"
)

// Redacted returns every setting as text, keyed by property name (plus
// "config" for the TOML file), for debug logs. Credentials appear as the
// paths of their files, never as content: Config holds no secret, and
// callers print this rather than the struct so that stays true if a field
// is ever added.
func (c *Config) Redacted() map[string]string {
	out := map[string]string{configProp: c.ConfigFile}
	for i := range keyDefs {
		d := &keyDefs[i]
		var s string
		switch v := d.field(c).(type) {
		case *string:
			s = *v
		case *bool:
			s = strconv.FormatBool(*v)
		case *int:
			if d.kind == kindSize {
				s = formatSize(int64(*v))
			} else {
				s = strconv.Itoa(*v)
			}
		case *time.Duration:
			s = v.String()
		case *[]string:
			s = strings.Join(*v, ",")
		case *time.Time:
			if !v.IsZero() {
				s = v.Format(time.RFC3339Nano)
			}
		}
		out[d.prop] = s
	}
	return out
}

// String renders Redacted on one line, in key order, each value followed by
// its source when not the default: `teleport_addr=example.com:443[toml] ...`.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	red := c.Redacted()
	var b strings.Builder
	write := func(key string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := red[key]
		if v == "" || strings.ContainsAny(v, " =[]") || strconv.Quote(v) != `"`+v+`"` {
			v = strconv.Quote(v)
		}
		b.WriteString(key + "=" + v)
		if src := c.Sources[key]; src != "" && src != SourceDefault {
			b.WriteString("[" + src + "]")
		}
	}
	write(configProp)
	for _, d := range keyDefs {
		write(d.prop)
	}
	return b.String()
}
