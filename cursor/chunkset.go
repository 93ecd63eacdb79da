package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
)

// ChunkSet is a set of chunk names kept as their FNV-64a hashes, sorted.
// A day's finished chunks are only ever asked "is this one done?", and a
// day stays open for export_late_horizon (15 days by default) with a
// chunk a minute: names (a UUID each in Athena) would make every commit
// rewrite about 1 MB, hashes about 230 KB. Two names of one day sharing a
// hash (odds about n²/2⁶⁵, 10⁻¹² for 5,000 chunks) would leave the later
// one unexported; the set is per day, so that is the whole exposure.
//
// In JSON it is one base64 string of the 8-byte big-endian hashes.
type ChunkSet []uint64

// ChunkHash is the hash a ChunkSet keeps for name.
func ChunkHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// Has reports whether name is in the set.
func (s ChunkSet) Has(name string) bool {
	_, ok := slices.BinarySearch(s, ChunkHash(name))
	return ok
}

// Add puts name in the set.
func (s *ChunkSet) Add(name string) {
	h := ChunkHash(name)
	i, ok := slices.BinarySearch(*s, h)
	if !ok {
		*s = slices.Insert(*s, i, h)
	}
}

// MarshalJSON writes the set as one base64 string.
func (s ChunkSet) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(s))
	for i, h := range s {
		binary.BigEndian.PutUint64(b[8*i:], h)
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads what MarshalJSON writes, refusing anything else: a
// length that is not a multiple of 8, hashes out of order or repeated.
func (s *ChunkSet) UnmarshalJSON(data []byte) error {
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return fmt.Errorf("done_set is not a string")
	}
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		return fmt.Errorf("done_set is not base64")
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("done_set holds %d bytes, not a multiple of 8", len(b))
	}
	out := make(ChunkSet, len(b)/8)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
		if i > 0 && out[i] <= out[i-1] {
			return fmt.Errorf("done_set is not sorted or repeats a hash")
		}
	}
	if len(out) == 0 {
		out = nil
	}
	*s = out
	return nil
}

// migrate brings a state of an older version to this one. Version 3 keeps
// a day's done chunks as hashes: the names of version 2 are hashed.
func (st *State) migrate() {
	if st.Export != nil {
		for _, d := range st.Export.Days {
			if d == nil || d.Done == nil {
				continue
			}
			for c, done := range d.Done {
				if done {
					d.DoneSet.Add(c)
				}
			}
			d.Done = nil
		}
	}
	st.Version = Version
}
