package instances

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
)

// fakeEngine records whether Fluent Bit holds it paused, as the engine
// sees it.
type fakeEngine struct {
	paused   bool
	pauses   int
	resumes  int
	onPause  func()
	onResume func() // runs before the engine resumes
}

func (f *fakeEngine) Pause() {
	f.paused = true
	f.pauses++
	if f.onPause != nil {
		f.onPause()
	}
}

func (f *fakeEngine) Resume() {
	if f.onResume != nil {
		f.onResume()
	}
	f.paused = false
	f.resumes++
}

func admit(t *testing.T, r *Registry, a Admission) (*Instance, *fakeEngine) {
	t.Helper()
	in, err := r.Admit(a)
	require.NoError(t, err)
	e := &fakeEngine{}
	r.Attach(in, e)
	return in, e
}

func TestAdmit(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "a"), 0o700))
	require.NoError(t, os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "link")))
	first := Admission{Thread: 1, CtxABI: true, Name: "prod", Storage: filepath.Join(dir, "a")}
	for _, tc := range []struct {
		name   string
		first  Admission
		second Admission
		err    string // "" = admitted
	}{
		{"another cluster", first, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: filepath.Join(dir, "b")}, ""},
		{"Fluent Bit before 4.1", Admission{Thread: 1, Name: "prod", Storage: filepath.Join(dir, "a")},
			Admission{Thread: 2, Name: "staging", Storage: filepath.Join(dir, "b")},
			`teleport input #2 ("staging") is refused: teleport input #1 ("prod") already runs in this Fluent Bit, and this Fluent Bit calls Go inputs without an instance context (FLBPluginInputCallbackCtx, added in Fluent Bit 4.1); use Fluent Bit 4.1 or later for several teleport inputs in one Fluent Bit, or run one Fluent Bit per cluster`},
		{"same storage_dir", first, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: filepath.Join(dir, "a")},
			`teleport input #1 ("prod") and teleport input #2 ("staging") both have storage_dir ` + filepath.Join(dir, "a") + `: give each teleport input its own storage_dir (it holds that input's cursor and lock)`},
		{"same storage_dir spelt another way", first, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: filepath.Join(dir, "b", "..", "a") + "/"},
			`teleport input #1 ("prod") and teleport input #2 ("staging") both have storage_dir`},
		{"same storage_dir through a symlink", first, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: filepath.Join(dir, "link")},
			`both have storage_dir ` + filepath.Join(dir, "link")},
		{"same name", first, Admission{Thread: 2, CtxABI: true, Name: "prod", Storage: filepath.Join(dir, "b")},
			`teleport input #1 ("prod") and teleport input #2 ("prod") are both named "prod" (the cluster key, or else teleport_addr's host): set a distinct cluster on each`},
		{"same thread", first, Admission{Thread: 1, CtxABI: true, Name: "staging", Storage: filepath.Join(dir, "b")},
			`teleport input #2 ("staging") is refused: Fluent Bit ran its FLBPluginInit on the thread of teleport input #1 ("prod")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Registry{}
			a, _ := admit(t, r, tc.first)
			b, err := r.Admit(tc.second)
			if tc.err == "" {
				require.NoError(t, err)
				assert.NotZero(t, a.ID)
				assert.NotEqual(t, a.ID, b.ID)
				assert.Equal(t, 2, r.Len())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.NotContains(t, err.Error(), "\n")
			assert.Equal(t, 1, r.Len(), "the refused input is not registered")
		})
	}
}

// Callbacks with a context reach their own input; context-free calls reach
// the input whose Init ran on the same thread, and with a single input any
// thread means that input (Fluent Bit before 4.1).
func TestRouting(t *testing.T) {
	r := &Registry{}
	prod, _ := admit(t, r, Admission{Thread: 10, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	assert.Same(t, prod, r.ByThread(99), "the only input")
	staging, _ := admit(t, r, Admission{Thread: 20, CtxABI: true, Name: "staging", Storage: "/s/staging"})
	assert.Same(t, prod, r.ByContext(prod.ID))
	assert.Same(t, staging, r.ByContext(staging.ID))
	assert.Nil(t, r.ByContext(0))
	assert.Same(t, staging, r.ByThread(20))
	assert.Nil(t, r.ByThread(99), "no input for a thread that ran no Init once there are several")

	r.Remove(prod)
	assert.Nil(t, r.ByContext(prod.ID))
	again, _ := admit(t, r, Admission{Thread: 30, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	assert.NotEqual(t, prod.ID, again.ID, "a context is never reused")
	assert.Equal(t, 3, again.Ordinal)

	// Every input exited (a hot reload): numbered from 1 again.
	r.Remove(staging)
	r.Remove(again)
	reloaded, _ := admit(t, r, Admission{Thread: 40, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	assert.Equal(t, 1, reloaded.Ordinal)
	assert.NotContains(t, []uintptr{prod.ID, staging.ID, again.ID}, reloaded.ID)
}

// A pause on one input's thread pauses that input only; a pause from a
// thread of no input pauses all of them, and only a resume from such a
// thread lifts it.
func TestPauseAndResume(t *testing.T) {
	type step struct {
		resume bool
		thread uint64
		want   [3]bool // paused: prod, staging, eu
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"one input paused, the others run", []step{
			{thread: 20, want: [3]bool{false, true, false}},
			{resume: true, thread: 20, want: [3]bool{false, false, false}},
		}},
		{"each on its own", []step{
			{thread: 10, want: [3]bool{true, false, false}},
			{thread: 30, want: [3]bool{true, false, true}},
			{resume: true, thread: 10, want: [3]bool{false, false, true}},
			{resume: true, thread: 30, want: [3]bool{false, false, false}},
		}},
		{"unknown thread pauses all", []step{
			{thread: 99, want: [3]bool{true, true, true}},
			{resume: true, thread: 10, want: [3]bool{true, true, true}},
			{resume: true, thread: 98, want: [3]bool{false, false, false}},
		}},
		{"an own pause outlives the unknown resume", []step{
			{thread: 20, want: [3]bool{false, true, false}},
			{thread: 99, want: [3]bool{true, true, true}},
			{resume: true, thread: 99, want: [3]bool{false, true, false}},
			{resume: true, thread: 20, want: [3]bool{false, false, false}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := &Registry{Log: logging.New(&buf, "input:teleport")}
			var engines [3]*fakeEngine
			for i, th := range []uint64{10, 20, 30} {
				_, engines[i] = admit(t, r, Admission{Thread: th, CtxABI: true, Name: []string{"prod", "staging", "eu"}[i], Storage: "/s/" + string(rune('a'+i))})
			}
			for i, s := range tc.steps {
				if s.resume {
					r.Resume(s.thread)
				} else {
					r.Pause(s.thread)
				}
				for j, e := range engines {
					assert.Equal(t, s.want[j], e.paused, "step %d, input %d", i, j)
				}
			}
			if strings.Contains(tc.name, "unknown") {
				assert.Equal(t, 1, strings.Count(buf.String(), "on a thread where no teleport input was initialised"), "warned once")
			}
		})
	}
}

// A pause from a thread of no input that comes while an input's Init is
// still starting its engine holds that engine paused once attached.
func TestPauseBeforeAttach(t *testing.T) {
	r := &Registry{}
	_, prod := admit(t, r, Admission{Thread: 10, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	in, err := r.Admit(Admission{Thread: 20, CtxABI: true, Name: "staging", Storage: "/s/staging"})
	require.NoError(t, err)
	r.Pause(99)
	staging := &fakeEngine{}
	r.Attach(in, staging)
	assert.True(t, prod.paused)
	assert.True(t, staging.paused, "attached while held paused: hands nothing over")
	r.Resume(99)
	assert.False(t, staging.paused)
}

// An input's own pause that comes while a resume from a thread of no input
// is still calling the engines wins: the engine ends paused, as Fluent Bit
// holds it, whichever order the two threads run in.
func TestOwnPauseDuringUnknownResume(t *testing.T) {
	r := &Registry{}
	_, prod := admit(t, r, Admission{Thread: 10, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	_, _ = admit(t, r, Admission{Thread: 20, CtxABI: true, Name: "staging", Storage: "/s/staging"})
	r.Pause(99)
	entered, release := make(chan struct{}), make(chan struct{})
	prod.onResume = func() {
		prod.onResume = nil
		close(entered)
		<-release
	}
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		r.Resume(99)
	}()
	<-entered
	paused := make(chan struct{})
	go func() {
		defer close(paused)
		r.Pause(10)
	}()
	select { // lets an unordered Pause finish first (it must not matter)
	case <-paused:
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-resumed
	<-paused
	assert.True(t, prod.paused, "paused by its own thread last")
}

// An engine calls Drained while holding its own lock; the registry never
// calls an engine while holding its own, so this cannot deadlock.
func TestEngineCallbacksDoNotDeadlock(t *testing.T) {
	r := &Registry{}
	in, e := admit(t, r, Admission{Thread: 1, CtxABI: true, Name: "prod", Storage: "/s/prod"})
	e.onPause = func() { r.Drained(in) }
	r.Pause(1)
	r.Pause(2)
	assert.Equal(t, 2, e.pauses)
}

// exit_on_last_event stops Fluent Bit once every input that set it is
// drained, once; an input without it (it never drains) does not hold the
// exit back.
func TestExitOnceEveryInputIsDrained(t *testing.T) {
	var buf bytes.Buffer
	exits := 0
	r := &Registry{ExitAll: func() { exits++ }}
	prod, _ := admit(t, r, Admission{Thread: 1, CtxABI: true, Name: "prod", Storage: "/s/prod", ExitOnLastEvent: true, Log: logging.New(&buf, "input:teleport")})
	staging, _ := admit(t, r, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: "/s/staging", ExitOnLastEvent: true})
	admit(t, r, Admission{Thread: 3, CtxABI: true, Name: "live", Storage: "/s/live"})
	r.Drained(prod)
	assert.Zero(t, exits)
	assert.Contains(t, buf.String(), "[input:teleport:prod] exit_on_last_event: this input is drained; Fluent Bit is asked to stop once the other 1 teleport input(s) are too")
	r.Drained(staging)
	assert.Equal(t, 1, exits)
	r.Drained(staging)
	r.Remove(prod)
	assert.Equal(t, 1, exits)
}

// A pause and its resume from a thread of no input hold and release every
// input alike, whether inputs come or go in between.
func TestUnknownThreadPauseIsLiftedByItsResume(t *testing.T) {
	r := &Registry{}
	_, a := admit(t, r, Admission{Thread: 1, CtxABI: true, Name: "a", Storage: "/s/a"})
	r.Pause(9) // one input: still an unknown thread's pause
	_, b := admit(t, r, Admission{Thread: 2, CtxABI: true, Name: "b", Storage: "/s/b"})
	r.Resume(9)
	assert.Equal(t, a.pauses, a.resumes, "input a is not left paused")
	assert.Zero(t, b.pauses)
}

// Log lines name their input once there are several; the memory limit is
// the sum of the inputs'.
func TestTagsAndLimit(t *testing.T) {
	var buf bytes.Buffer
	var limit int64
	r := &Registry{SetLimit: func(n int64) { limit = n }}
	l1 := logging.New(&buf, "input:teleport")
	prod, _ := admit(t, r, Admission{Thread: 1, CtxABI: true, Name: "prod", Storage: "/s/prod", Limit: 100, Log: l1})
	l1.Infof("one")
	assert.Equal(t, int64(100), limit)
	_, _ = admit(t, r, Admission{Thread: 2, CtxABI: true, Name: "staging", Storage: "/s/staging", Limit: 50, Log: logging.New(&buf, "input:teleport")})
	l1.Infof("two")
	assert.Equal(t, int64(150), limit)
	r.Remove(prod)
	assert.Equal(t, int64(50), limit)
	assert.Contains(t, buf.String(), "[input:teleport] one\n")
	assert.Contains(t, buf.String(), "[input:teleport:prod] two\n")
}
