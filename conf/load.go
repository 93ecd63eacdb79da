package conf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Sources of a value, as recorded in Config.Sources.
const (
	SourceProperty = "property"
	SourceEnv      = "env"
	SourceTOML     = "toml"
	SourceDefault  = "default"
)

// Default returns a Config holding the default of every key. It is not
// valid on its own: the Teleport address, credentials and storage
// directory have no default.
func Default() *Config {
	return &Config{
		RefreshInterval:        DefaultRefreshInterval,
		Batch:                  DefaultBatch,
		WindowSize:             DefaultWindowSize,
		Concurrency:            DefaultConcurrency,
		SearchLateTolerance:    DefaultSearchLateTolerance,
		ExportLateHorizon:      DefaultExportLateHorizon,
		ExportLatePollMax:      DefaultExportLatePollMax,
		ExportChunkMaxAttempts: DefaultExportChunkMaxAttempts,
		PollInterval:           DefaultPollInterval,
		SkipSessionTypes:       append([]string(nil), DefaultSkipSessionTypes...),
		SessionGiveUpAfter:     DefaultSessionGiveUpAfter,
		SessionRetryInterval:   DefaultSessionRetryInterval,
		SessionMaxAttempts:     DefaultSessionMaxAttempts,
		LockFailedAttempts:     DefaultLockAttempts,
		LockPeriod:             DefaultLockPeriod,
		ProgressInterval:       DefaultProgressInterval,
		CallbackBytes:          DefaultCallbackBytes,
		QueueBytes:             DefaultQueueBytes,
		CommitDelay:            DefaultCommitDelay,
		Sources:                map[string]string{},
	}
}

// Load merges Fluent Bit properties, FDFWD_* environment variables and the
// optional TOML file named by the `config` property (or FDFWD_CONFIG), with
// precedence property > environment > TOML > default, validates everything
// and returns the Config, a list of notices (info lines to log, e.g. that
// [forward.fluentd] is ignored), or an error whose message is ONE clear line
// naming the key and the value.
//
// prop returns "" for a missing or empty property (Fluent Bit's API cannot
// tell them apart), env behaves like os.Getenv; for both, an empty or blank
// value counts as unset. Load reads no file but the TOML file.
//
// Every value found is checked, including one overridden by a source of
// higher precedence.
//
// Value errors read `invalid <key> "<value>": <reason>`, with <key> named as
// in its source: the property (batch), the variable (FDFWD_BATCH), or the
// TOML key path prefixed by the file (config file /x/y.toml: invalid batch
// "0": ...).
func Load(prop func(key string) string, env func(key string) string) (*Config, []string, error) {
	if prop == nil {
		prop = func(string) string { return "" }
	}
	if env == nil {
		env = func(string) string { return "" }
	}

	if err := probeMisspellings(prop); err != nil {
		return nil, nil, err
	}

	cfg := Default()
	var notices []string

	// The TOML file.
	var file *tomlFile
	cfgRaw, err := pick(lookupStrings(prop, SourceProperty, []string{configProp}),
		lookupStrings(env, SourceEnv, []string{configEnv}), nil)
	if err != nil {
		return nil, nil, err
	}
	cfg.Sources[configProp] = SourceDefault
	if cfgRaw != nil {
		var fileNotices []string
		file, fileNotices, err = readTOML(cfgRaw.str)
		if err != nil {
			return nil, nil, err
		}
		cfg.ConfigFile = cfgRaw.str
		cfg.Sources[configProp] = cfgRaw.source
		notices = append(notices, fileNotices...)
	}
	notices = append(notices, envNotices(env)...)

	// Every key, from the source with the highest precedence that sets it.
	given := map[string]*raw{}
	for i := range keyDefs {
		d := &keyDefs[i]
		// Every source's value is checked, also when a source with higher
		// precedence overrides it: a broken setting fails now rather than
		// when the override goes away. Applying the lowest precedence first
		// leaves the highest in cfg.
		var r *raw
		for _, found := range [][]raw{
			file.lookup(d),
			lookupStrings(env, SourceEnv, d.env),
			lookupStrings(prop, SourceProperty, append([]string{d.prop}, d.propAliases...)),
		} {
			top, err := pick(found)
			if err != nil {
				return nil, nil, err
			}
			if top == nil {
				continue
			}
			if err := top.apply(d, cfg); err != nil {
				return nil, nil, err
			}
			r = top
		}
		if r == nil {
			cfg.Sources[d.prop] = SourceDefault
			continue
		}
		cfg.Sources[d.prop] = r.source
		given[d.prop] = r
	}

	if err := validate(cfg, given); err != nil {
		return nil, nil, err
	}
	return cfg, notices, nil
}

