// Command in_teleport is the Fluent Bit input plugin, built with
// -buildmode=c-shared and loaded with `fluent-bit -e in_teleport.so -i teleport`.
// This package holds only the cgo glue and Fluent Bit's Go input ABI; the
// work is done by package engine.
package main

/*
#include <stdlib.h>
#include <string.h>
#include "abi.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
	"unsafe"

	"github.com/fluent/fluent-bit-go/input"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/engine"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/instances"
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
	// log takes lines about no single input (refusals, internal errors).
	log = logging.Default

	// inputs are the teleport inputs of this Fluent Bit. Which one a call
	// belongs to: the remote context of the Ctx callbacks, else the thread
	// (package instances says why that is exact).
	inputs = &instances.Registry{
		Log: logging.Default,
		SetLimit: func(n int64) {
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(n)
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(engine.GCPercent)
			}
		},
		// exit_on_last_event: Fluent Bit then pauses, flushes and exits 0,
		// like on Ctrl-C.
		ExitAll: func() { _ = syscall.Kill(os.Getpid(), syscall.SIGTERM) },
	}
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

// thread identifies the Fluent Bit thread the call runs on: a cgo callback
// runs on the calling C thread.
func thread() uint64 { return uint64(C.tfb_thread_id()) }

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginRegister", &rc, -1)
	C.tfb_small_pages() // how many segments: nothing to do if none (mapping.c)
	fixMmapThreshold(os.Getenv)
	return C.int(input.FLBPluginRegister(def, "teleport", "Teleport audit events and session recordings"))
}

// FLBPluginInit starts one teleport input. Fluent Bit runs it on the
// input's own thread, one input after the other; plugin is the one struct
// per loaded .so, pointing at this input for the length of the call.
//
//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginInit", &rc, flbError)
	cfg, notices, err := conf.Load(func(key string) string {
		return input.FLBPluginConfigKey(plugin, key)
	}, os.Getenv)
	if err != nil {
		log.Errorf("%s", err)
		return flbError
	}
	tag := "input:teleport"
	if cfg.Cluster != "" {
		tag += ":" + cfg.Cluster
	}
	lg := logging.New(os.Stderr, tag)
	lg.SetDebug(cfg.Debug)
	in, err := inputs.Admit(instances.Admission{
		Thread: thread(), CtxABI: C.tfb_ctx_abi(plugin) != 0,
		Name: cfg.Name(), Storage: cfg.StorageDir,
		Limit: engine.SoftMemoryLimit(cfg), ExitOnLastEvent: cfg.ExitOnLastEvent, Log: lg,
	})
	if err != nil {
		log.Errorf("%s", err)
		return flbError
	}
	for _, n := range notices {
		lg.Infof("%s", n)
	}
	if note, warn := conf.ChunkNote(cfg.CallbackBytes); warn {
		lg.Warnf("%s", note)
	} else if note != "" {
		lg.Infof("%s", note)
	}
	e, err := engine.Start(cfg, engine.Options{
		Log:       lg,
		Alloc:     cAlloc,
		Free:      func(b []byte) { C.free(unsafe.Pointer(unsafe.SliceData(b))) },
		OnDrained: func() { inputs.Drained(in) },
	})
	if err != nil {
		inputs.Remove(in)
		lg.Errorf("%s", err)
		return flbError
	}
	inputs.Attach(in, e)
	if in.CtxABI {
		C.tfb_set_remote_context(plugin, C.uintptr_t(in.ID))
	}
	if cfg.DryRun {
		lg.Infof("dry_run: records are emitted but the cursor is never saved")
	}
	return flbOK
}

// cAlloc returns n bytes of C memory: Fluent Bit frees the buffer with free()
// when it has no cleanup callback to call.
//
// It asks malloc for at least mmapAlways bytes, so that glibc maps the
// buffer on its own and unmaps it at free(). A smaller buffer comes, once a
// larger one has been freed, from the arena of the calling thread, and
// stays there after free(): the stager runs on any of the Go runtime's
// threads, so each of them kept a callback's worth (make bench at
// callback_bytes 16M: peak RSS 266-299 MB, against 180-205 MB at 64M).
// Only the pages written count: the rest of the mapping is never touched.
// The threshold the plugin fixes (malloc.c) maps only blocks of 4 MiB or
// more, and an operator may set another: this holds for any callback.
func cAlloc(n int) []byte {
	p := C.malloc(C.size_t(max(n, mmapAlways)))
	if p == nil {
		panic(fmt.Sprintf("malloc(%d) failed", n))
	}
	return unsafe.Slice((*byte)(p), n)
}

// mmapAlways is above glibc's largest dynamic mmap threshold
// (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB on 64-bit systems).
const mmapAlways = 32<<20 + 1<<12

// engineOf is the engine of an input, or nil.
func engineOf(in *instances.Instance) *engine.Engine {
	if in == nil {
		return nil
	}
	e, _ := in.Engine().(*engine.Engine)
	return e
}

// collect is one callback of e's input.
func collect(e *engine.Engine, data *unsafe.Pointer, size *C.size_t) C.int {
	*data, *size = nil, 0
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

// cleanup frees what a callback of e's input returned, now copied by
// Fluent Bit.
func cleanup(e *engine.Engine, data unsafe.Pointer) C.int {
	if data != nil {
		C.free(data)
	}
	if e != nil {
		e.Handed()
	}
	return flbOK
}

// FLBPluginInputCallbackCtx is the callback of Fluent Bit 4.1 and later:
// ctx is what Init stored for this input.
//
//export FLBPluginInputCallbackCtx
func FLBPluginInputCallbackCtx(ctx unsafe.Pointer, data *unsafe.Pointer, size *C.size_t) (rc C.int) {
	defer guard("FLBPluginInputCallbackCtx", &rc, flbError)
	return collect(engineOf(inputs.ByContext(uintptr(ctx))), data, size)
}

//export FLBPluginInputCleanupCallbackCtx
func FLBPluginInputCleanupCallbackCtx(ctx unsafe.Pointer, data unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginInputCleanupCallbackCtx", &rc, flbError)
	return cleanup(engineOf(inputs.ByContext(uintptr(ctx))), data)
}

// FLBPluginInputCallback is the callback of Fluent Bit before 4.1, which
// runs one teleport input only.
//
//export FLBPluginInputCallback
func FLBPluginInputCallback(data *unsafe.Pointer, size *C.size_t) (rc C.int) {
	defer guard("FLBPluginInputCallback", &rc, flbError)
	return collect(engineOf(inputs.ByThread(thread())), data, size)
}

//export FLBPluginInputCleanupCallback
func FLBPluginInputCleanupCallback(data unsafe.Pointer) (rc C.int) {
	defer guard("FLBPluginInputCleanupCallback", &rc, flbError)
	return cleanup(engineOf(inputs.ByThread(thread())), data)
}

// FLBPluginInputPause and FLBPluginInputResume carry no context: they run
// on the paused input's own thread.
//
//export FLBPluginInputPause
func FLBPluginInputPause() {
	defer guard("FLBPluginInputPause", nil, 0)
	inputs.Pause(thread())
}

//export FLBPluginInputResume
func FLBPluginInputResume() {
	defer guard("FLBPluginInputResume", nil, 0)
	inputs.Resume(thread())
}

//export FLBPluginInputPreExit
func FLBPluginInputPreExit(byHotReload C.int) {
	defer guard("FLBPluginInputPreExit", nil, 0)
	if e := engineOf(inputs.ByThread(thread())); e != nil {
		e.BeginShutdown()
	}
}

// FLBPluginExit stops the input whose thread calls it (Fluent Bit runs
// PreExit and Exit on the input thread, from flb_proxy_input_cb_exit).
//
//export FLBPluginExit
func FLBPluginExit() (rc C.int) {
	defer guard("FLBPluginExit", &rc, flbError)
	in := inputs.ByThread(thread())
	if in == nil {
		return flbOK
	}
	inputs.Remove(in)
	e := engineOf(in)
	if e == nil {
		return flbOK
	}
	if err := e.Stop(); err != nil {
		in.Log.Errorf("stopping: %s", err)
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
