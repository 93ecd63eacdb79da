// Command in_teleport is the Fluent Bit input plugin, built with
// -buildmode=c-shared and loaded with `fluent-bit -e in_teleport.so -i teleport`.
// This package holds only the cgo glue and Fluent Bit's Go input ABI; the
// work is done by package engine.
package main

/*
#include <stdlib.h>
#include <string.h>
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"unsafe"

	"github.com/fluent/fluent-bit-go/input"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/engine"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// cint is C's int; named so tests (which cannot import "C") can use it.
type cint = C.int

// Return codes of Fluent Bit's proxy.
const (
	flbError = input.FLB_ERROR
	flbOK    = input.FLB_OK
)

var (
	log = logging.Default

	// One instance per loaded .so: the callbacks carry no instance context,
	// so a second instance would share these globals.
	mu       sync.Mutex
	instance *engine.Engine
)

// guard turns a panic into a logged error, so nothing panics across the cgo
// boundary; it sets *rc to the failure code.
func guard(fn string, rc *cint, failure cint) {
	if r := recover(); r != nil {
		log.Errorf("%s: internal error: %v; %s", fn, r, firstFrames(debug.Stack()))
		if rc != nil {
			*rc = failure
		}
	}
}

func firstFrames(stack []byte) string {
	if len(stack) > 600 {
		stack = stack[:600]
	}
	return string(stack)
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginRegister", &rc, -1)
	return C.int(input.FLBPluginRegister(def, "teleport", "Teleport audit events and session recordings"))
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginInit", &rc, flbError)
	mu.Lock()
	defer mu.Unlock()
	if instance != nil {
		log.Errorf("only one teleport input per Fluent Bit process is supported: this one is refused (the plugin keeps one export per loaded .so; run a second Fluent Bit, or load a copy of the .so under another file name, for a second cluster)")
		return flbError
	}
	cfg, notices, err := conf.Load(func(key string) string {
		return input.FLBPluginConfigKey(plugin, key)
	}, os.Getenv)
	if err != nil {
		log.Errorf("%s", err)
		return flbError
	}
	log.SetDebug(cfg.Debug)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(engine.SoftMemoryLimit(cfg))
	}
	for _, n := range notices {
		log.Infof("%s", n)
	}
	if note, warn := conf.ChunkNote(cfg.CallbackBytes); warn {
		log.Warnf("%s", note)
	} else if note != "" {
		log.Infof("%s", note)
	}
	e, err := engine.Start(cfg, engine.Options{
		Log:   log,
		Alloc: cAlloc,
		Free:  func(b []byte) { C.free(unsafe.Pointer(unsafe.SliceData(b))) },
		OnDrained: func() {
			// Fluent Bit then pauses, flushes and exits 0, like on Ctrl-C.
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		},
	})
	if err != nil {
		log.Errorf("%s", err)
		return flbError
	}
	instance = e
	if cfg.DryRun {
		log.Infof("dry_run: records are emitted but the cursor is never saved")
	}
	return flbOK
}

// cAlloc returns n bytes of C memory: Fluent Bit frees the buffer with free()
// when it has no cleanup callback to call.
func cAlloc(n int) []byte {
	p := C.malloc(C.size_t(n))
	if p == nil {
		panic(fmt.Sprintf("malloc(%d) failed", n))
	}
	return unsafe.Slice((*byte)(p), n)
}

func current() *engine.Engine {
	mu.Lock()
	defer mu.Unlock()
	return instance
}

//export FLBPluginInputCallback
func FLBPluginInputCallback(data *unsafe.Pointer, size *C.size_t) (rc C.int) {
	defer guard("FLBPluginInputCallback", &rc, flbError)
	*data, *size = nil, 0
	e := current()
	if e == nil {
		return flbOK
	}
	buf := e.Collect()
	if len(buf) == 0 {
		return flbOK
	}
	*data = unsafe.Pointer(unsafe.SliceData(buf))
	*size = C.size_t(len(buf))
	return flbOK
}

//export FLBPluginInputCleanupCallback
func FLBPluginInputCleanupCallback(data unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginInputCleanupCallback", &rc, flbError)
	if data != nil {
		C.free(data)
	}
	if e := current(); e != nil {
		e.Handed()
	}
	return flbOK
}

//export FLBPluginInputPause
func FLBPluginInputPause() {
	defer guard("FLBPluginInputPause", nil, 0)
	if e := current(); e != nil {
		e.Pause()
	}
}

//export FLBPluginInputResume
func FLBPluginInputResume() {
	defer guard("FLBPluginInputResume", nil, 0)
	if e := current(); e != nil {
		e.Resume()
	}
}

//export FLBPluginInputPreExit
func FLBPluginInputPreExit(byHotReload C.int) {
	defer guard("FLBPluginInputPreExit", nil, 0)
	if e := current(); e != nil {
		e.BeginShutdown()
	}
}

//export FLBPluginExit
func FLBPluginExit() (rc C.int) {
	defer guard("FLBPluginExit", &rc, flbError)
	mu.Lock()
	e := instance
	instance = nil
	mu.Unlock()
	if e == nil {
		return flbOK
	}
	if err := e.Stop(); err != nil {
		log.Errorf("stopping: %s", err)
		return flbError
	}
	return flbOK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	defer guard("FLBPluginUnregister", nil, 0)
	input.FLBPluginUnregister(def)
}

func main() {}
