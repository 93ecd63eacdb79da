// Package eventhandler reads the storage of Teleport's Event Handler (the
// teleport-event-handler plugin) and turns it into this plugin's cursor, so
// an operator can switch with no gap and no repeat.
//
// The Event Handler keeps its state with github.com/peterbourgon/diskv in a
// flat directory, <storage>/<host>_<port>/, one file per key (state.go in
// gravitational/teleport-plugins event-handler/ for v13 to v15, and
// integrations/event-handler/ in gravitational/teleport from then on):
//
//	start_time               RFC 3339, whole seconds: where the export began
//	cursor, id               the search position: the start key of the page
//	                         holding the last event sent, and that event's id
//	window_time              RFC 3339: the start of the search window the
//	                         cursor belongs to (windowed search; without it the
//	                         search runs from start_time)
//	session<sid>             8 bytes, big endian: the index of the last
//	                         recording event sent (0 also when none was)
//	missing_recording<sid>   JSON {"Index","Attempt","Timestamp"}: a recording
//	                         not found yet, retried later
//	cursor_v2/<YYYY-MM-DD>/  the bulk export position (lib/events/export,
//	                         cursor.go): completed-chunks, one chunk name a
//	                         line, and <chunk>.chunk holding a chunk's cursor
//	dry_run/                 the state of --dry-run runs (not a position)
//
// Every file is read, or refused with one line naming it.
package eventhandler

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The Event Handler's diskv keys (state.go) and cursor_v2 names
// (lib/events/export/cursor.go).
const (
	startTimeName   = "start_time"
	windowTimeName  = "window_time"
	cursorName      = "cursor"
	idName          = "id"
	sessionPrefix   = "session"
	missingPrefix   = "missing_recording"
	cursorV2Dir     = "cursor_v2"
	dryRunDir       = "dry_run"
	completedName   = "completed-chunks"
	chunkSuffix     = ".chunk"
	maxFileSize     = 1 << 20  // a key, an id or a time: far less
	maxCompletedLen = 64 << 20 // chunk names of one day
)

// Storage is what the Event Handler had stored, as it stored it.
type Storage struct {
	// Dir is the <host>_<port> directory read.
	Dir string
	// StartTime is start_time (nil when absent or empty).
	StartTime *time.Time
	// WindowTime is window_time (nil when absent or empty).
	WindowTime *time.Time
	// Cursor and ID are the search position ("" when absent).
	Cursor, ID string
	// Sessions are the session<sid> files: the index of the last event
	// sent (or 0).
	Sessions map[string]int64
	// Missing are the missing_recording<sid> files.
	Missing map[string]MissingRecording
	// Dates is cursor_v2: per UTC day, its chunks.
	Dates map[string]*Date
	// DryRun is set when a dry_run/ directory was skipped.
	DryRun bool
}

// MissingRecording is one missing_recording<sid> file (the JSON of the
// Event Handler's missingRecording).
type MissingRecording struct {
	Index     int64
	Attempt   int
	Timestamp time.Time
}

// Date is one cursor_v2/<date>/ directory.
type Date struct {
	Completed []string          // completed-chunks
	Cursors   map[string]string // <chunk>.chunk, non-empty ones
}

var dateDir = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// Find returns the <host>_<port> directory of dir: dir itself when it holds
// Event Handler state, else its only <host>_<port> subdirectory.
func Find(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("Event Handler storage %s: %v", dir, bare(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("Event Handler storage %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("Event Handler storage %s: %v", dir, bare(err))
	}
	var subs []string
	for _, e := range entries {
		n := e.Name()
		if n == startTimeName || n == cursorName || n == idName || n == windowTimeName || n == cursorV2Dir ||
			strings.HasPrefix(n, sessionPrefix) || strings.HasPrefix(n, missingPrefix) {
			return dir, nil
		}
		if e.IsDir() && hostPort.MatchString(n) {
			subs = append(subs, n)
		}
	}
	switch len(subs) {
	case 1:
		return filepath.Join(dir, subs[0]), nil
	case 0:
		return "", fmt.Errorf("no Event Handler state in %s: expected its storage directory (holding <host>_<port>/) or a <host>_<port> directory holding start_time", dir)
	default:
		return "", fmt.Errorf("Event Handler storage %s holds the state of several Auth Services (%s): give the <host>_<port> directory to import", dir, strings.Join(subs, ", "))
	}
}

var hostPort = regexp.MustCompile(`^.+_[0-9]+$`)

// Read reads every file of the <host>_<port> directory dir. It fails on the
// first file it cannot understand, naming it.
func Read(dir string) (*Storage, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("Event Handler storage %s: %v", dir, bare(err))
	}
	s := &Storage{Dir: dir, Sessions: map[string]int64{}, Missing: map[string]MissingRecording{}, Dates: map[string]*Date{}}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() {
			switch name {
			case dryRunDir:
				s.DryRun = true
			case cursorV2Dir:
				if err := s.readCursorV2(path); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("%s: a directory the Event Handler does not write (expected only cursor_v2/ and dry_run/): move it away", path)
			}
			continue
		}
		data, err := readRegular(path, maxFileSize)
		if err != nil {
			return nil, err
		}
		switch {
		case name == startTimeName:
			s.StartTime, err = parseTime(path, data)
		case name == windowTimeName:
			s.WindowTime, err = parseTime(path, data)
		case name == cursorName:
			s.Cursor, err = text(path, data)
		case name == idName:
			s.ID, err = text(path, data)
		case strings.HasPrefix(name, missingPrefix):
			err = s.readMissing(path, strings.TrimPrefix(name, missingPrefix), data)
		case strings.HasPrefix(name, sessionPrefix):
			err = s.readSession(path, strings.TrimPrefix(name, sessionPrefix), data)
		default:
			err = fmt.Errorf("%s: not a file the Event Handler writes (start_time, window_time, cursor, id, session<id>, missing_recording<id>, cursor_v2/): move it away", path)
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readRegular reads a regular file of at most limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, bare(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the Event Handler writes there", path, fi.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, bare(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, bare(err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes, more than the Event Handler writes there", path, limit)
	}
	return data, nil
}

// parseTime reads a time key the way the Event Handler does (getTimeKey:
// RFC 3339, truncated to the second; empty means unset).
func parseTime(path string, data []byte) (*time.Time, error) {
	v := strings.TrimSpace(string(data))
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an RFC 3339 time", path, clip(v))
	}
	t = t.Truncate(time.Second).UTC()
	return &t, nil
}

