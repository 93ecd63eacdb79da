// Package instances keeps the teleport inputs of one Fluent Bit apart: it
// tells which input a call of Fluent Bit's Go proxy belongs to.
//
// What Fluent Bit passes (v4.1 to v5.1.1; docs/multiple-clusters.md cites
// the lines):
//   - FLBPluginInputCallbackCtx and FLBPluginInputCleanupCallbackCtx get the
//     remote context the instance's Init stored: exact.
//   - FLBPluginInit, FLBPluginInputPause, FLBPluginInputResume,
//     FLBPluginInputPreExit and FLBPluginExit get no context. Each runs on
//     the instance's own input thread (Go inputs are always threaded; a
//     pause or resume is a message to that thread), and the Inits run one
//     after the other. So the thread that ran an instance's Init names it
//     in every later context-free call.
//
// A context-free call from a thread that ran no Init cannot be attributed:
// a Pause then pauses every instance (nothing is handed over while Fluent
// Bit may hold any of them paused), and only a Resume from such a thread
// lifts that pause again.
package instances

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// Engine is what the registry drives for one input (engine.Engine).
type Engine interface {
	Pause()
	Resume()
}

// FirstCtxRelease is the Fluent Bit release whose Go proxy passes an
// instance context to input callbacks (src/proxy/go/go.c,
// FLBPluginInputCallbackCtx).
const FirstCtxRelease = "4.1"

// Admission is what an Init knows about the input it starts.
type Admission struct {
	Thread  uint64 // the input thread running Init
	CtxABI  bool   // Fluent Bit calls FLBPluginInputCallbackCtx
	Name    string // conf.Config.Name()
	Storage string // storage_dir as configured
	// Limit is this input's share of the Go soft memory limit.
	Limit int64
	// ExitOnLastEvent: the input asks Fluent Bit to stop once drained.
	ExitOnLastEvent bool
	Log             *logging.Logger
}

// Instance is one admitted teleport input.
type Instance struct {
	// ID is the remote context handed to Fluent Bit (never 0, never reused).
	ID      uintptr
	Ordinal int // 1-based, in Init order (Fluent Bit's config order)
	Admission
	storage string // resolved

	engine        Engine
	ownPaused     bool // paused by a Pause on its own thread
	pausedUnknown bool // paused by a Pause from a thread of no input
	drained       bool
}

// Engine returns the instance's engine (nil until Attach).
func (in *Instance) Engine() Engine { return in.engine }

func (in *Instance) String() string {
	return fmt.Sprintf("teleport input #%d (%q)", in.Ordinal, in.Name)
}

// Registry holds the running inputs of the process.
type Registry struct {
	// SetLimit is called with the sum of the inputs' memory limits.
	SetLimit func(int64)
	// ExitAll asks Fluent Bit to shut down (every input has drained).
	ExitAll func()
	// Log takes lines about no single input.
	Log *logging.Logger

	// ctl orders the context-free Pause and Resume calls with the engine
	// calls they decide: taken before mu and held while engines are
	// called (outside mu, see Pause), so an engine ends in the state the
	// last decision gave it, never an earlier one's.
	ctl     sync.Mutex
	mu      sync.Mutex
	next    uintptr
	ordinal int
	list    []*Instance
	warned  bool
	exiting bool
}

// resolve makes storage directories comparable: absolute, clean, and
// through symlinks where the path exists.
func resolve(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Clean(dir)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// Admit checks a new input against the running ones and registers it; the
// error is one line fit for the log.
func (r *Registry) Admit(a Admission) (*Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := &Instance{Ordinal: r.ordinal + 1, Admission: a, storage: resolve(a.Storage)}
	for _, o := range r.list {
		if !a.CtxABI || !o.CtxABI {
			return nil, fmt.Errorf("%s is refused: %s already runs in this Fluent Bit, and this Fluent Bit calls Go inputs without an instance context (FLBPluginInputCallbackCtx, added in Fluent Bit %s); use Fluent Bit %s or later for several teleport inputs in one Fluent Bit, or run one Fluent Bit per cluster",
				in, o, FirstCtxRelease, FirstCtxRelease)
		}
		if o.storage == in.storage {
			return nil, fmt.Errorf("%s and %s both have storage_dir %s: give each teleport input its own storage_dir (it holds that input's cursor and lock)",
				o, in, a.Storage)
		}
		if o.Name == in.Name {
			return nil, fmt.Errorf("%s and %s are both named %q (the cluster key, or else teleport_addr's host): set a distinct cluster on each, it names their log lines and metrics",
				o, in, in.Name)
		}
		if o.Thread == in.Thread {
			return nil, fmt.Errorf("%s is refused: Fluent Bit ran its FLBPluginInit on the thread of %s, so pause and resume could not be told apart", in, o)
		}
	}
	r.ordinal++
	r.next++
	in.ID = r.next
	r.list = append(r.list, in)
	r.changedLocked()
	return in, nil
}

// Attach gives an admitted input its engine, paused if a Pause held the
// input paused before it had one (a pause from a thread of no input during
// its Init).
func (r *Registry) Attach(in *Instance, e Engine) {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	r.mu.Lock()
	in.engine = e
	paused := in.ownPaused || in.pausedUnknown
	r.mu.Unlock()
	if paused && e != nil {
		e.Pause()
	}
}

// Remove forgets an input (its Init failed, or it exited).
func (r *Registry) Remove(in *Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, o := range r.list {
		if o == in {
			r.list = append(r.list[:i], r.list[i+1:]...)
			break
		}
	}
	if len(r.list) == 0 {
		// A hot reload starts the inputs again: number them from 1.
		r.ordinal, r.exiting = 0, false
	}
	r.changedLocked()
}

// changedLocked names every input in its log lines once there are several,
// and sets the memory limit to the sum of the inputs'.
func (r *Registry) changedLocked() {
	if len(r.list) > 1 {
		for _, o := range r.list {
			if o.Log != nil {
				o.Log.SetTag("input:teleport:" + o.Name)
			}
		}
	}
	var sum int64
	for _, o := range r.list {
		sum += o.Limit
	}
	if sum > 0 && r.SetLimit != nil {
		r.SetLimit(sum)
	}
}

// Len is the number of inputs.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

// ByContext is the input a Ctx callback's remote context names.
func (r *Registry) ByContext(id uintptr) *Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.list {
		if o.ID == id {
			return o
		}
	}
	return nil
}

