package cursor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

const (
	stateName    = "state.json"
	tempPrefix   = stateName + ".tmp-" // + random suffix (os.CreateTemp)
	maxStateSize = 64 << 20            // far above any real state
)

// Hooks for tests to inject failures (tests run as root, so permissions
// cannot make a write fail).
var (
	createTemp = os.CreateTemp
	writeFile  = (*os.File).Write
	syncFile   = (*os.File).Sync
	closeFile  = (*os.File).Close
	renameFile = os.Rename
	syncDir    = (*os.File).Sync
)

// Store is an open storage directory: it holds the directory's lock until
// Close. Its methods may be called from several goroutines.
type Store struct {
	mu       sync.Mutex
	dir      string // absolute, cleaned
	path     string // dir/state.json
	key      string // key in held
	lock     *os.File
	dirf     *os.File // the directory, kept open for fsync
	enc      encoder
	closed   bool
	lockPath string
}

// Open opens the storage directory dir, creating it (and missing parents)
// with mode 0700 if needed, and locks it: until Close, no other process and
// no other Store of this process can open it.
//
// It refuses a directory accessible to group or others rather than changing
// its mode. Leftover temporary files of an interrupted Save are removed.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("storage_dir is not set")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage_dir %s: %v", dir, err)
	}
	if err := mkdirDurable(abs); err != nil {
		return nil, fmt.Errorf("cannot create storage_dir %s: %v", abs, bare(err))
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("storage_dir %s: %v", abs, bare(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("storage_dir %s is not a directory", abs)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, newError(ErrPermissions, nil,
			"storage_dir %s has mode %s; it must not be accessible to group or others (chmod 700 %s)",
			abs, modeString(fi.Mode()), abs)
	}
	key, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("storage_dir %s: %v", abs, bare(err))
	}
	lockPath := filepath.Join(abs, lockName)

	heldMu.Lock()
	defer heldMu.Unlock()
	if _, ok := held[key]; ok {
		return nil, newError(ErrInUse, nil,
			"storage_dir %s is in use by another plugin instance of this process (lock %s held): two exporters cannot share one storage_dir",
			abs, lockPath)
	}
	lock, err := acquireLock(lockPath)
	if err == errWouldBlock {
		return nil, newError(ErrInUse, nil,
			"storage_dir %s is in use by another process (lock %s held): two exporters cannot share one storage_dir",
			abs, lockPath)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot lock storage_dir %s (lock %s): %v", abs, lockPath, bare(err))
	}
	dirf, err := os.Open(abs)
	if err != nil {
		releaseLock(lock)
		return nil, fmt.Errorf("storage_dir %s: %v", abs, bare(err))
	}
	if err := removeTemps(abs); err != nil {
		dirf.Close()
		releaseLock(lock)
		return nil, fmt.Errorf("storage_dir %s: cannot remove a temporary file left by an interrupted save: %v", abs, err)
	}
	held[key] = struct{}{}
	return &Store{
		dir:      abs,
		path:     filepath.Join(abs, stateName),
		key:      key,
		lock:     lock,
		dirf:     dirf,
		lockPath: lockPath,
	}, nil
}

