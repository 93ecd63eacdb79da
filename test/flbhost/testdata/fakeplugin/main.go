// Command fakeplugin is a tiny Fluent Bit Go input plugin used to test the
// flbhost stand-in. Build it with
//
//	go build -buildmode=c-shared -o fake.so ./test/flbhost/testdata/fakeplugin
//
// Every ABI call is appended to the file named by the "trace" property (calls
// made before Init are buffered and written once the trace file is known), as
// one line: "<Call> tid=<thread id> key=value ...".
//
// Properties (all optional):
//
//	trace          trace file
//	records        records per callback (default 2; 0 = empty callbacks)
//	init_rc        FLBPluginInit return value (default 1)
//	callback_rc    FLBPluginInputCallback return value (default 1)
//	slow_callback  number of the callback (1-based) that sleeps slow_ms first
//	slow_ms        how long that callback sleeps (default 1000)
//	invalid        invalid events appended to each callback's batch (default 0)
//	kill_after     after this many callbacks, kill(getpid(), SIGTERM)
//	echo           comma-separated keys whose values Init writes to the trace
//	               as: Prop key="K" value="V"
//
// Environment read at registration (no properties exist yet):
//
//	FAKE_PLUGIN_NAME     registered name (default "teleport")
//	FAKE_REGISTER_RC     FLBPluginRegister return value (default 0)
//	FAKE_PREREGISTER_RC  FLBPluginPreRegister return value (default 0)
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/input"
	"github.com/tinylib/msgp/msgp"
)

type config struct {
	records    int
	callbackRC int
	slowN      int
	slow       time.Duration
	invalid    int
	killAfter  int
}

type batch struct {
	n, first, records int
}

var (
	mu          sync.Mutex
	traceFile   *os.File
	pending     []string
	cfg         = config{records: 2, callbackRC: 1, slow: time.Second}
	seq         int
	counter     int
	paused      bool
	outstanding = map[unsafe.Pointer]batch{}
)

