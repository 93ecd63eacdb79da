package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// runCmd builds and starts the command; it returns the address and dir.
func runCmd(t testing.TB, args ...string) (addr, dir string) {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "teleportd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	dir = filepath.Join(tmp, "run")
	cmd := exec.Command(bin, append([]string{"--dir", dir}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("teleportd did not exit on SIGTERM")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	f := strings.Fields(line)
	require.Len(t, f, 6, line)
	require.Equal(t, []string{"teleportd", "listening", "on"}, f[:3])
	require.Equal(t, "identity", f[4])
	require.Equal(t, filepath.Join(dir, "identity"), f[5])
	b, err := os.ReadFile(filepath.Join(dir, "addr"))
	require.NoError(t, err)
	require.Equal(t, f[3], string(b))
	return f[3], dir
}

func dial(t testing.TB, addr string, creds client.Credentials) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clt, err := client.New(ctx, client.Config{Addrs: []string{addr}, Credentials: []client.Credentials{creds}, DialTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { clt.Close() })
	return clt
}

func chunks(t testing.TB, clt *client.Client, day time.Time) []string {
	st := clt.GetEventExportChunks(context.Background(), &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(day)})
	var out []string
	for st.Next() {
		out = append(out, st.Item().GetChunk())
	}
	require.NoError(t, st.Done())
	return out
}

func drain(t testing.TB, clt *client.Client, day time.Time, chunk string) int {
	st := clt.ExportUnstructuredEvents(context.Background(), &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: chunk})
	n := 0
	for st.Next() {
		n++
	}
	require.NoError(t, st.Done())
	return n
}

func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	addr, dir := runCmd(t, "--events", "3000", "--days", "1", "--rate", "1000")
	clt := dial(t, addr, client.LoadIdentityFile(filepath.Join(dir, "identity")))
	pong, err := clt.Ping(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "acc", pong.ClusterName)
	kp := dial(t, addr, client.LoadKeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.crt")))
	_, err = kp.Ping(context.Background())
	require.NoError(t, err)

	today := time.Now().UTC()
	count := func() (int, int) {
		total, nchunks := 0, 0
		for _, d := range []time.Time{today.AddDate(0, 0, -1), today} {
			for _, c := range chunks(t, clt, d) {
				total += drain(t, clt, d, c)
				nchunks++
			}
		}
		return total, nchunks
	}
	n1, c1 := count()
	assert.GreaterOrEqual(t, n1, 3000)
	time.Sleep(time.Second)
	n2, c2 := count()
	assert.Greater(t, n2, n1+500, "live events")
	assert.Greater(t, c2, c1, "live chunks")
}

// BenchmarkDrain drains 1M generated events from the command (a separate
// process, like in the plugin benchmarks) with 4 concurrent chunk streams.
func BenchmarkDrain(b *testing.B) {
	addr, dir := runCmd(b, "--events", "1000000", "--days", "1")
	clt := dial(b, addr, client.LoadIdentityFile(filepath.Join(dir, "identity")))
	days := []time.Time{time.Now().UTC().AddDate(0, 0, -1), time.Now().UTC()}
	type job struct {
		day   time.Time
		chunk string
	}
	var jobs []job
	for _, d := range days {
		for _, c := range chunks(b, clt, d) {
			jobs = append(jobs, job{d, c})
		}
	}
	b.ResetTimer()
	var total atomic.Int64
	for i := 0; i < b.N; i++ {
		ch := make(chan job)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range ch {
					total.Add(int64(drain(b, clt, j.day, j.chunk)))
				}
			}()
		}
		for _, j := range jobs {
			ch <- j
		}
		close(ch)
		wg.Wait()
	}
	b.ReportMetric(float64(total.Load())/b.Elapsed().Seconds(), "events/s")
}
