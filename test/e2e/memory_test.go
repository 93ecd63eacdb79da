package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/test/teleportd"
)

// mapping is one line of /proc/PID/smaps with the counters read.
type mapping struct {
	perms  string
	offset uint64
	path   string
	size   int // kB
	rss    int // kB
	pmd    int // kB, FilePmdMapped
}

// mappingsOf reads the mappings of file in process pid.
func mappingsOf(t *testing.T, pid int, file string) []mapping {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	require.NoError(t, err)
	defer f.Close()
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			cur = nil
			if len(fs) >= 6 && fs[5] == file {
				off, _ := strconv.ParseUint(fs[2], 16, 64)
				out = append(out, mapping{perms: fs[1], offset: off, path: fs[5]})
				cur = &out[len(out)-1]
			}
			continue
		}
		if cur == nil || len(fs) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fs[1])
		switch fs[0] {
		case "Size:":
			cur.size = n
		case "Rss:":
			cur.rss = n
		case "FilePmdMapped:":
			cur.pmd = n
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// The plugin's .so is mostly the teleport/api client, of which Fluent Bit
// runs a part: its read-only segments count in the host's RSS only for the
// pages in use. The dynamic relocations, read once at load, are given back,
// and no read-only segment is mapped in 2 MB pages (whole, where the page
// cache holds the file in large folios).
func TestPluginCodeResidentOnlyWhereUsed(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(500, time.Hour, 41)
	h := r.host(hostOpts{props: r.props()})
	r.waitCount(h, len(r.expected(nil)), 30*time.Second)

	so, err := filepath.EvalSymlinks(pluginPath)
	require.NoError(t, err)
	maps := mappingsOf(t, h.Pid(), so)
	require.NotEmpty(t, maps, "the host maps %s", so)
	var relocs *mapping
	for i, m := range maps {
		if strings.Contains(m.perms, "w") {
			continue
		}
		assert.Zero(t, m.pmd, "read-only mapping at offset %#x is mapped in 2 MB pages", m.offset)
		if m.offset == 0 {
			relocs = &maps[i]
		}
	}
	require.NotNil(t, relocs, "the first read-only segment (ELF headers, symbols, relocations) is mapped")
	t.Logf("relocations segment: %d of %d kB resident", relocs.rss, relocs.size)
	assert.Less(t, relocs.rss, relocs.size/4, "the relocations read at load are still resident")
	require.NoError(t, h.Stop())
}