// probeMisspellings fails naming every property of Misspellings that is
// set.
func probeMisspellings(prop func(string) string) error {
	var msgs []string
	for _, m := range Misspellings {
		if strings.TrimSpace(prop(m.Property)) != "" {
			msgs = append(msgs, fmt.Sprintf("unknown property %s: did you mean %s?", quote(m.Property), quote(m.Use)))
		}
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// raw is a value as found in one source, before parsing.
type raw struct {
	source string    // SourceProperty, SourceEnv or SourceTOML
	name   string    // the key as named in its source: property, variable or TOML key path
	str    string    // the value of a property or variable, trimmed
	val    any       // the decoded TOML value
	file   *tomlFile // the TOML file, for SourceTOML
}

// shown is the value as an error message repeats it.
func (r *raw) shown() string {
	if r.source == SourceTOML {
		return display(r.val)
	}
	return r.str
}

// label names the key and where it was set, for messages about several
// keys.
func (r *raw) label() string {
	if r.source == SourceTOML {
		return fmt.Sprintf("%s in config file %s", r.name, r.file.path)
	}
	return r.name
}

// invalid is the error for a value that does not fit the key.
func (r *raw) invalid(reason string) error {
	msg := fmt.Sprintf("invalid %s %s: %s", r.name, quote(r.shown()), reason)
	if r.source == SourceTOML {
		return r.file.errorf("%s", msg)
	}
	return errors.New(msg)
}

// lookup returns the values the file gives key d, under any of its names.
// An empty string counts as unset except for lists, where it means an
// explicitly empty list.
func (f *tomlFile) lookup(d *keyDef) []raw {
	if f == nil {
		return nil
	}
	var out []raw
	for _, p := range d.toml {
		v, ok := f.values[p]
		if !ok {
			continue
		}
		if s, isString := v.(string); isString && strings.TrimSpace(s) == "" && d.kind != kindList {
			continue
		}
		out = append(out, raw{source: SourceTOML, name: p, val: v, file: f})
	}
	return out
}

// pick returns the value of the source with the highest precedence that
// sets the key, or nil. Within one source, names of the same key (aliases)
// must not disagree.
func pick(sources ...[]raw) (*raw, error) {
	for _, rs := range sources {
		if len(rs) == 0 {
			continue
		}
		first := &rs[0]
		for i := 1; i < len(rs); i++ {
			other := &rs[i]
			if other.shown() != first.shown() {
				msg := fmt.Sprintf("conflicting %s %s and %s %s: set only one",
					first.name, quote(first.shown()), other.name, quote(other.shown()))
				if first.source == SourceTOML {
					return nil, first.file.errorf("%s", msg)
				}
				return nil, errors.New(msg)
			}
		}
		return first, nil
	}
	return nil, nil
}

// apply parses r as key d and stores it in cfg.
func (r *raw) apply(d *keyDef, cfg *Config) error {
	switch d.kind {
	case kindString, kindPath:
		s, err := r.text("must be a string")
		if err != nil {
			return err
		}
		if d.kind == kindPath && strings.ContainsRune(s, 0) {
			// Only TOML can carry one (\u0000); no file is named so.
			return r.invalid("must not contain a NUL character")
		}
		if d.kind == kindPath && r.source == SourceTOML {
			s = r.file.resolve(s)
		}
		*d.field(cfg).(*string) = s

	case kindBool:
		var b bool
		if v, ok := r.val.(bool); ok {
			b = v
		} else {
			s, err := r.text("must be a boolean")
			if err != nil {
				return err
			}
			if b, err = parseBool(s); err != nil {
				return r.invalid(err.Error())
			}
		}
		*d.field(cfg).(*bool) = b

	case kindInt:
		var n int64
		if v, ok := r.val.(int64); ok {
			n = v
		} else {
			s, err := r.text("must be an integer")
			if err != nil {
				return err
			}
			if n, err = parseInt(s); err != nil {
				return r.invalid(err.Error())
			}
		}
		if d.max > 0 && (n < d.min || n > d.max) {
			return r.invalid(fmt.Sprintf("must be between %d and %d", d.min, d.max))
		}
		if n < d.min {
			return r.invalid(fmt.Sprintf("must be at least %d", d.min))
		}
		*d.field(cfg).(*int) = int(n)

	case kindDuration:
		s, err := r.text(`must be a duration string such as "30s", "5m" or "24h"`)
		if err != nil {
			return err
		}
		dur, err := parseDuration(s)
		if err != nil {
			return r.invalid(err.Error())
		}
		if d.min == 1 && dur <= 0 {
			return r.invalid("must be greater than 0")
		}
		if d.min > 1 && dur < time.Duration(d.min) {
			return r.invalid(fmt.Sprintf("must be at least %s", time.Duration(d.min)))
		}
		if dur < 0 {
			return r.invalid("must not be negative")
		}
		*d.field(cfg).(*time.Duration) = dur

	case kindSize:
		var n int64
		if v, ok := r.val.(int64); ok {
			n = v
		} else {
			s, err := r.text(`must be a size such as "16M" or an integer number of bytes`)
			if err != nil {
				return err
			}
			if n, err = parseSize(s); err != nil {
				return r.invalid(err.Error())
			}
		}
		if n < d.min {
			return r.invalid("must be at least " + formatSize(d.min))
		}
		*d.field(cfg).(*int) = int(n)

	case kindList:
		var list []string
		if arr, ok := r.val.([]any); ok {
			list = []string{}
			for _, e := range arr {
				s, isString := e.(string)
				if !isString {
					return r.invalid("must be a comma-separated string or an array of strings")
				}
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
		} else {
			s, err := r.text("must be a comma-separated string or an array of strings")
			if err != nil {
				return err
			}
			list = parseList(s)
		}
		*d.field(cfg).(*[]string) = list

	case kindTime:
		var t time.Time
		switch v := r.val.(type) {
		case time.Time:
			t = v
		case toml.LocalDateTime, toml.LocalDate, toml.LocalTime:
			return r.invalid(`must be an RFC 3339 time with a UTC offset, such as 2024-01-02T15:04:05Z`)
		default:
			s, err := r.text(`must be an RFC 3339 time such as "2024-01-02T15:04:05Z"`)
			if err != nil {
				return err
			}
			if t, err = parseTime(s); err != nil {
				return r.invalid(err.Error())
			}
		}
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			// The state keeps times of years 1 to 9999 only.
			return r.invalid("must be within the years 0001 to 9999 (UTC)")
		}
		*d.field(cfg).(*time.Time) = t
	}
	return nil
}

// text returns the value as a trimmed string; a TOML value of another type
// fails with reason.
func (r *raw) text(reason string) (string, error) {
	if r.source != SourceTOML {
		return r.str, nil
	}
	s, ok := r.val.(string)
	if !ok {
		return "", r.invalid(reason)
	}
	return strings.TrimSpace(s), nil
}

// validate checks the rules that involve several keys or required ones.
func validate(cfg *Config, given map[string]*raw) error {
	if cfg.TeleportAddr == "" {
		return errors.New("no teleport_addr: set the teleport_addr property, FDFWD_TELEPORT_ADDR, or addr under [teleport] in the config file")
	}

	var set, missing []string
	for _, k := range []string{"teleport_cert", "teleport_key", "teleport_ca"} {
		if r := given[k]; r != nil {
			set = append(set, r.label())
		} else {
			missing = append(missing, k)
		}
	}
	identity := given["teleport_identity"]
	switch {
	case identity != nil && len(set) > 0:
		return fmt.Errorf("conflicting Teleport credentials: %s and %s are both set: use either teleport_identity, or teleport_cert, teleport_key and teleport_ca",
			identity.label(), joinAnd(set))
	case identity == nil && len(set) == 0:
		return errors.New("no Teleport credentials: set teleport_identity, or teleport_cert, teleport_key and teleport_ca")
	case identity == nil && len(missing) > 0:
		return fmt.Errorf("incomplete Teleport credentials: %s%s set but %s%s missing: set all three, or teleport_identity instead",
			joinAnd(set), pluralIs(len(set)), joinAnd(missing), pluralIs(len(missing)))
	}

	if cfg.RefreshEnabled && identity == nil {
		return given["teleport_refresh_enabled"].invalid(
			"refresh re-reads the teleport_identity file and cannot be used with teleport_cert, teleport_key and teleport_ca")
	}

	if cfg.StorageDir == "" {
		return errors.New("no storage_dir: set the storage_dir property, FDFWD_STORAGE, or storage in the config file")
	}
	if r := given["cluster"]; r != nil && !validClusterName(cfg.Cluster) {
		return r.invalid("must be 1 to 63 letters, digits, '.', '_' or '-'")
	}
	return nil
}

// validClusterName keeps the cluster key fit for a log tag and a metric
// label value.
func validClusterName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// joinAnd joins names as "a", "a and b" or "a, b and c".
func joinAnd(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
