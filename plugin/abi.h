#ifndef TFB_ABI_H
#define TFB_ABI_H

#include <stdint.h>

int tfb_ctx_abi(void *plugin);
void tfb_set_remote_context(void *plugin, uintptr_t id);
uint64_t tfb_thread_id(void);
int tfb_small_pages(void);

#endif