func trace(format string, args ...any) {
	// the call name first, then the thread id, then the details
	parts := strings.SplitN(fmt.Sprintf(format, args...), " ", 2)
	line := fmt.Sprintf("%s tid=%d", parts[0], syscall.Gettid())
	if len(parts) == 2 {
		line += " " + parts[1]
	}
	line += "\n"
	mu.Lock()
	defer mu.Unlock()
	if traceFile == nil {
		pending = append(pending, line)
		return
	}
	_, _ = traceFile.WriteString(line)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func propInt(plugin unsafe.Pointer, key string, def int) int {
	v := input.FLBPluginConfigKey(plugin, key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

//export FLBPluginPreRegister
func FLBPluginPreRegister(hotReloading C.int) C.int {
	trace("PreRegister hot_reloading=%d", int(hotReloading))
	return C.int(envInt("FAKE_PREREGISTER_RC", 0))
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	name := os.Getenv("FAKE_PLUGIN_NAME")
	if name == "" {
		name = "teleport"
	}
	trace("Register name=%s", name)
	input.FLBPluginRegister(def, name, "fake input plugin for flbhost tests")
	return envInt("FAKE_REGISTER_RC", 0)
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	path := input.FLBPluginConfigKey(plugin, "trace")
	c := config{
		records:    propInt(plugin, "records", 2),
		callbackRC: propInt(plugin, "callback_rc", 1),
		slowN:      propInt(plugin, "slow_callback", 0),
		slow:       time.Duration(propInt(plugin, "slow_ms", 1000)) * time.Millisecond,
		invalid:    propInt(plugin, "invalid", 0),
		killAfter:  propInt(plugin, "kill_after", 0),
	}
	rc := propInt(plugin, "init_rc", 1)
	echo := input.FLBPluginConfigKey(plugin, "echo")

	mu.Lock()
	if path != "" && traceFile == nil {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			traceFile = f
			for _, l := range pending {
				_, _ = f.WriteString(l)
			}
			pending = nil
		}
	}
	cfg = c
	mu.Unlock()

	trace("Init rc=%d", rc)
	if echo != "" {
		for _, k := range strings.Split(echo, ",") {
			trace("Prop key=%q value=%q", k, input.FLBPluginConfigKey(plugin, k))
		}
	}
	return rc
}

//export FLBPluginInputPreRun
func FLBPluginInputPreRun(hotReload C.int) C.int {
	trace("PreRun enable_hot_reload=%d", int(hotReload))
	return 0
}

func eventTime(t time.Time) []byte {
	var d [8]byte
	binary.BigEndian.PutUint32(d[0:4], uint32(t.Unix()))
	binary.BigEndian.PutUint32(d[4:8], uint32(t.Nanosecond()))
	b, _ := msgp.AppendExtension(nil, &msgp.RawExtension{Type: 0, Data: d[:]})
	return b
}

//export FLBPluginInputCallback
func FLBPluginInputCallback(data *unsafe.Pointer, size *C.size_t) int {
	mu.Lock()
	seq++
	n := seq
	c := cfg
	wasPaused := paused
	first := counter + 1
	counter += c.records
	mu.Unlock()

	if wasPaused {
		trace("CallbackWhilePaused n=%d", n)
	}
	if c.slowN == n {
		trace("CallbackBegin n=%d sleep=%s", n, c.slow)
		time.Sleep(c.slow)
	}
	if c.killAfter > 0 && n == c.killAfter {
		go func() {
			time.Sleep(20 * time.Millisecond)
			trace("SelfKill n=%d", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}()
	}
	if c.records == 0 && c.invalid == 0 {
		*data = nil
		*size = 0
		trace("Callback n=%d first=0 records=0 len=0", n)
		return c.callbackRC
	}

	var buf []byte
	now := time.Now()
	for i := 0; i < c.records; i++ {
		buf = msgp.AppendArrayHeader(buf, 2)
		buf = append(buf, eventTime(now)...)
		buf = msgp.AppendMapHeader(buf, 5)
		buf = msgp.AppendString(buf, "counter")
		buf = msgp.AppendInt64(buf, int64(first+i))
		buf = msgp.AppendString(buf, "callback")
		buf = msgp.AppendInt64(buf, int64(n))
		buf = msgp.AppendString(buf, "message")
		buf = msgp.AppendString(buf, fmt.Sprintf("record %d", first+i))
		buf = msgp.AppendString(buf, "nested")
		buf = msgp.AppendMapHeader(buf, 2)
		buf = msgp.AppendString(buf, "list")
		buf = msgp.AppendArrayHeader(buf, 3)
		buf = msgp.AppendInt64(buf, 1)
		buf = msgp.AppendString(buf, "two")
		buf = msgp.AppendBool(buf, true)
		buf = msgp.AppendString(buf, "ok")
		buf = msgp.AppendBool(buf, true)
		buf = msgp.AppendString(buf, "ratio")
		buf = msgp.AppendFloat64(buf, 0.5)
	}
	for i := 0; i < c.invalid; i++ {
		// negative integer timestamp: Fluent Bit rejects it
		buf = msgp.AppendArrayHeader(buf, 2)
		buf = msgp.AppendInt64(buf, -5)
		buf = msgp.AppendMapHeader(buf, 1)
		buf = msgp.AppendString(buf, "invalid")
		buf = msgp.AppendBool(buf, true)
	}

	p := C.CBytes(buf)
	mu.Lock()
	outstanding[p] = batch{n: n, first: first, records: c.records}
	mu.Unlock()
	*data = p
	*size = C.size_t(len(buf))
	trace("Callback n=%d first=%d records=%d len=%d", n, first, c.records, len(buf))
	return c.callbackRC
}

//export FLBPluginInputCleanupCallback
func FLBPluginInputCleanupCallback(data unsafe.Pointer) int {
	mu.Lock()
	b, ok := outstanding[data]
	delete(outstanding, data)
	mu.Unlock()
	if !ok {
		trace("CleanupUnknown ptr=%p", data)
		return -1
	}
	trace("Cleanup n=%d first=%d records=%d", b.n, b.first, b.records)
	C.free(data)
	return 0
}

//export FLBPluginInputPause
func FLBPluginInputPause() {
	mu.Lock()
	paused = true
	mu.Unlock()
	trace("Pause")
}

//export FLBPluginInputResume
func FLBPluginInputResume() {
	mu.Lock()
	paused = false
	mu.Unlock()
	trace("Resume")
}

//export FLBPluginInputPreExit
func FLBPluginInputPreExit(byHotReload C.int) {
	trace("PreExit by_hot_reload=%d", int(byHotReload))
}

//export FLBPluginExit
func FLBPluginExit() int {
	trace("Exit")
	return input.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	trace("Unregister")
	input.FLBPluginUnregister(def)
	mu.Lock()
	defer mu.Unlock()
	if traceFile != nil {
		_ = traceFile.Close()
		traceFile = nil
	}
}

func main() {}
