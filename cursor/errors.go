package cursor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Error kinds, for errors.Is. Every error returned by this package is a single
// line that names the file or directory concerned; the kinds only classify it.
var (
	// ErrInUse: another process, or another Store of this process, holds the
	// storage directory's lock.
	ErrInUse = errors.New("storage_dir in use")
	// ErrPermissions: the storage directory or the state file is accessible to
	// group or others.
	ErrPermissions = errors.New("storage permissions too open")
	// ErrCorrupt: the state file is not well-formed JSON (or is empty).
	ErrCorrupt = errors.New("state file corrupt")
	// ErrForeign: the state file is JSON but not one of ours.
	ErrForeign = errors.New("state file foreign")
	// ErrNewerVersion: the state file was written by a newer version.
	ErrNewerVersion = errors.New("state file version newer than supported")
	// ErrInvalid: the state is structurally invalid (see State.Validate).
	ErrInvalid = errors.New("state invalid")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store closed")
)

// stateError is a one-line message classified by a kind and optionally
// wrapping the underlying cause.
type stateError struct {
	kind  error
	msg   string
	cause error
}

func (e *stateError) Error() string { return e.msg }

func (e *stateError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newError(kind, cause error, format string, args ...any) error {
	return &stateError{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

// bare strips the "op path:" decoration of an *fs.PathError (or
// *os.LinkError) so that messages naming the file themselves do not repeat
// it.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// modeString formats permission bits the way chmod takes them: 0755.
func modeString(m fs.FileMode) string {
	return fmt.Sprintf("%04o", uint32(m.Perm()))
}