// mkdirDurable creates dir and its missing parents with mode 0700 and
// fsyncs the parent of each directory it created, so that a state saved
// later cannot vanish with its directory in a crash.
func mkdirDurable(dir string) error {
	var created []string
	for p := dir; ; {
		_, err := os.Lstat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		created = append(created, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if len(created) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, p := range created {
		if err := syncPath(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps removes the temporary files of interrupted saves. Only the
// lock holder may call it: a temporary file is never someone else's.
func removeTemps(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Dir returns the storage directory (absolute).
func (s *Store) Dir() string { return s.dir }

// Path returns the state file, Dir()/state.json.
func (s *Store) Path() string { return s.path }

// Load reads and validates the state file. It returns (nil, nil) when there
// is none (first run). Any other problem is an error naming the file and
// what is wrong: Load never treats a damaged state as a first run.
func (s *Store) Load() (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.closedError()
	}
	return readState(s.path)
}

// Peek reads and validates the state file of storage directory dir without
// taking the lock (a Save by the holder is atomic, so Peek sees the old or
// the new state). It returns (nil, nil) when there is no state file.
func Peek(dir string) (*State, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage_dir %s: %v", dir, err)
	}
	return readState(filepath.Join(abs, stateName))
}

func readState(path string) (*State, error) {
	data, err := readFile(path)
	if err != nil || data == nil {
		return nil, err
	}
	st, derr := decode(data)
	if derr != nil {
		return nil, derr.fileError(path)
	}
	return st, nil
}

// readFile reads the state file; (nil, nil) if it does not exist.
func readFile(path string) ([]byte, error) {
	// O_NOFOLLOW: Save would replace a symbolic link rather than write
	// through it. O_NONBLOCK: do not hang on a FIFO (checked below).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("state file %s is a symbolic link; refusing to follow it: replace it with the file it points to", path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read state file %s: %v", path, bare(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read state file %s: %v", path, bare(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("state file %s is not a regular file (%s); refusing to start: move it away", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, newError(ErrPermissions, nil,
			"state file %s has mode %s; it must not be accessible to group or others (chmod 600 %s)",
			path, modeString(fi.Mode()), path)
	}
	if fi.Size() > maxStateSize {
		return nil, newError(ErrCorrupt, nil,
			"state file %s is corrupt (%d bytes, more than a state can be); refusing to start rather than restart from the beginning: fix or move the file away",
			path, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read state file %s: %v", path, bare(err))
	}
	if len(data) > maxStateSize {
		return nil, newError(ErrCorrupt, nil,
			"state file %s is corrupt (more than %d bytes, more than a state can be); refusing to start rather than restart from the beginning: fix or move the file away",
			path, maxStateSize)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Save replaces the state file with st atomically and durably: it writes a
// temporary file (0600, same directory), fsyncs it, renames it over the
// state file and fsyncs the directory. On error the previous state file is
// left as it was (unless only the final directory fsync failed: then the
// new state is in place but may not survive a crash) and the temporary file
// is removed.
//
// Save stamps st: an empty Format is set to Format, and the version is
// always the current one (an older layout loads as it is and is written in
// this one). It refuses a state that fails Validate.
func (s *Store) Save(st *State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedError()
	}
	if st == nil {
		return newError(ErrInvalid, nil, "refusing to save a null state to %s", s.path)
	}
	if st.Format == "" {
		st.Format = Format
	}
	if st.Version == 0 {
		st.Version = Version
	}
	if err := st.Validate(); err != nil {
		return newError(ErrInvalid, err, "refusing to save an invalid state to %s: %v", s.path, err)
	}
	st.normalize()
	st.Version = Version
	data, err := s.enc.encode(st)
	if err != nil {
		return newError(ErrInvalid, err, "cannot encode the state for %s: %v", s.path, err)
	}
	if len(data) > maxStateSize {
		// Load would refuse it at the next start: keep the last good state.
		return newError(ErrInvalid, nil, "refusing to save a state of %d bytes to %s: over the %d-byte limit Load accepts; the previous state is kept", len(data), s.path, maxStateSize)
	}
	return s.write(data)
}

func (s *Store) write(data []byte) error { return s.writeAt(s.path, data) }

// writeAt replaces the file path in the storage directory with data,
// durably (temporary file, fsync, rename, fsync of the directory).
func (s *Store) writeAt(path string, data []byte) error {
	f, err := createTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("cannot save state to %s: cannot create a temporary file: %v; the previous state is kept", path, bare(err))
	}
	tmp := f.Name()
	fail := func(what string, err error) error {
		if f != nil {
			closeFile(f)
		}
		os.Remove(tmp)
		return fmt.Errorf("cannot save state to %s: %s %s: %v; the previous state is kept", path, what, tmp, bare(err))
	}
	n, err := writeFile(f, data)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fail("write", err)
	}
	if err := syncFile(f); err != nil {
		return fail("fsync", err)
	}
	err = closeFile(f)
	f = nil
	if err != nil {
		return fail("close", err)
	}
	if err := renameFile(tmp, path); err != nil {
		return fail("rename", err)
	}
	if err := syncDir(s.dirf); err != nil {
		return fmt.Errorf("state saved to %s but fsync of directory %s failed: %v; the new state may not survive a crash", path, s.dir, bare(err))
	}
	return nil
}

// Close releases the lock. It is idempotent; Load and Save fail afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	derr := s.dirf.Close()
	lerr := releaseLock(s.lock)
	heldMu.Lock()
	delete(held, s.key)
	heldMu.Unlock()
	if lerr != nil {
		return fmt.Errorf("storage_dir %s: releasing lock %s: %v", s.dir, s.lockPath, bare(lerr))
	}
	if derr != nil {
		return fmt.Errorf("storage_dir %s: %v", s.dir, bare(derr))
	}
	return nil
}

func (s *Store) closedError() error {
	return newError(ErrClosed, nil, "storage_dir %s: the store is closed", s.dir)
}
