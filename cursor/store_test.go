package cursor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenCreatesPrivateDirAndLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "storage")
	s, err := Open(dir)
	require.NoError(t, err)
	defer s.Close()

	assert.Equal(t, dir, s.Dir())
	assert.Equal(t, filepath.Join(dir, "state.json"), s.Path())
	assert.Equal(t, os.FileMode(0o700), filePerm(t, dir))
	assert.Equal(t, os.FileMode(0o700), filePerm(t, filepath.Dir(dir)), "created parents are private too")
	assert.Equal(t, os.FileMode(0o600), filePerm(t, filepath.Join(dir, "lock")))
	assert.Equal(t, []string{"lock"}, dirNames(t, dir))

	st, err := s.Load()
	require.NoError(t, err)
	assert.Nil(t, st, "no state file: first run")
}

func TestOpenRelativeDir(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	s, err := Open("rel")
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, filepath.Join(base, "rel"), s.Dir())
}

func TestOpenTightensLockFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.Mkdir(dir, 0o700))
	lock := filepath.Join(dir, "lock")
	require.NoError(t, os.WriteFile(lock, nil, 0o644))
	require.NoError(t, os.Chmod(lock, 0o644))
	s, err := Open(dir)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, os.FileMode(0o600), filePerm(t, lock))
}

func TestOpenRefusesOpenPermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o750, 0o705, 0o701, 0o777} {
		t.Run(modeString(mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, mode))
			s, err := Open(dir)
			require.Nil(t, s)
			requireOneLine(t, err)
			assert.Equal(t, fmt.Sprintf(
				"storage_dir %s has mode %s; it must not be accessible to group or others (chmod 700 %s)",
				dir, modeString(mode), dir), err.Error())
			assert.ErrorIs(t, err, ErrPermissions)
			assert.Equal(t, mode, filePerm(t, dir), "Open must not change the mode")
			assert.Empty(t, dirNames(t, dir), "Open must not create the lock file")
		})
	}
}

func TestOpenRefusesFileAndEmpty(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	_, err := Open(f)
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "storage_dir "+f+" is not a directory")

	_, err = Open(filepath.Join(f, "sub"))
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "cannot create storage_dir "+filepath.Join(f, "sub"))

	_, err = Open("")
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "storage_dir is not set")
}

func TestOpenTwiceInOneProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s1, err := Open(dir)
	require.NoError(t, err)

	s2, err := Open(dir)
	require.Nil(t, s2)
	requireOneLine(t, err)
	assert.ErrorIs(t, err, ErrInUse)
	assert.Equal(t, fmt.Sprintf(
		"storage_dir %s is in use by another plugin instance of this process (lock %s held): two exporters cannot share one storage_dir",
		dir, filepath.Join(dir, "lock")), err.Error())

	// Through another path to the same directory.
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	_, err = Open(link)
	assert.ErrorIs(t, err, ErrInUse)
	_, err = Open(dir + "/./")
	assert.ErrorIs(t, err, ErrInUse)

	locked, err := Locked(dir)
	require.NoError(t, err)
	assert.True(t, locked)

	require.NoError(t, s1.Close())
	require.NoError(t, s1.Close(), "Close is idempotent")

	locked, err = Locked(dir)
	require.NoError(t, err)
	assert.False(t, locked)

	s3, err := Open(link)
	require.NoError(t, err)
	require.NoError(t, s3.Close())
}

func TestClosedStore(t *testing.T) {
	s := openTestStore(t)
	require.NoError(t, s.Close())
	_, err := s.Load()
	assert.ErrorIs(t, err, ErrClosed)
	requireOneLine(t, err)
	err = s.Save(fixtureSearch())
	assert.ErrorIs(t, err, ErrClosed)
	assert.Contains(t, err.Error(), s.Dir())
}

func TestLockedWithoutLockFile(t *testing.T) {
	locked, err := Locked(filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err)
	assert.False(t, locked)
	dir := t.TempDir()
	locked, err = Locked(dir)
	require.NoError(t, err)
	assert.False(t, locked)
	assert.Empty(t, dirNames(t, dir), "Locked creates nothing")
}

const helperEnv = "CURSOR_TEST_HELPER_STORAGE_DIR"

// TestHelperProcess is not a test: TestOpenHeldByAnotherProcess runs the
// test binary again with helperEnv set so that this opens the store, says so
// and holds it until killed (or until its stdin closes).
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestOpenHeldByAnotherProcess")
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

func TestOpenHeldByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	// A state saved beforehand, for Peek while the other process holds it.
	s, err := Open(dir)
	require.NoError(t, err)
	want := fixtureExport(3)
	require.NoError(t, s.Save(want))
	require.NoError(t, s.Close())

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	s2, err := Open(dir)
	require.Nil(t, s2)
	requireOneLine(t, err)
	assert.ErrorIs(t, err, ErrInUse)
	assert.Equal(t, fmt.Sprintf(
		"storage_dir %s is in use by another process (lock %s held): two exporters cannot share one storage_dir",
		dir, filepath.Join(dir, "lock")), err.Error())

	locked, err := Locked(dir)
	require.NoError(t, err)
	assert.True(t, locked)

	got, err := Peek(dir)
	require.NoError(t, err)
	assert.Equal(t, want, got, "Peek works without the lock")

	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	killed = true

	locked, err = Locked(dir)
	require.NoError(t, err)
	assert.False(t, locked)
	s3, err := Open(dir)
	require.NoError(t, err, "the lock dies with its process")
	defer s3.Close()
	got, err = s3.Load()
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	special := fixtureExport(2)
	special.Export.Days["2024-03-01"].Cursors["odd \"chunk\" <&> \u2028 é 日本"] = "line\nbreak\ttab\x01\x7f\\ \u2029 \U0001F600"

	emptyDay := fixtureExport(0)
	emptyDay.Export.Days["2024-03-03"] = &Day{}

	modeSwitch := fixtureSearch()
	modeSwitch.Export = &Export{NextDay: "2024-03-05"}

	tests := []struct {
		name string
		st   *State
	}{
		{"first run", New(fixtureStart)},
		{"export", fixtureExport(20)},
		{"export no days", &State{Format: Format, Version: Version, StartTime: fixtureStart, Mode: ModeExport, Export: &Export{NextDay: "2024-03-01"}}},
		{"export empty day", emptyDay},
		{"export special strings", special},
		{"search", fixtureSearch()},
		{"search first page", &State{Format: Format, Version: Version, StartTime: fixtureStart, Mode: ModeSearch, Search: &Search{WindowStart: fixtureStart}}},
		{"search with stale export position", modeSwitch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			require.NoError(t, s.Save(tt.st))
			assert.Equal(t, os.FileMode(0o600), filePerm(t, s.Path()))
			assert.Equal(t, []string{"lock", "state.json"}, dirNames(t, s.Dir()), "no temporary file left")

			got, err := s.Load()
			require.NoError(t, err)
			assert.Equal(t, tt.st, got)

			peeked, err := Peek(s.Dir())
			require.NoError(t, err)
			assert.Equal(t, tt.st, peeked)

			// Saving what was loaded writes the same bytes.
			before, err := os.ReadFile(s.Path())
			require.NoError(t, err)
			require.NoError(t, s.Save(got))
			after, err := os.ReadFile(s.Path())
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after))
		})
	}
}

func TestSaveNormalizesAndStamps(t *testing.T) {
	s := openTestStore(t)
	paris := time.FixedZone("CET", 3600)
	st := &State{ // no format, no version
		StartTime: time.Date(2024, 3, 1, 13, 0, 0, 0, paris),
		Mode:      ModeSearch,
		Search:    &Search{WindowStart: time.Now().In(paris)}, // monotonic reading, zone
	}
	require.NoError(t, s.Save(st))
	assert.Equal(t, Format, st.Format)
	assert.Equal(t, Version, st.Version)

	raw, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"start_time": "2024-03-01T12:00:00Z"`)
	assert.Contains(t, string(raw), `"format": "teleport-fluent-bit/cursor"`)
	assert.Contains(t, string(raw), `"version": 3`)
	assert.True(t, strings.HasSuffix(string(raw), "}\n"))

	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, got.StartTime.Equal(st.StartTime))
	assert.Equal(t, time.UTC, got.StartTime.Location())
	assert.True(t, got.Search.WindowStart.Equal(st.Search.WindowStart))
	assert.Equal(t, time.UTC, got.Search.WindowStart.Location())
}

func TestSaveRefusesInvalidState(t *testing.T) {
	s := openTestStore(t)
	good := fixtureSearch()
	require.NoError(t, s.Save(good))
	before, err := os.ReadFile(s.Path())
	require.NoError(t, err)

	bad := fixtureExport(1)
	bad.Export.NextDay = "2024-3-1"
	err = s.Save(bad)
	requireOneLine(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, `refusing to save an invalid state to `+s.Path()+`: export.next_day "2024-3-1" is not a YYYY-MM-DD date`, err.Error())

	err = s.Save(nil)
	assert.ErrorIs(t, err, ErrInvalid)

	foreign := fixtureSearch()
	foreign.Format = "other"
	assert.ErrorIs(t, s.Save(foreign), ErrInvalid)

	after, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.Equal(t, []string{"lock", "state.json"}, dirNames(t, s.Dir()))
}

func TestOpenRemovesLeftoverTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Save(fixtureSearch()))
	require.NoError(t, s.Close())
	// A crash between creating and renaming the temporary file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.json.tmp-12345"), []byte(`{"partial`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated"), nil, 0o600))

	s, err = Open(dir)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, []string{"lock", "state.json", "unrelated"}, dirNames(t, dir))
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, fixtureSearch(), got)
}

