// Fluent Bit's Go proxy ABI that fluent-bit-go does not cover: which
// release's input struct FLBPluginInit got, the instance's remote context,
// and the calling thread. Layouts from Fluent Bit v5.1.1 src/proxy/go/go.h
// and include/fluent-bit/flb_plugin_proxy.h (the same from v4.1.0).

#include <pthread.h>
#include <stdint.h>

#include "_cgo_export.h"
#include "abi.h"

// struct flb_plugin_input_proxy_context (one per instance, calloc'ed by
// flb_input_new): Fluent Bit passes remote_context to the Ctx callbacks.
struct tfb_input_proxy_context {
    int coll_fd;
    void *remote_context;
    void *proxy;
};

// struct flbgo_input_plugin from v4.1.0 on; before, cb_collect was
// followed by cb_cleanup and cb_exit only.
struct tfb_input_plugin {
    char *name;
    void *api;
    void *i_ins;
    struct tfb_input_proxy_context *context;
    void *cb_init;
    void *cb_collect;
    void *cb_collect_ctx;
    void *cb_cleanup;
    void *cb_cleanup_ctx;
    void *cb_exit;
};

int tfb_ctx_abi(void *plugin)
{
    struct tfb_input_plugin *p = plugin;

    // proxy_go_input_register fills the slots with dlsym() results: the
    // third function slot holds FLBPluginInputCallbackCtx only where
    // Fluent Bit looked it up. Slot 4 checks the layout itself.
    return p != NULL && p->context != NULL &&
           p->cb_init == (void *) FLBPluginInit &&
           p->cb_collect_ctx == (void *) FLBPluginInputCallbackCtx;
}

void tfb_set_remote_context(void *plugin, uintptr_t id)
{
    struct tfb_input_plugin *p = plugin;

    // proxy_go_input_init set context to this instance's proxy context,
    // the one flb_proxy_input_cb_collect later passes to the callbacks.
    p->context->remote_context = (void *) id;
}

uint64_t tfb_thread_id(void)
{
    return (uint64_t) (uintptr_t) pthread_self();
}
