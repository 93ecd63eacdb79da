package conf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file holds the parsers for the textual value forms shared by
// properties, environment variables and TOML strings. They return a short
// reason on failure; the caller wraps it into the one-line error that names
// the key and the value.

// parseBool accepts the spellings Fluent Bit accepts for booleans:
// true/false, on/off, yes/no, 1/0, case-insensitive.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "yes", "1":
		return true, nil
	case "false", "off", "no", "0":
		return false, nil
	}
	return false, errors.New("must be a boolean (true/false, on/off, yes/no, 1/0)")
}

// parseInt parses a base-10 integer.
func parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, errors.New("must be an integer")
	}
	return n, nil
}

// parseDuration parses Go duration syntax ("10s", "1m30s", "24h").
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New(`must be a duration such as "30s", "5m" or "24h"`)
	}
	return d, nil
}

// sizeUnits maps the accepted size suffixes (lower-cased) to their
// multiplier. Every unit is 1024-based, as in Fluent Bit.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kb":  1 << 10,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mb":  1 << 20,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gb":  1 << 30,
	"gib": 1 << 30,
}

// parseSize parses a byte size: a plain integer or an integer followed by
// K, KB, KiB, M, MB, MiB, G, GB or GiB (case-insensitive, 1024-based,
// optional space before the unit).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New(`must be a size such as "16M", "512KiB" or "1048576"`)
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, errors.New(`must be a size such as "16M", "512KiB" or "1048576" (units: K, KB, KiB, M, MB, MiB, G, GB, GiB)`)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > math.MaxInt/mult {
		return 0, errors.New("is too large")
	}
	return n * mult, nil
}

// formatSize renders a byte count with the largest exact binary unit.
func formatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// parseList splits a comma-separated list, trimming entries and dropping
// empty ones. A value made only of commas and blanks yields an empty,
// non-nil list.
func parseList(s string) []string {
	out := []string{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// parseTime parses an RFC 3339 timestamp.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, errors.New(`must be an RFC 3339 time such as "2024-01-02T15:04:05Z"`)
	}
	return t, nil
}

// maxShown bounds how much of a value an error message repeats, so the
// message stays one readable log line.
const maxShown = 200

// quote renders a value for an error message: Go-quoted (so control
// characters cannot break the line) and truncated when very long.
func quote(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	return strconv.Quote(s)
}
