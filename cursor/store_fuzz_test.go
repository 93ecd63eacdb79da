package cursor

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzStoreLoad puts fuzzed bytes in a storage directory as its state file
// and opens it as the plugin does at start: Open and Load never panic and
// never touch the file; a refusal is one line naming the file; an accepted
// state saves and loads back unchanged. Seeds: testdata/fuzz/FuzzStoreLoad
// (and FuzzDecode's, the same bytes one level down).
func FuzzStoreLoad(f *testing.F) {
	f.Add([]byte(validExportJSON))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"2024-03-01T00:00:00Z","sessions":{"s":{"next":3,"announced":"2024-03-01T00:00:00Z"}},"locking":{"pending":{"u":"2024-03-01T00:00:00Z"}}}`))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":2,"start_time":"2024-03-01T00:00:00Z","mode":"search","search":{"window_start":"2024-03-02T00:00:00Z","windows":[{"start":"2024-03-02T00:00:00Z","end":"2024-03-03T00:00:00Z","key":"k","last_id":"i","limit":10000},{"start":"2024-03-03T00:00:00Z","end":"2024-03-04T00:00:00Z","done":true}],"seen":[{"id":"a","time":"2024-03-02T00:00:01Z"}]}}`))
	f.Add([]byte(`{"format":"teleport-fluent-bit/cursor","version":1,"start_time":"0000-01-01T00:00:00Z"}`))
	root := f.TempDir()
	// fsync proves nothing here and would make each input cost milliseconds.
	sf, sd := syncFile, syncDir
	f.Cleanup(func() { syncFile, syncDir = sf, sd })
	syncFile = func(*os.File) error { return nil }
	syncDir = func(*os.File) error { return nil }
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		dir := filepath.Join(root, "s", strings.Repeat("x", n%3)+time.Now().Format("150405.000000000"))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, stateName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		st, err := s.Load()
		if after, rerr := os.ReadFile(path); rerr != nil || !bytes.Equal(after, data) {
			t.Fatalf("Load changed the state file (%v)", rerr)
		}
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") || !strings.Contains(msg, path) {
				t.Fatalf("a refusal must be one line naming %s: %q", path, msg)
			}
			return
		}
		if st == nil {
			t.Fatal("no state and no error for an existing file")
		}
		if err := s.Save(st.Clone()); err != nil {
			t.Fatalf("an accepted state cannot be saved: %v", err)
		}
		again, err := s.Load()
		if err != nil {
			t.Fatalf("a saved state cannot be loaded: %v", err)
		}
		if !reflect.DeepEqual(normalized(st), normalized(again)) {
			t.Fatalf("save and load changed the state:\n%#v\n%#v", st, again)
		}
	})
}

// normalized is st with its times in UTC and the current version, as Save
// writes them.
func normalized(st *State) *State {
	c := st.Clone()
	c.normalize()
	c.Version = Version
	return c
}
