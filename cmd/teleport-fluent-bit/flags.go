package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
)

// errHelp is returned after -h printed a command's usage.
var errHelp = flag.ErrHelp

// newFlags returns a flag set that prints its usage (with the synopsis) to
// w and returns errors instead of exiting.
func newFlags(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: teleport-fluent-bit %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseAll parses flags and positional arguments in any order (flag stops
// at the first positional one) and returns the positional ones.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag collects comma-separated values from repeated flags.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// propFlags are plugin properties given as -p key=value, like fluent-bit's
// own -p. Keys are case-insensitive, as in Fluent Bit.
type propFlags map[string]string

func (p propFlags) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (p propFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.ToLower(strings.TrimSpace(k))
	if !ok || k == "" {
		return fmt.Errorf("expected key=value, got %q", v)
	}
	known := slices.Contains(conf.Properties, k)
	for _, m := range conf.Misspellings {
		// Load names these with the property meant.
		known = known || m.Property == k
	}
	if !known {
		return fmt.Errorf("unknown property %q (the plugin's properties are %s)", k, strings.Join(conf.Properties, ", "))
	}
	if prev, dup := p[k]; dup && prev != val {
		return fmt.Errorf("property %s given twice (%q and %q)", k, prev, val)
	}
	p[k] = val
	return nil
}

// configFlags are the flags check and export share with the plugin: the
// TOML file and properties.
type configFlags struct {
	config string
	props  propFlags
}

func (c *configFlags) register(fs *flag.FlagSet) {
	c.props = propFlags{}
	fs.StringVar(&c.config, "config", "", "the TOML configuration file (the plugin's config property; teleport-event-handler.toml works)")
	fs.Var(c.props, "p", "a plugin property `key=value`, as in fluent-bit -p (repeatable; e.g. -p start_time=2024-01-01T00:00:00Z)")
}

// load reads the configuration exactly as the plugin does: properties
// (here from -p and --config), FDFWD_* variables from env, the TOML file.
func (c *configFlags) load(env func(string) string) (*conf.Config, []string, error) {
	props := propFlags{}
	for k, v := range c.props {
		props[k] = v
	}
	if c.config != "" {
		if prev, ok := props["config"]; ok && prev != c.config {
			return nil, nil, fmt.Errorf("--config %s and -p config=%s disagree: give one", c.config, prev)
		}
		props["config"] = c.config
	}
	return conf.Load(func(key string) string { return props[strings.ToLower(key)] }, env)
}

// flagErr turns a flag parse error into the command's error.
func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return errQuiet // the flag package has printed the error and the usage
}
