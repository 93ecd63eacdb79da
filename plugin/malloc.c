// glibc's mmap threshold, fixed for the whole process.
//
// Fluent Bit copies each callback twice (its ring buffer, then a chunk)
// and frees the copies a moment later. glibc maps a block above its mmap
// threshold on its own and unmaps it at free(), but it raises the
// threshold to the size of every mapped block freed (up to 32 MiB,
// DEFAULT_MMAP_THRESHOLD_MAX): from the first callback on, the copies of
// an 18 MB callback come from an arena, which keeps them resident after
// free() beside the next fresh mapping, a callback's worth more at times
// (in the Fluent Bit stand-in, 131-149 MB at callback_bytes 18M; 152-184
// MB at 64M). A fixed threshold (M_MMAP_THRESHOLD also turns the
// adjustment off) keeps every copy of 4 MiB or more in a mapping of its
// own, gone at free(). It is set at registration, while Fluent Bit loads
// its plugins, before it starts its engine and input threads (mallopt is
// not meant to race malloc). Fluent Bit's own allocations are rarely that
// large; jemalloc builds (the official images) do not use glibc's malloc
// for them, and there this changes nothing.

#include <stddef.h>
#include <stdlib.h>

#include "abi.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

int tfb_fix_mmap_threshold(int bytes)
{
#ifdef __GLIBC__
    if (mallopt(M_MMAP_THRESHOLD, bytes) != 1) {
        return 0;
    }
    // What the arenas already hold free goes back to the system first.
    malloc_trim(0);
    return 1;
#else
    (void) bytes;
    return 0;
#endif
}

// mapped_blocks is how many blocks glibc holds in mappings of their own.
static size_t mapped_blocks(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().hblks;
#else
    return 0;
#endif
}

// tfb_mapped_after_free says whether a block of small bytes, allocated
// after one of big bytes was freed, gets a mapping of its own: what the
// dynamic threshold changes (the tests' probe).
int tfb_mapped_after_free(size_t big, size_t small)
{
    void *b = malloc(big);
    if (b == NULL) {
        return -1;
    }
    ((volatile char *) b)[0] = 1;
    free(b);
    size_t before = mapped_blocks();
    void *s = malloc(small);
    if (s == NULL) {
        return -1;
    }
    size_t during = mapped_blocks();
    free(s);
    return during > before;
}
