// Package testlog holds what tests of several packages share to read the
// plugin's log.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a log a test reads while the goroutines under test write it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
