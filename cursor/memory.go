package cursor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The memory file (storage_dir/memory.bin) holds what the plugin remembers
// only to avoid handing something over twice: the hashes of recent audit
// events the bulk export handed over (an event the Auth Service stored twice
// is dropped when read again) and the recordings exported lately (a
// recording announced again is not exported again). Losing it never loses
// an event, so it is not rewritten at every commit like the state: at most
// every MemoryEvery and at a graceful stop, holding only what was committed.
// It is read strictly all the same: a file that is not ours, or broken, is
// refused with its name.

const (
	memoryName  = "memory.bin"
	memoryMagic = "teleport-fluent-bit/memory 1\n"
	// MemoryEvery is how often the memory file is rewritten while events flow.
	MemoryEvery = time.Minute
	// maxMemory bounds what Load accepts (entries of each kind).
	maxMemory = 10_000_000
)

// Memory is the content of the memory file.
type Memory struct {
	// Events are event hashes (teleport.EventHash), oldest first.
	Events []uint64
	// Sessions are recordings exported (or given up), by hash of the
	// session id, with when.
	Sessions []SessionMemory
}

// SessionMemory is one recording remembered.
type SessionMemory struct {
	Hash uint64
	At   time.Time
}

// MemoryPath is the memory file of the storage directory.
func (s *Store) MemoryPath() string { return filepath.Join(s.dir, memoryName) }

// SaveMemory writes m durably.
func (s *Store) SaveMemory(m *Memory) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedError()
	}
	b := make([]byte, 0, len(memoryMagic)+8+8*len(m.Events)+16*len(m.Sessions))
	b = append(b, memoryMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Events)))
	for _, h := range m.Events {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Sessions)))
	for _, x := range m.Sessions {
		b = binary.LittleEndian.AppendUint64(b, x.Hash)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.At.Unix()))
	}
	return s.writeAt(s.MemoryPath(), b)
}

// LoadMemory reads the memory file; an empty Memory when there is none.
func (s *Store) LoadMemory() (*Memory, error) {
	path := s.MemoryPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Memory{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, bare(err))
	}
	m, detail := decodeMemory(data)
	if detail != "" {
		return nil, newError(ErrInvalid, nil, "memory file %s is invalid (%s); refusing to start: move it away (only events stored twice may then be handed over twice)", path, detail)
	}
	return m, nil
}

func decodeMemory(b []byte) (*Memory, string) {
	if len(b) < len(memoryMagic) || string(b[:len(memoryMagic)]) != memoryMagic {
		return nil, "not a teleport-fluent-bit memory file of version 1"
	}
	b = b[len(memoryMagic):]
	count := func(size int) (int, string) {
		if len(b) < 4 {
			return 0, "truncated"
		}
		n := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n > maxMemory || len(b) < n*size {
			return 0, "truncated or oversized"
		}
		return n, ""
	}
	m := &Memory{}
	n, bad := count(8)
	if bad != "" {
		return nil, bad
	}
	m.Events = make([]uint64, n)
	for i := range m.Events {
		m.Events[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	b = b[8*n:]
	n, bad = count(16)
	if bad != "" {
		return nil, bad
	}
	m.Sessions = make([]SessionMemory, n)
	for i := range m.Sessions {
		m.Sessions[i] = SessionMemory{Hash: binary.LittleEndian.Uint64(b[16*i:]), At: time.Unix(int64(binary.LittleEndian.Uint64(b[16*i+8:])), 0).UTC()}
	}
	if len(b) != 16*n {
		return nil, "data after the end"
	}
	return m, ""
}

// ForgetMemory removes the memory file (cursor set and reset: events are
// to be exported again, so none may be dropped as seen).
func (s *Store) ForgetMemory() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedError()
	}
	if err := os.Remove(s.MemoryPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove %s: %v", s.MemoryPath(), bare(err))
	}
	if err := syncDir(s.dirf); err != nil {
		return fmt.Errorf("removed %s but fsync of directory %s failed: %v", s.MemoryPath(), s.dir, bare(err))
	}
	return nil
}