// ByThread is the input whose Init ran on thread; when no Init ran there,
// the only input if there is exactly one (Fluent Bit before 4.1 allows no
// second), else nil.
func (r *Registry) ByThread(thread uint64) *Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byThreadLocked(thread)
}

func (r *Registry) byThreadLocked(thread uint64) *Instance {
	if o := r.initThreadLocked(thread); o != nil {
		return o
	}
	if len(r.list) == 1 {
		return r.list[0]
	}
	return nil
}

// initThreadLocked is the input whose Init ran on thread, or nil. Pause and
// Resume use it alone: charged by the number of inputs at that moment, a
// pause and its resume could land on different marks and hold an input
// paused for good.
func (r *Registry) initThreadLocked(thread uint64) *Instance {
	for _, o := range r.list {
		if o.Thread == thread {
			return o
		}
	}
	return nil
}

// Pause applies a context-free FLBPluginInputPause that ran on thread.
// Engines are called outside the registry's lock: an engine calls back
// (Drained) under its own.
func (r *Registry) Pause(thread uint64) {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	r.mu.Lock()
	var todo []Engine
	if in := r.initThreadLocked(thread); in != nil {
		in.ownPaused = true
		todo = append(todo, in.engine)
	} else {
		for _, o := range r.list {
			o.pausedUnknown = true
			todo = append(todo, o.engine)
		}
		r.warnLocked("FLBPluginInputPause")
	}
	r.mu.Unlock()
	for _, e := range todo {
		if e != nil {
			e.Pause()
		}
	}
}

// Resume applies a context-free FLBPluginInputResume that ran on thread. An
// input resumes only once nothing holds it paused.
func (r *Registry) Resume(thread uint64) {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	r.mu.Lock()
	var todo []Engine
	if in := r.initThreadLocked(thread); in != nil {
		in.ownPaused = false
		if !in.pausedUnknown {
			todo = append(todo, in.engine)
		}
	} else {
		for _, o := range r.list {
			if o.pausedUnknown {
				o.pausedUnknown = false
				if !o.ownPaused {
					todo = append(todo, o.engine)
				}
			}
		}
		r.warnLocked("FLBPluginInputResume")
	}
	r.mu.Unlock()
	for _, e := range todo {
		if e != nil {
			e.Resume()
		}
	}
}

func (r *Registry) warnLocked(call string) {
	if r.warned || r.Log == nil {
		return
	}
	r.warned = true
	r.Log.Warnf("%s ran on a thread where no teleport input was initialised: applied to every teleport input (a pause holds them all until a resume from such a thread)", call)
}

// Drained records that in has exported everything (exit_on_last_event) and
// asks Fluent Bit to stop once every input has.
func (r *Registry) Drained(in *Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in.drained = true
	if !r.checkDrainedLocked() && in.Log != nil {
		waiting := 0
		for _, o := range r.list {
			if o.ExitOnLastEvent && !o.drained {
				waiting++
			}
		}
		in.Log.Infof("exit_on_last_event: this input is drained; Fluent Bit is asked to stop once the other %d teleport input(s) are too", waiting)
	}
}

func (r *Registry) checkDrainedLocked() bool {
	if len(r.list) == 0 || r.exiting {
		return r.exiting
	}
	// Inputs without exit_on_last_event never drain: they keep polling,
	// and the ones that asked for it stop Fluent Bit once all of them are.
	for _, o := range r.list {
		if o.ExitOnLastEvent && !o.drained {
			return false
		}
	}
	r.exiting = true
	if r.ExitAll != nil {
		r.ExitAll()
	}
	return true
}
