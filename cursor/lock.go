package cursor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockName is the lock file inside the storage directory.
const lockName = "lock"

// Flock conflicts are retried briefly: Locked (the CLI) takes a shared lock
// for an instant, which must not make a starting exporter fail.
const (
	lockAttempts   = 5
	lockRetryDelay = 20 * time.Millisecond
)

// held is the set of storage directories locked by Stores of this process,
// by resolved absolute path. flock already refuses a second lock through
// another open file description, even in the same process; the registry
// makes that independent of the lock mechanism and lets the error say that
// the other user is in this process.
var (
	heldMu sync.Mutex
	held   = map[string]struct{}{}
)

// errWouldBlock reports that the lock is held elsewhere.
var errWouldBlock = errors.New("lock held")

// flock retries flock(2) on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// acquireLock opens (creating it 0600 if needed) and exclusively locks the
// lock file. It returns errWouldBlock when another holder keeps the lock.
func acquireLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	for i := 0; ; i++ {
		err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, err
		}
		if i+1 == lockAttempts {
			f.Close()
			return nil, errWouldBlock
		}
		time.Sleep(lockRetryDelay)
	}
	// The file holds nothing, but keep it as private as the rest.
	if fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// releaseLock unlocks and closes the lock file.
func releaseLock(f *os.File) error {
	uerr := flock(f, unix.LOCK_UN)
	cerr := f.Close()
	if cerr != nil {
		return cerr
	}
	return uerr
}

// Locked reports whether some process (this one included) holds the lock of
// storage directory dir. It takes no lock for longer than an instant and
// creates nothing: a missing directory or lock file means not locked.
func Locked(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, fmt.Errorf("storage_dir %s: %v", dir, err)
	}
	path := filepath.Join(abs, lockName)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot open lock file %s: %v", path, bare(err))
	}
	defer f.Close()
	// A shared lock conflicts with the exporter's exclusive one but not with
	// another concurrent Locked.
	switch err := flock(f, unix.LOCK_SH|unix.LOCK_NB); err {
	case nil:
		flock(f, unix.LOCK_UN)
		return false, nil
	case unix.EWOULDBLOCK:
		return true, nil
	default:
		return false, fmt.Errorf("cannot test lock file %s: %v", path, err)
	}
}