func TestSaveFailureKeepsPreviousState(t *testing.T) {
	eio := syscall.EIO
	tests := []struct {
		name   string
		inject func()
		want   string
	}{
		{"create temp", func() {
			createTemp = func(string, string) (*os.File, error) {
				return nil, &os.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC}
			}
		}, "cannot create a temporary file: no space left on device; the previous state is kept"},
		{"write", func() {
			writeFile = func(f *os.File, b []byte) (int, error) {
				n, _ := f.Write(b[:len(b)/2])
				return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
			}
		}, "write "},
		{"short write", func() {
			writeFile = func(f *os.File, b []byte) (int, error) { return f.Write(b[:len(b)-1]) }
		}, "short write"},
		{"fsync", func() { syncFile = func(*os.File) error { return eio } }, "fsync "},
		{"close", func() {
			closeFile = func(f *os.File) error { f.Close(); return eio }
		}, "close "},
		{"rename", func() {
			renameFile = func(a, b string) error { return &os.LinkError{Op: "rename", Old: a, New: b, Err: syscall.EXDEV} }
		}, "rename "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restoreSaveHooks(t)
			s := openTestStore(t)
			old := fixtureExport(5)
			require.NoError(t, s.Save(old))
			before, err := os.ReadFile(s.Path())
			require.NoError(t, err)

			tt.inject()
			next := fixtureExport(6)
			next.Export.Days["2024-03-01"].Cursors["chunk-0000-7f3c9a1e"] = "moved on"
			err = s.Save(next)
			requireOneLine(t, err)
			requireContainsAll(t, err.Error(), "cannot save state to "+s.Path()+": ", tt.want)
			assert.Contains(t, err.Error(), "the previous state is kept")

			after, err := os.ReadFile(s.Path())
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after), "previous state file intact")
			assert.Equal(t, []string{"lock", "state.json"}, dirNames(t, s.Dir()), "temporary file removed")
			got, err := s.Load()
			require.NoError(t, err)
			assert.Equal(t, old, got)
		})
	}
}

func TestSaveRecoversAfterFailure(t *testing.T) {
	restoreSaveHooks(t)
	s := openTestStore(t)
	syncFile = func(*os.File) error { return syscall.EIO }
	require.Error(t, s.Save(fixtureSearch()))
	st, err := s.Load()
	require.NoError(t, err)
	assert.Nil(t, st, "a failed first save leaves no state file")
	assert.Equal(t, []string{"lock"}, dirNames(t, s.Dir()))

	syncFile = (*os.File).Sync
	require.NoError(t, s.Save(fixtureSearch()))
	st, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, fixtureSearch(), st)
}

func TestSaveDirectorySyncFailure(t *testing.T) {
	restoreSaveHooks(t)
	s := openTestStore(t)
	require.NoError(t, s.Save(fixtureExport(1)))
	syncDir = func(*os.File) error { return syscall.EIO }
	next := fixtureSearch()
	err := s.Save(next)
	requireOneLine(t, err)
	assert.Equal(t, "state saved to "+s.Path()+" but fsync of directory "+s.Dir()+
		" failed: input/output error; the new state may not survive a crash", err.Error())
	// The new state is in place (rename is atomic); only its durability is
	// in doubt.
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, next, got)
	assert.Equal(t, []string{"lock", "state.json"}, dirNames(t, s.Dir()))
}

// A reader never sees a partial state while saves go on.
func TestConcurrentSaveAndPeek(t *testing.T) {
	s := openTestStore(t)
	require.NoError(t, s.Save(fixtureExport(50)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peekErr error
	var peeks int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, err := Peek(s.Dir())
			if err == nil && st == nil {
				err = errors.New("state vanished")
			}
			if err != nil {
				peekErr = err
				return
			}
			peeks++
		}
	}()
	st := fixtureExport(50)
	for i := 0; i < 30; i++ {
		st.Export.Days["2024-03-02"].Cursors["chunk-0001-7f3c9a1e"] = fmt.Sprint("cursor-", i)
		require.NoError(t, s.Save(st))
	}
	close(stop)
	wg.Wait()
	require.NoError(t, peekErr)
	assert.Positive(t, peeks)
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, "cursor-29", got.Export.Days["2024-03-02"].Cursors["chunk-0001-7f3c9a1e"])
}
