package cursor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// encoder writes a State as indented JSON, byte for byte what
// json.MarshalIndent(st, "", "  ") writes for it (times in UTC) plus a final
// newline, without reflection and, once warmed up, without allocating: Save
// runs about once a second with hundreds of chunk cursors.
type encoder struct {
	buf    []byte
	days   []string // scratch for sorted keys of Export.Days
	chunks []string // scratch for sorted keys of Day.Cursors / Day.Done
}

func (e *encoder) encode(st *State) []byte {
	b := e.buf[:0]
	b = append(b, "{\n  \"format\": "...)
	b = appendString(b, st.Format)
	b = append(b, ",\n  \"version\": "...)
	b = strconv.AppendInt(b, int64(st.Version), 10)
	b = append(b, ",\n  \"start_time\": "...)
	b = appendTime(b, st.StartTime)
	if st.Mode != "" {
		b = append(b, ",\n  \"mode\": "...)
		b = appendString(b, st.Mode)
	}
	if x := st.Export; x != nil {
		b = append(b, ",\n  \"export\": {\n    \"next_day\": "...)
		b = appendString(b, x.NextDay)
		if len(x.Days) > 0 {
			b = append(b, ",\n    \"days\": {"...)
			e.days = sortedKeys(e.days[:0], x.Days)
			for i, day := range e.days {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, "\n      "...)
				b = appendString(b, day)
				b = append(b, ": "...)
				b = e.appendDay(b, x.Days[day])
			}
			b = append(b, "\n    }"...)
			clear(e.days)
		}
		b = append(b, "\n  }"...)
	}
	if x := st.Search; x != nil {
		b = append(b, ",\n  \"search\": {\n    \"window_start\": "...)
		b = appendTime(b, x.WindowStart)
		if x.Key != "" {
			b = append(b, ",\n    \"key\": "...)
			b = appendString(b, x.Key)
		}
		if x.LastID != "" {
			b = append(b, ",\n    \"last_id\": "...)
			b = appendString(b, x.LastID)
		}
		b = append(b, "\n  }"...)
	}
	b = append(b, "\n}\n"...)
	e.buf = b
	return b
}

// appendDay writes one day at indentation depth 3 (its key's depth).
func (e *encoder) appendDay(b []byte, d *Day) []byte {
	if d == nil {
		return append(b, "null"...)
	}
	if len(d.Cursors) == 0 && len(d.Done) == 0 {
		return append(b, "{}"...)
	}
	b = append(b, '{')
	if len(d.Cursors) > 0 {
		b = append(b, "\n        \"cursors\": {"...)
		e.chunks = sortedKeys(e.chunks[:0], d.Cursors)
		for i, c := range e.chunks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n          "...)
			b = appendString(b, c)
			b = append(b, ": "...)
			b = appendString(b, d.Cursors[c])
		}
		b = append(b, "\n        }"...)
		clear(e.chunks)
	}
	if len(d.Done) > 0 {
		if len(d.Cursors) > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n        \"done\": {"...)
		e.chunks = sortedKeys(e.chunks[:0], d.Done)
		for i, c := range e.chunks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n          "...)
			b = appendString(b, c)
			b = append(b, ": "...)
			b = strconv.AppendBool(b, d.Done[c])
		}
		b = append(b, "\n        }"...)
		clear(e.chunks)
	}
	return append(b, "\n      }"...)
}

func sortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// appendTime writes t in UTC as a quoted RFC 3339 timestamp with as many
// fractional digits as needed, as time.Time.MarshalJSON does.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string escaped exactly as encoding/json
// does by default (HTML-safe, U+2028/U+2029 escaped, invalid UTF-8 replaced
// by U+FFFD; Validate rejects invalid UTF-8 before Save gets here).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
	st.StartTime = st.StartTime.UTC()
	if st.Search != nil {
		st.Search.WindowStart = st.Search.WindowStart.UTC()
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
