package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
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

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// listening returns the TCP ports process pid listens on, from /proc.
func listening(t *testing.T, pid int) []int {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] { // 0A = LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			p, _ := strconv.ParseInt(hexPort, 16, 32)
			ports = append(ports, int(p))
		}
	}
	return ports
}

// The metrics endpoint reports what the host ingested and the caught-up
// state; without metrics_listen the plugin listens on nothing.
func TestMetricsEndpoint(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(3000, 24*time.Hour, 30)
	want := r.expected(nil)
	addr := freePort(t)
	h := r.host(hostOpts{props: r.props("metrics_listen=" + addr)})
	r.waitCount(h, len(want), 60*time.Second)
	require.NoError(t, h.WaitLog("caught up:", 1, 10*time.Second))

	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := string(body)
	assert.Contains(t, out, fmt.Sprintf("teleport_fluent_bit_events_handed_over_total{class=\"audit\",cluster=\"127.0.0.1\"} %d\n", len(r.ingested())))
	assert.Contains(t, out, "teleport_fluent_bit_caught_up{cluster=\"127.0.0.1\"} 1\n")
	assert.Contains(t, out, "teleport_fluent_bit_identity_expiry_timestamp_seconds ")
	assert.NotContains(t, out, "teleport_fluent_bit_identity_expiry_timestamp_seconds{cluster=\"127.0.0.1\"} 0\n")
	_, port, _ := net.SplitHostPort(addr)
	assert.Equal(t, []int{atoi(port)}, listening(t, h.Pid()), "exactly the metrics port")
	require.NoError(t, h.Stop())
}

func TestNothingListensByDefault(t *testing.T) {
	r := newRig(t, teleportd.Options{})
	r.generate(500, time.Hour, 31)
	h := r.host(hostOpts{props: r.props()})
	r.waitCount(h, len(r.expected(nil)), 30*time.Second)
	assert.Empty(t, listening(t, h.Pid()), "the plugin opens no listening socket unless metrics_listen is set")
	require.NoError(t, h.Stop())
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