func text(path string, data []byte) (string, error) {
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%s: not valid UTF-8 (%d bytes)", path, len(data))
	}
	return string(data), nil
}

func checkSID(path, sid string) error {
	if sid == "" || !utf8.ValidString(sid) || strings.ContainsAny(sid, "/\x00") {
		return fmt.Errorf("%s: no valid session id in the file name", path)
	}
	return nil
}

// readSession reads session<sid>: the index as 8 bytes big endian
// (SetSessionIndex); an empty file is index 0 (GetSessions).
func (s *Storage) readSession(path, sid string, data []byte) error {
	if sid == "" {
		return nil // the key "session" itself, skipped by GetSessions
	}
	if err := checkSID(path, sid); err != nil {
		return err
	}
	switch len(data) {
	case 0:
		s.Sessions[sid] = 0
	case 8:
		v := binary.BigEndian.Uint64(data)
		if v > math.MaxInt64 {
			return fmt.Errorf("%s: index %d is out of range", path, v)
		}
		s.Sessions[sid] = int64(v)
	default:
		return fmt.Errorf("%s: %d bytes, expected an 8-byte big-endian recording index", path, len(data))
	}
	return nil
}

// readMissing reads missing_recording<sid> (SetMissingRecording's JSON).
func (s *Storage) readMissing(path, sid string, data []byte) error {
	if err := checkSID(path, sid); err != nil {
		return err
	}
	var m struct {
		ID        string    `json:"id,omitempty"`
		Index     *int64    `json:"Index"`
		Attempt   int       `json:"Attempt"`
		Timestamp time.Time `json:"Timestamp"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: not the JSON of a missing recording: %s", path, oneLine(err.Error()))
	}
	if m.Index == nil || *m.Index < 0 {
		return fmt.Errorf("%s: no recording index (\"Index\") or a negative one", path)
	}
	s.Missing[sid] = MissingRecording{Index: *m.Index, Attempt: m.Attempt, Timestamp: m.Timestamp.UTC()}
	return nil
}

// readCursorV2 reads the bulk export cursor directory the way
// lib/events/export's loadInitialState does, but refuses what it would skip.
func (s *Storage) readCursorV2(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %v", dir, bare(err))
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if !e.IsDir() || !dateDir.MatchString(e.Name()) {
			return fmt.Errorf("%s: not a date directory (YYYY-MM-DD) of the bulk export cursor: move it away", path)
		}
		if _, err := time.Parse(time.DateOnly, e.Name()); err != nil {
			return fmt.Errorf("%s: %q is not a date", path, e.Name())
		}
		d := &Date{Cursors: map[string]string{}}
		files, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("%s: %v", path, bare(err))
		}
		for _, f := range files {
			fp := filepath.Join(path, f.Name())
			switch {
			case f.IsDir():
				return fmt.Errorf("%s: a directory the Event Handler does not write in a date of cursor_v2: move it away", fp)
			case f.Name() == completedName:
				data, err := readRegular(fp, maxCompletedLen)
				if err != nil {
					return err
				}
				if !utf8.Valid(data) {
					return fmt.Errorf("%s: not valid UTF-8", fp)
				}
				d.Completed = strings.Fields(string(data))
			case strings.HasSuffix(f.Name(), chunkSuffix) && f.Name() != chunkSuffix:
				data, err := readRegular(fp, maxFileSize)
				if err != nil {
					return err
				}
				if !utf8.Valid(data) {
					return fmt.Errorf("%s: the chunk cursor is not valid UTF-8", fp)
				}
				chunk := strings.TrimSuffix(f.Name(), chunkSuffix)
				if c := strings.TrimSpace(string(data)); c != "" {
					d.Cursors[chunk] = c
				}
			default:
				return fmt.Errorf("%s: not a file of the bulk export cursor (completed-chunks or <chunk>.chunk): move it away", fp)
			}
		}
		s.Dates[e.Name()] = d
	}
	return nil
}

func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
