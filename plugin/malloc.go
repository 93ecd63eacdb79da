package main

/*
#include "abi.h"
*/
import "C"

import "strings"

// mmapThreshold is the glibc mmap threshold the plugin fixes for Fluent
// Bit's process (malloc.c says why): a callback's copies of 4 MiB or more
// go back to the system at free(); Fluent Bit's 2 MB chunks stay in its
// arenas as before.
const mmapThreshold = 4 << 20

// fixMmapThreshold fixes glibc's mmap threshold unless the operator chose
// one (MALLOC_MMAP_THRESHOLD_, or glibc.malloc.mmap_threshold in
// GLIBC_TUNABLES), and says whether it did.
func fixMmapThreshold(getenv func(string) string) bool {
	if getenv("MALLOC_MMAP_THRESHOLD_") != "" || strings.Contains(getenv("GLIBC_TUNABLES"), "glibc.malloc.mmap_threshold") {
		return false
	}
	return C.tfb_fix_mmap_threshold(mmapThreshold) == 1
}

// mappedAfterFree reports whether a block of small bytes malloc'd after
// one of big bytes was freed is mapped on its own (-1: malloc failed).
func mappedAfterFree(big, small int) int {
	return int(C.tfb_mapped_after_free(C.size_t(big), C.size_t(small)))
}
