package main

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With glibc's adaptive threshold, a freed 20 MiB callback copy raises the
// threshold, and the next 6 MiB copy comes from an arena that keeps it
// after free(); with the threshold the plugin fixes, it is mapped on its
// own and unmapped at free(). Each case runs in a process of its own: an
// arena once grown keeps serving from what it holds.
func TestFixedMmapThresholdMapsCallbackCopies(t *testing.T) {
	if mode := os.Getenv("TFB_MALLOC_PROBE"); mode != "" {
		if mode == "fixed" && !fixMmapThreshold(func(string) string { return "" }) {
			os.Exit(3)
		}
		os.Exit(10 + mappedAfterFree(20<<20, 6<<20))
	}
	probe := func(mode string) int {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFixedMmapThresholdMapsCallbackCopies$")
		cmd.Env = append(os.Environ(), "TFB_MALLOC_PROBE="+mode)
		err := cmd.Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, mode)
		return exit.ExitCode() - 10
	}
	assert.Equal(t, 0, probe("adaptive"), "glibc's adaptive threshold: the smaller copy comes from an arena")
	assert.Equal(t, 1, probe("fixed"), "the fixed threshold: the smaller copy is mapped on its own")
}

// An operator's own threshold is left alone.
func TestMmapThresholdLeftToTheOperator(t *testing.T) {
	for _, env := range []map[string]string{
		{"MALLOC_MMAP_THRESHOLD_": "1048576"},
		{"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"},
	} {
		assert.False(t, fixMmapThreshold(func(k string) string { return env[k] }), env)
	}
}
