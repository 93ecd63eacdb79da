// Package logging writes log lines that look like Fluent Bit's own:
//
//	[2026/11/22 10:00:00] [ info] [input:teleport] message
//
// Fluent Bit keeps its log_level property to itself, so debug lines are
// switched on by the plugin's own `debug` key instead.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Logger is safe for concurrent use. The zero value is not usable; use New.
type Logger struct {
	mu    sync.Mutex
	w     io.Writer
	tag   string
	debug atomic.Bool
	now   func() time.Time
	buf   []byte
}

// New returns a logger writing to w with the given component tag, e.g. "input:teleport".
func New(w io.Writer, tag string) *Logger {
	return &Logger{w: w, tag: tag, now: time.Now}
}

// Default logs to stderr, where Fluent Bit writes its own lines.
var Default = New(os.Stderr, "input:teleport")

// SetTag changes the component tag, e.g. to "input:teleport:prod" once a
// second teleport input runs in the same Fluent Bit.
func (l *Logger) SetTag(tag string) {
	l.mu.Lock()
	l.tag = tag
	l.mu.Unlock()
}

// SetDebug turns debug lines on or off.
func (l *Logger) SetDebug(on bool) { l.debug.Store(on) }

// DebugEnabled tells whether debug lines are written.
func (l *Logger) DebugEnabled() bool { return l.debug.Load() }

// Debugf logs at debug level, only when debug is on.
func (l *Logger) Debugf(format string, args ...any) {
	if l.debug.Load() {
		l.write("debug", format, args)
	}
}

// Infof logs at info level.
func (l *Logger) Infof(format string, args ...any) { l.write(" info", format, args) }

// Warnf logs at warning level.
func (l *Logger) Warnf(format string, args ...any) { l.write(" warn", format, args) }

// Errorf logs at error level.
func (l *Logger) Errorf(format string, args ...any) { l.write("error", format, args) }

func (l *Logger) write(level, format string, args []any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	b = l.now().Local().AppendFormat(append(b, '['), "2006/01/02 15:04:05")
	b = append(b, "] ["...)
	b = append(b, level...)
	b = append(b, "] ["...)
	b = append(b, l.tag...)
	b = append(b, "] "...)
	for i := 0; i < len(msg); i++ {
		// One event, one line: a newline inside a message would let a
		// server-controlled string forge log lines.
		if c := msg[i]; c == '\n' || c == '\r' {
			b = append(b, ' ')
		} else {
			b = append(b, c)
		}
	}
	b = append(b, '\n')
	_, _ = l.w.Write(b)
	l.buf = b
}

// OneLine flattens a multi-line message (trace aggregates, TOML parser
// errors) into one log line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
