#ifndef TFB_ABI_H
#define TFB_ABI_H

#include <stddef.h>
#include <stdint.h>

int tfb_ctx_abi(void *plugin);
void tfb_set_remote_context(void *plugin, uintptr_t id);
uint64_t tfb_thread_id(void);
int tfb_small_pages(void);
int tfb_fix_mmap_threshold(int bytes);
int tfb_mapped_after_free(size_t big, size_t small);

#endif
