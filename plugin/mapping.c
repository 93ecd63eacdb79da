// The plugin's own read-only segments, mapped page by page.
//
// The .so is 38 MB of code, read-only data and dynamic relocations (most of
// it the teleport/api client), of which Fluent Bit runs a part; the 4 MB of
// relocations are read once, at load. All of it counted in the host's RSS:
// ld.so and the Go runtime's start touch much of it, and where the page
// cache holds the file in 2 MB folios (a file just written, on Linux 6.18
// with ext4) the kernel maps them whole with 2 MB page-table entries. An
// idle host measured 42 MB of .so (30 MB in 2 MB pages) for a file just
// built and 26 MB for one read back from disk; with this, 32 and 17 MB.
// Marking the read-only segments MADV_NOHUGEPAGE keeps them to 4 KB
// mappings, and MADV_DONTNEED drops what was mapped so far: the pages stay
// in the page cache and the next access maps them again. Writable segments,
// relocated in memory, are never touched.

#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi.h"

static int tfb_unmap_huge(struct dl_phdr_info *info, size_t size, void *self)
{
    uintptr_t at = (uintptr_t) self;
    uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    int mine = 0;
    int done = 0;
    (void) size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && at >= start && at < start + ph->p_memsz) {
            mine = 1;
        }
    }
    if (!mine) {
        return 0;
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) {
            continue;
        }
        // Whole pages inside the segment only: a page it shares with a
        // writable neighbour is that neighbour's.
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz) & ~(page - 1);
        if (end <= start) {
            continue;
        }
        if (madvise((void *) start, end - start, MADV_NOHUGEPAGE) == 0 &&
            madvise((void *) start, end - start, MADV_DONTNEED) == 0) {
            done++;
        }
    }
    return done + 1;
}

int tfb_small_pages(void)
{
    return dl_iterate_phdr(tfb_unmap_huge, (void *) tfb_small_pages) - 1;
}
