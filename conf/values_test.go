package conf

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"On", true}, {"yes", true}, {"1", true}, {" yes ", true},
		{"false", false}, {"False", false}, {"off", false}, {"NO", false}, {"0", false},
	} {
		got, err := parseBool(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, in := range []string{"", "maybe", "2", "y", "enabled", "t"} {
		_, err := parseBool(in)
		assert.Error(t, err, in)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"64K", 64 << 10},
		{"64k", 64 << 10},
		{"64KB", 64 << 10},
		{"64kib", 64 << 10},
		{"64KiB", 64 << 10},
		{"16M", 16 << 20},
		{"16mb", 16 << 20},
		{"16 MiB", 16 << 20},
		{" 3m ", 3 << 20},
		{"1G", 1 << 30},
		{"2gb", 2 << 30},
		{"2GiB", 2 << 30},
		{"100B", 100},
	} {
		got, err := parseSize(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, in := range []string{"", "M", "1.5M", "-1", "16T", "16 M B", "K16", "0x10",
		"99999999999999999999", "9223372036854775807G"} {
		_, err := parseSize(in)
		assert.Error(t, err, in)
	}
}

func TestFormatSize(t *testing.T) {
	assert.Equal(t, "64KiB", formatSize(64<<10))
	assert.Equal(t, "16MiB", formatSize(16<<20))
	assert.Equal(t, "2GiB", formatSize(2<<30))
	assert.Equal(t, "1536KiB", formatSize(1536<<10))
	assert.Equal(t, "1000", formatSize(1000))
	assert.Equal(t, "0", formatSize(0))
}

func TestParseList(t *testing.T) {
	assert.Equal(t, []string{"a", "b"}, parseList("a,b"))
	assert.Equal(t, []string{"a", "b c"}, parseList(" a , ,b c,"))
	assert.Equal(t, []string{}, parseList(","))
	assert.Equal(t, []string{}, parseList(""))
	assert.NotNil(t, parseList(" , "))
}

func TestParseDurationAndTime(t *testing.T) {
	d, err := parseDuration(" 1m30s ")
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, d)
	for _, in := range []string{"5", "1 day", "", "soon"} {
		_, err := parseDuration(in)
		assert.Error(t, err, in)
	}

	tm, err := parseTime("2024-03-04T05:06:07+02:00")
	require.NoError(t, err)
	assert.True(t, tm.Equal(time.Date(2024, 3, 4, 3, 6, 7, 0, time.UTC)), tm)
	tm, err = parseTime("2024-03-04T05:06:07.25Z")
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, time.Duration(tm.Nanosecond()))
	for _, in := range []string{"2024-03-04", "2024-03-04 05:06:07", "2024-03-04T05:06:07", "yesterday"} {
		_, err := parseTime(in)
		assert.Error(t, err, in)
	}
}

func TestQuote(t *testing.T) {
	assert.Equal(t, `"a\nb"`, quote("a\nb"))
	long := quote(strings.Repeat("x", 1000))
	assert.Less(t, len(long), 220)
	assert.True(t, strings.HasSuffix(long, `..."`), long)
}

func TestEditDistanceAndSuggest(t *testing.T) {
	assert.Equal(t, 0, editDistance("abc", "abc"))
	assert.Equal(t, 1, editDistance("storge", "storage"))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
	assert.Equal(t, "storage", suggest("storge", schema.known))
	assert.Equal(t, "teleport.identity", suggest("teleport.identiy", schema.known))
	assert.Equal(t, "", suggest("completely-different", schema.known))
}
