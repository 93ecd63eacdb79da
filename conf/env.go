package conf

import (
	"fmt"
	"strings"
)

// ignoredEnv are the Event Handler's Fluentd variables. Fluent Bit's outputs
// replace them; when set, Load says once that they are ignored.
var ignoredEnv = []string{
	"FDFWD_FLUENTD_URL",
	"FDFWD_FLUENTD_SESSION_URL",
	"FDFWD_FLUENTD_CERT",
	"FDFWD_FLUENTD_KEY",
	"FDFWD_FLUENTD_CA",
	"FDWRD_FLUENTD_CERT",
	"FDWRD_FLUENTD_KEY",
	"FDWRD_FLUENTD_CA",
}

// envNotices returns at most one notice naming the Event Handler Fluentd
// variables that are set.
func envNotices(env func(string) string) []string {
	var set []string
	for _, name := range ignoredEnv {
		if strings.TrimSpace(env(name)) != "" {
			set = append(set, name)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("environment %s ignored: Fluent Bit's outputs deliver the records (see docs/configuration.md)",
		strings.Join(set, ", ")+pluralIs(len(set)))}
}

func pluralIs(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}

// lookupStrings returns the non-empty values of the given names, in order,
// as raw values of source src. get is the property or environment lookup;
// an empty or blank value counts as unset, as Fluent Bit's API cannot tell
// the two apart for properties.
func lookupStrings(get func(string) string, src string, names []string) []raw {
	var out []raw
	for _, n := range names {
		if v := strings.TrimSpace(get(n)); v != "" {
			out = append(out, raw{source: src, name: n, str: v})
		}
	}
	return out
}
