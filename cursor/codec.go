package cursor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// encoder writes a State as indented JSON (human readable: operators look
// at it) with a final newline. It keeps its buffers from one save to the
// next: with thousands of recordings in progress the state is a megabyte,
// rewritten at every commit, and fresh buffers each time were 4.8 MB of
// garbage a commit (BenchmarkCommit, 10,000 sessions).
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// encode returns the encoding of st, valid until the next call.
func (e *encoder) encode(st *State) ([]byte, error) {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetIndent("", "  ")
	}
	e.buf.Reset()
	// Encoder writes what MarshalIndent returns, then a newline
	// (FuzzDecode holds them together).
	if err := e.enc.Encode(st); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// decodeError is a decoding failure without the file name, which the caller
// adds (see fileError).
type decodeError struct {
	kind    error  // ErrCorrupt, ErrForeign, ErrNewerVersion or ErrInvalid
	detail  string // what is wrong, one line
	version int    // for ErrNewerVersion
	cause   error
}

func (e *decodeError) Error() string { return e.detail }

// fileError turns a decodeError into the operator-facing message naming path.
func (e *decodeError) fileError(path string) error {
	switch e.kind {
	case ErrCorrupt:
		return newError(e.kind, e.cause,
			"state file %s is corrupt (%s); refusing to start rather than restart from the beginning: fix or move the file away",
			path, e.detail)
	case ErrForeign:
		return newError(e.kind, e.cause,
			"state file %s is not a teleport-fluent-bit cursor file (%s); refusing to start rather than overwrite it: give the plugin a storage_dir of its own or move the file away",
			path, e.detail)
	case ErrNewerVersion:
		return newError(e.kind, e.cause,
			"state file %s has version %d but this plugin supports up to version %d; refusing to start: upgrade the plugin (downgrading is not supported)",
			path, e.version, Version)
	default:
		return newError(ErrInvalid, e.cause,
			"state file %s is invalid (%s); refusing to start rather than restart from the beginning: fix or move the file away",
			path, e.detail)
	}
}

// decode parses and validates a state file's content. It never panics and
// its error is one line; times are returned in UTC.
func decode(data []byte) (*State, *decodeError) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &decodeError{kind: ErrCorrupt, detail: "the file is empty"}
	}
	// First the envelope, leniently: tell a broken file from a foreign one
	// from one of a newer version before judging its content.
	var head struct {
		Format  json.RawMessage `json:"format"`
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &decodeError{kind: ErrForeign, detail: "the content is a JSON " + te.Value + ", not an object", cause: err}
		}
		return nil, &decodeError{kind: ErrCorrupt, detail: jsonDetail(err), cause: err}
	}
	var format string
	if head.Format == nil || string(head.Format) == "null" {
		return nil, &decodeError{kind: ErrForeign, detail: `there is no "format" field`}
	}
	if err := json.Unmarshal(head.Format, &format); err != nil {
		return nil, &decodeError{kind: ErrForeign, detail: `"format" is not a string`, cause: err}
	}
	if format != Format {
		return nil, &decodeError{kind: ErrForeign, detail: fmt.Sprintf("format %q, expected %q", format, Format)}
	}
	if head.Version == nil || string(head.Version) == "null" {
		return nil, &decodeError{kind: ErrInvalid, detail: `there is no "version" field`}
	}
	var version int
	if err := json.Unmarshal(head.Version, &version); err != nil {
		return nil, &decodeError{kind: ErrInvalid, detail: fmt.Sprintf("version %q is not an integer", clip(string(head.Version))), cause: err}
	}
	if version > Version {
		return nil, &decodeError{kind: ErrNewerVersion, version: version, detail: fmt.Sprintf("version %d", version)}
	}

	// Then the content, strictly: a field we do not know would be dropped by
	// the next Save, so refuse it.
	st := new(State)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, &decodeError{kind: ErrInvalid, detail: jsonDetail(err), cause: err}
	}
	if dec.More() { // unreachable: json.Unmarshal above accepted one value only
		return nil, &decodeError{kind: ErrCorrupt, detail: "data after the JSON object"}
	}
	st.normalize()
	if st.Version >= 1 && st.Version < Version {
		// The older form is checked as it is first: migrate drops the
		// fields it replaces (a version 2 "done" list), and with them
		// what is wrong in them.
		if err := st.Validate(); err != nil {
			return nil, &decodeError{kind: ErrInvalid, detail: err.Error(), cause: err}
		}
		st.migrate()
	}
	if err := st.Validate(); err != nil {
		return nil, &decodeError{kind: ErrInvalid, detail: err.Error(), cause: err}
	}
	return st, nil
}

// jsonDetail words a JSON error for an operator: without the "json: "
// prefix, with the offset of a syntax error, on one line.
func jsonDetail(err error) string {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	var se *json.SyntaxError
	if errors.As(err, &se) && msg != "unexpected end of JSON input" {
		msg = fmt.Sprintf("%s at byte %d", msg, se.Offset)
	}
	return oneLine(msg)
}

// clip shortens s for quoting (with %q) in a message.
func clip(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
