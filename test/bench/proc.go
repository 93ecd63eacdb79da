package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/PID/stat (100 on
// every Linux architecture Go supports).
const clkTck = 100

// procCPU returns the user+system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// procHWM returns the peak resident set size (VmHWM) of process pid, in bytes.
func procHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// authProc is a Teleport stand-in process (build/teleportd).
type authProc struct {
	cmd      *exec.Cmd
	dir      string
	addr     string
	identity string
}

// startAuth runs build/teleportd with args in dir and waits for its address.
func startAuth(bin, dir string, args ...string) (*authProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dir, "addr"))
	logf, err := os.Create(filepath.Join(dir, "teleportd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// --stats: its recording counters tell how many recording events the
	// plugin streamed, skipped ones included.
	cmd := exec.Command(bin, append([]string{"--dir", dir, "--stats", "250ms"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &authProc{cmd: cmd, dir: dir, identity: filepath.Join(dir, "identity")}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil && len(b) > 0 {
			a.addr = string(b)
			return a, nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.stop()
	log, _ := os.ReadFile(filepath.Join(dir, "teleportd.log"))
	return nil, fmt.Errorf("teleportd did not start: %s", log)
}

func (a *authProc) pid() int { return a.cmd.Process.Pid }

// recordingEvents is the number of recording events the stand-in has served
// so far, from its last stats line (up to 250ms old).
func (a *authProc) recordingEvents() int64 {
	b, _ := os.ReadFile(filepath.Join(a.dir, "teleportd.log"))
	i := bytes.LastIndex(b, []byte("stats: recordings: "))
	if i < 0 {
		return 0
	}
	line, _, _ := bytes.Cut(b[i:], []byte("\n"))
	for _, f := range strings.Fields(string(line)) {
		if v, ok := strings.CutPrefix(f, "events="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (a *authProc) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ingestLine is one line of flbhost's --ingest-times file.
type ingestLine struct {
	at      time.Time
	records int64
	bytes   int64
	cpu     time.Duration
}

// readIngestTimes reads the complete lines of an --ingest-times file.
func readIngestTimes(path string) ([]ingestLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []ingestLine
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // a line being written
		}
		f := strings.Fields(string(b[:i]))
		b = b[i+1:]
		if len(f) != 4 {
			return nil, fmt.Errorf("%s: bad line %q", path, f)
		}
		var v [4]int64
		for k := range f {
			if v[k], err = strconv.ParseInt(f[k], 10, 64); err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
		}
		out = append(out, ingestLine{time.Unix(0, v[0]), v[1], v[2], time.Duration(v[3])})
	}
	return out, nil
}
