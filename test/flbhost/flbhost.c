//go:build ignore

// (the build constraint keeps the go command from compiling this file with
// cgo: it is built on its own with gcc, see below)

/*
 * flbhost - a Fluent Bit stand-in that hosts a Go input plugin
 * (built with -buildmode=c-shared) the way Fluent Bit v5.1.1's Go proxy
 * does (src/proxy/go/go.c, src/flb_plugin_proxy.c): same symbols, same
 * threads, same order, same cleanup-or-free rule, pause/resume on the
 * input thread, and the same shutdown sequence (pause twice, grace, pre-exit,
 * exit on the input thread, unregister on the main thread).
 *
 * Durability model (Fluent Bit v5.1.1: src/proxy/go/go.c,
 * src/flb_input_chunk.c append_to_ring_buffer and
 * flb_input_chunk_ring_buffer_collector, src/flb_engine.c rb_ms):
 * Go inputs are threaded, so what a callback returns is copied into the
 * input's ring buffer (1024 slots) and the cleanup callback runs at once;
 * the main thread moves ring entries into chunks every 250 ms
 * (FLB_DEV_RB_MS), earlier when 5% of the ring is used, and never for an
 * input paused for back-pressure (SIGUSR1). A chunk of an input with
 * `storage.type filesystem` is on disk: it survives SIGKILL and reaches the
 * outputs (after a restart, through storage_backlog), so flbhost appends it
 * to the --ingest file (a plain msgpack stream of concatenated events) when
 * it is chunked. A memory chunk reaches the --ingest file at the next flush
 * (every 1 s, like [SERVICE] Flush) and is lost by SIGKILL before that.
 * What is still in the ring at exit is discarded
 * (flb_input_chunk_ring_buffer_cleanup), and lost by SIGKILL.
 *
 * Chunks (src/flb_input_chunk.c input_chunk_append_raw, input_chunk_get;
 * src/flb_engine_dispatch.c): a ring entry, one whole callback, is one
 * append to the open chunk, never split; a chunk over 2,048,000 bytes
 * (FLB_INPUT_CHUNK_FS_MAX_SIZE) is locked and the next entry opens a new
 * one; every flush sends each chunk to the output as one unit. With
 * --out-max-bytes the output's receiver refuses a chunk over that size like
 * in_forward's Buffer_Max_Size: dropped, or with --out-ack retried forever.
 *
 * Build:
 *   gcc -O2 -Wall -Wextra -o build/flbhost test/flbhost/flbhost.c -ldl -lpthread
 *
 * Usage:
 *   flbhost -e /abs/plugin.so -i teleport -p key=value ... [-i teleport -p ...]
 *           [--ingest FILE] [--ingest-times FILE] [--interval-ms N]
 *           [--flush-ms N] [--out-max-bytes N] [--out-ack]
 *           [--grace S] [--no-cleanup] [--max-seconds S] [--quiet] [--verbose]
 *           [--abi 5.1|4.0] [--signal-input N] [--ingest-split]
 *
 * --abi 5.1 (default) is the Go proxy of Fluent Bit 4.1 and later, with the
 * Ctx callbacks and per-instance remote contexts; 4.0 the one of 3.2/4.0.
 * With several inputs a pause stops the collector of the input initialised
 * last (proxy_collector); --signal-input N pauses and resumes input N only;
 * --ingest-split writes each input's chunks to FILE.<input name>.
 *
 * --ingest-times FILE appends one line per ingested (non-empty) callback:
 *   "<unix_ns> <records> <bytes> <cpu_ns>": wall-clock time (CLOCK_REALTIME)
 * when the buffer was ingested, its valid records and bytes, and the CPU
 * time this process had used by then (CLOCK_PROCESS_CPUTIME_ID), for
 * benchmarks (throughput, CPU per event, write-to-ingest latency).
 *
 * Signals: SIGTERM/SIGINT -> clean shutdown like src/flb_engine.c: pause
 *          every input not paused for back-pressure, a 1 s shutdown tick
 *          (rings still collected), pause again, pre-exit and exit on the
 *          input thread; SIGUSR1 -> back-pressure pause of all inputs
 *          (flb_input_chunk_protect: the collector skips them);
 *          SIGUSR2 -> resume all inputs.
 * Exit codes: 0 clean shutdown, 1 configuration/registration/init error,
 *             2 hung (still running --max-seconds + grace + 10 s).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* ABI shared with fluent-bit-go (input/flb_plugin.h, input/flb_input.h)     */
/* ------------------------------------------------------------------------ */

#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

#define FLB_PROXY_INPUT_PLUGIN 1
#define FLB_PROXY_GOLANG 11

/* Fluent Bit's definition; fluent-bit-go only knows the first five fields. */
struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
};

/* Fluent Bit's struct flb_api; fluent-bit-go names the first field "_" and
 * uses only input_get_property. */
struct flb_api {
    char *(*output_get_property)(char *, void *);
    char *(*input_get_property)(char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void *reserved[8];
};

/* Fluent Bit's input proxy context (include/fluent-bit/flb_plugin_proxy.h),
 * one per instance (flb_input_new): a plugin's Init may store
 * remote_context, which Fluent Bit >= 4.1 passes to the Ctx callbacks. */
struct flb_plugin_input_proxy_context {
    int coll_fd;
    void *remote_context;
    void *proxy;
};

struct flb_input_instance; /* host-private, defined below */

/* Matches struct flbgo_input_plugin in Fluent Bit's go.h (first field is the
 * plugin name there) and in fluent-bit-go's flb_input.h; the callbacks as
 * proxy_go_input_register fills them: v4.1 to v5.1.1 layout. */
struct flbgo_input_plugin {
    char *name;
    struct flb_api *api;
    struct flb_input_instance *i_ins;
    struct flb_plugin_input_proxy_context *context;
    void *cb_init;
    void *cb_collect;
    void *cb_collect_ctx;
    void *cb_cleanup;
    void *cb_cleanup_ctx;
    void *cb_exit;
};

/* --abi 4.0: the layout of v3.2 and v4.0, without the Ctx callbacks */
struct flbgo_input_plugin_v40 {
    char *name;
    struct flb_api *api;
    struct flb_input_instance *i_ins;
    struct flb_plugin_input_proxy_context *context;
    void *cb_init;
    void *cb_collect;
    void *cb_cleanup;
    void *cb_exit;
};

typedef int (*fn_pre_register)(int);
typedef int (*fn_register)(struct flb_plugin_proxy_def *);
typedef int (*fn_init)(void *);
typedef int (*fn_collect)(void **, size_t *);
typedef int (*fn_cleanup)(void *);
typedef int (*fn_collect_ctx)(void *, void **, size_t *);
typedef int (*fn_cleanup_ctx)(void *, void *);
typedef int (*fn_pre_run)(int);
typedef void (*fn_void)(void);
typedef void (*fn_pre_exit)(int);
typedef int (*fn_exit)(void);
typedef void (*fn_unregister)(struct flb_plugin_proxy_def *);

static struct {
    fn_pre_register pre_register;
    fn_register reg;
    fn_init init;
    fn_collect collect;
    fn_cleanup cleanup;
    fn_collect_ctx collect_ctx; /* Fluent Bit >= 4.1 only */
    fn_cleanup_ctx cleanup_ctx;
    fn_pre_run pre_run;
    fn_void pause;
    fn_void resume;
    fn_pre_exit pre_exit;
    fn_exit exit;
    fn_unregister unregister;
} sym;

/* ------------------------------------------------------------------------ */
/* Host state                                                               */
/* ------------------------------------------------------------------------ */

struct prop {
    char *key;
    char *val; /* expanded value */
};

struct counters {
    uint64_t callbacks;      /* every call of FLBPluginInputCallback */
    uint64_t nonempty;       /* callbacks with len > 0 */
    uint64_t records;        /* valid events chunked (main thread) */
    uint64_t bytes;          /* bytes chunked (main thread) */
    uint64_t invalid;        /* invalid events seen (written raw, counted) */
    uint64_t errors;         /* callbacks returning -1 with len > 0 */
    uint64_t dropped;        /* records discarded: still in the ring at exit, or the ring was full */
    uint64_t dropped_bytes;  /* bytes of those */
    uint64_t cleanup_calls;  /* FLBPluginInputCleanupCallback calls */
    uint64_t free_calls;     /* free() calls (no cleanup symbol/--no-cleanup) */
};

/* one ring-buffer entry: a copy of what a callback returned */
struct rb_entry {
    void *buf;
    size_t len;
    uint64_t valid;
};
#define RB_SLOTS 1024                 /* FLB_INPUT_RING_BUFFER_SIZE / sizeof(void *) */
#define RB_WINDOW (RB_SLOTS * 5 / 100) /* FLB_INPUT_RING_BUFFER_WINDOW: 5% */
#define RB_RETRIES 10                 /* append_to_ring_buffer: 10 x 100 ms */

/* one chunk: the ring entries (whole callbacks) appended to it until it
 * was dispatched at a flush or locked over FS_MAX_SIZE */
struct hchunk {
    char *buf; /* memory storage: the data; filesystem: NULL (on --ingest already) */
    size_t len, cap;
    uint64_t records;
    uint64_t appends;
    int refused; /* refused by the receiver (with acks: retried at every flush) */
    struct hchunk *next;
};
#define FS_MAX_SIZE 2048000 /* FLB_INPUT_CHUNK_FS_MAX_SIZE: a chunk over it is locked */
#define CHUNK_SIZE_HINT 262144   /* FLB_INPUT_CHUNK_SIZE: a new chunk's buffer */
#define CHUNK_REALLOC_STEP 32768 /* cio_memfs realloc_size: eight pages */

struct flb_input_instance {
    int id;
    char name[128]; /* "teleport.0" or the alias */
    char plugin_name[64];
    struct prop *props; /* visible to the plugin */
    int nprops;
    int nreserved;      /* consumed by the "engine", invisible to the plugin */
    struct flb_plugin_input_proxy_context ctx;
    pthread_t tid;
    int thread_created;

    /* under g_mu */
    int init_done;
    int init_rc;
    int prerun_done;
    int finished;
    uint64_t req_seen;

    /* only touched by the input thread until it finished */
    int paused;
    struct counters c;

    /* under g_mu: paused for back-pressure (SIGUSR1): the ring collector
     * skips the input and shutdown does not pause it again */
    int bp_paused;
    /* under g_mu: its collector timer is stopped (see proxy_collector) */
    int coll_stopped;
    int storage_fs; /* storage.type filesystem */

    /* ring buffer: input thread writes, main thread reads (under rb_mu) */
    struct rb_entry *rb[RB_SLOTS];
    unsigned rb_head, rb_len;
    int rb_flush_pending;
    pthread_mutex_t rb_mu;

    int ingest_fd; /* --ingest-split */

    /* chunks (main thread only): the open one, and those locked or
     * refused by the receiver and retried, oldest first */
    struct hchunk *open_chunk;
    struct hchunk *chunks_head, *chunks_tail;
};

#define REQ_RING 256
enum { REQ_PAUSE = 1, REQ_RESUME = 2, REQ_SD_PAUSE = 3, REQ_EXIT = 4 };

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv;
static int g_started;    /* all Init ok: go ahead with PreRun + collector */
static int g_abort;      /* Init failed somewhere: stop without Exit */
static int g_shutdown;   /* shutdown began: SIGUSR1/2 ignored */
static int g_exit_phase; /* shutdown tick passed: the main thread no longer collects */
static uint64_t g_req_count;
static int g_req_ring[REQ_RING];

static struct flb_input_instance **g_ins;
static int g_nins;

static struct flb_api g_api;
static struct flbgo_input_plugin *g_plugin; /* one per loaded .so, like Fluent Bit */
/* proxy->instance: set at every instance's init, so the last one's */
static struct flb_input_instance *g_proxy_instance;
static int o_abi40;          /* --abi 4.0: no Ctx callbacks */
static int o_signal_input = -1; /* --signal-input N: SIGUSR1/2 for input N only */
static int o_ingest_split;   /* --ingest-split: FILE.<input name> per input */
static struct flb_plugin_proxy_def *g_def;

/* options */
static const char *o_plugin;
static const char *o_ingest;
static const char *o_ingest_times;
static int64_t o_interval_ns = 1000000000LL;
static int64_t o_grace_ns = 5000000000LL;
static int64_t o_max_ns;
static int o_no_cleanup;
static int o_quiet;
static int o_verbose;

static int g_ingest_fd = -1;
static int g_times_fd = -1;
static int64_t o_rb_ns = 250000000LL;     /* ring-buffer collector period (rb_ms) */
static int64_t o_flush_ns = 1000000000LL; /* memory chunks to the ingest file */
/* the output's receiver: a chunk over o_out_max bytes is refused (0 = no
 * limit); refused chunks are dropped, or with o_out_ack retried forever */
static int64_t o_out_max;
static int o_out_ack;
static struct {
    uint64_t chunks, max_bytes, max_appends;
    uint64_t dropped_chunks, dropped_records, retries, undelivered_records;
} g_out;
static int64_t g_next_rb_ns, g_next_flush_ns;

/* signals */
static int g_pipe[2] = {-1, -1};
static atomic_llong g_shutdown_ns; /* CLOCK_MONOTONIC when SIGTERM/INT came */
static atomic_int g_term_sig;
static atomic_int g_term_flag;

/* ------------------------------------------------------------------------ */
/* Utilities                                                                */
/* ------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

enum { L_ERROR, L_WARN, L_INFO, L_DEBUG };
static const char *lvl_names[] = {"error", " warn", " info", "debug"};

/* One write(2) per line: lines from several threads never interleave. */
static void vlogline(int lvl, int force, const char *fmt, va_list ap)
{
    char buf[4096];
    char ts[32];
    struct tm tm;
    time_t t;
    int n, m;

    if (!force) {
        if (lvl == L_INFO && o_quiet) {
            return;
        }
        if (lvl == L_DEBUG && !o_verbose) {
            return;
        }
    }
    t = time(NULL);
    localtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y/%m/%d %H:%M:%S", &tm);
    n = snprintf(buf, sizeof(buf), "[%s] [%s] ", ts, lvl_names[lvl]);
    m = vsnprintf(buf + n, sizeof(buf) - (size_t) n - 1, fmt, ap);
    if (m < 0) {
        m = 0;
    }
    if ((size_t) (n + m) > sizeof(buf) - 2) {
        n = (int) sizeof(buf) - 5;
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    else {
        n += m;
    }
    buf[n++] = '\n';
    (void) write_all(2, buf, (size_t) n);
}

__attribute__((format(printf, 2, 3)))
static void hlog(int lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogline(lvl, 0, fmt, ap);
    va_end(ap);
}

/* Lines tests wait for: printed even with --quiet. */
__attribute__((format(printf, 1, 2)))
static void log_always(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogline(L_INFO, 1, fmt, ap);
    va_end(ap);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p) {
        hlog(L_ERROR, "[flbhost] out of memory");
        exit(1);
    }
    return p;
}

static void *xrealloc(void *p, size_t sz)
{
    void *q = realloc(p, sz);
    if (!q) {
        hlog(L_ERROR, "[flbhost] out of memory");
        exit(1);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        hlog(L_ERROR, "[flbhost] out of memory");
        exit(1);
    }
    return p;
}

static void notify_main(char c)
{
    /* the pipe is non-blocking; a full pipe only means main has work queued */
    ssize_t r = write(g_pipe[1], &c, 1);
    (void) r;
}

static void ts_add(struct timespec *ts, int64_t abs_ns)
{
    ts->tv_sec = (time_t) (abs_ns / 1000000000LL);
    ts->tv_nsec = (long) (abs_ns % 1000000000LL);
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal";
    }
}

/* ------------------------------------------------------------------------ */
/* Signals: handlers only flag and write one byte to a self-pipe            */
/* ------------------------------------------------------------------------ */

static void on_signal(int sig)
{
    int saved = errno;
    char c = 0;

    switch (sig) {
    case SIGTERM:
    case SIGINT: {
        long long zero = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long v = (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
        if (atomic_compare_exchange_strong(&g_shutdown_ns, &zero, v)) {
            atomic_store(&g_term_sig, sig);
        }
        atomic_store(&g_term_flag, 1);
        c = 'T';
        break;
    }
    case SIGUSR1:
        c = 'P';
        break;
    case SIGUSR2:
        c = 'R';
        break;
    default:
        break;
    }
    if (c && g_pipe[1] >= 0) {
        ssize_t r = write(g_pipe[1], &c, 1);
        (void) r;
    }
    errno = saved;
}

static void setup_signals(void)
{
    struct sigaction sa;
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
    size_t i;

    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        hlog(L_ERROR, "[flbhost] pipe2: %s", strerror(errno));
        exit(1);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_ONSTACK: the handler may run on a Go thread (see os/signal docs) */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Properties                                                               */
/* ------------------------------------------------------------------------ */

/* Keys Fluent Bit consumes itself (flb_input_set_property): never visible
 * to a Go plugin through input_get_property. */
static int is_reserved_key(const char *k)
{
    static const char *exact[] = {
        "name", "tag", "log_level", "log_suppress_interval", "routable",
        "alias", "mem_buf_limit", "listen", "host", "port", "ipv6", "tls",
        "storage.type", "storage.pause_on_chunks_overlimit", "threaded",
        NULL};
    static const char *prefix[] = {
        "tls.", "net.", "thread.ring_buffer.", "rate_", "oauth2", NULL};
    int i;

    for (i = 0; exact[i]; i++) {
        if (strcasecmp(k, exact[i]) == 0) {
            return 1;
        }
    }
    for (i = 0; prefix[i]; i++) {
        if (strncasecmp(k, prefix[i], strlen(prefix[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ${VAR} expansion from the environment, like flb_env_var_translate():
 * an unset variable expands to "" (with a warning). */
static char *expand_env(const char *v)
{
    size_t cap = strlen(v) + 64, len = 0;
    char *out = xcalloc(1, cap);
    const char *p = v;

    while (*p) {
        const char *end;
        const char *val = NULL;
        size_t add;
        char name[256];

        if (p[0] == '$' && p[1] == '{' && (end = strchr(p + 2, '}')) != NULL &&
            (size_t) (end - (p + 2)) < sizeof(name)) {
            memcpy(name, p + 2, (size_t) (end - (p + 2)));
            name[end - (p + 2)] = '\0';
            val = getenv(name);
            if (!val) {
                hlog(L_WARN, "[env] variable ${%s} is used but not set", name);
                val = "";
            }
            p = end + 1;
        }
        else {
            name[0] = *p++;
            name[1] = '\0';
            val = name;
        }
        add = strlen(val);
        if (len + add + 1 > cap) {
            cap = (len + add + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + len, val, add);
        len += add;
        out[len] = '\0';
    }
    return out;
}

static char *host_input_get_property(char *key, void *ins)
{
    struct flb_input_instance *in = ins;
    int i;

    if (!key || !in) {
        hlog(L_WARN, "[flbhost] input_get_property called with key=%p ins=%p",
             (void *) key, ins);
        return NULL;
    }
    for (i = 0; i < in->nprops; i++) {
        if (strcasecmp(in->props[i].key, key) == 0) {
            hlog(L_DEBUG, "[input:%s:%s] property '%s' -> '%s'",
                 in->plugin_name, in->name, key, in->props[i].val);
            return in->props[i].val;
        }
    }
    hlog(L_DEBUG, "[input:%s:%s] property '%s' -> (not set)",
         in->plugin_name, in->name, key);
    return NULL;
}

static char *host_output_get_property(char *key, void *ins)
{
    (void) ins;
    hlog(L_ERROR, "[flbhost] output_get_property('%s') called by an input plugin",
         key ? key : "(null)");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Minimal msgpack validation: count events in a callback's buffer          */
/* ------------------------------------------------------------------------ */

enum { MP_OK = 0, MP_SHORT = 1, MP_BAD = 2 };

struct mp {
    const uint8_t *p;
    size_t n;
    size_t off;
};

static int mp_need(struct mp *m, size_t k)
{
    return m->n - m->off >= k;
}

static uint64_t mp_be(const uint8_t *p, int k)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < k; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* reads a length field of k bytes */
static int mp_len(struct mp *m, int k, uint64_t *out)
{
    if (!mp_need(m, (size_t) k)) {
        return MP_SHORT;
    }
    *out = mp_be(m->p + m->off, k);
    m->off += (size_t) k;
    return MP_OK;
}

static int mp_bytes(struct mp *m, uint64_t k)
{
    if (m->n - m->off < k) {
        return MP_SHORT;
    }
    m->off += (size_t) k;
    return MP_OK;
}

static int mp_skip(struct mp *m, int depth);

static int mp_skip_n(struct mp *m, uint64_t count, int depth)
{
    uint64_t i;
    for (i = 0; i < count; i++) {
        int r = mp_skip(m, depth + 1);
        if (r != MP_OK) {
            return r;
        }
    }
    return MP_OK;
}

static int mp_skip(struct mp *m, int depth)
{
    uint8_t c;
    uint64_t l;
    int r;

    if (depth > 1000) {
        return MP_BAD;
    }
    if (!mp_need(m, 1)) {
        return MP_SHORT;
    }
    c = m->p[m->off++];
    if (c <= 0x7f || c >= 0xe0) {
        return MP_OK; /* fixint */
    }
    if ((c & 0xf0) == 0x80) {
        return mp_skip_n(m, 2ULL * (c & 0x0f), depth);
    }
    if ((c & 0xf0) == 0x90) {
        return mp_skip_n(m, c & 0x0f, depth);
    }
    if ((c & 0xe0) == 0xa0) {
        return mp_bytes(m, c & 0x1f);
    }
    switch (c) {
    case 0xc0: case 0xc2: case 0xc3:
        return MP_OK;
    case 0xc4: case 0xd9:
        if ((r = mp_len(m, 1, &l)) != MP_OK) return r;
        return mp_bytes(m, l);
    case 0xc5: case 0xda:
        if ((r = mp_len(m, 2, &l)) != MP_OK) return r;
        return mp_bytes(m, l);
    case 0xc6: case 0xdb:
        if ((r = mp_len(m, 4, &l)) != MP_OK) return r;
        return mp_bytes(m, l);
    case 0xc7:
        if ((r = mp_len(m, 1, &l)) != MP_OK) return r;
        return mp_bytes(m, l + 1);
    case 0xc8:
        if ((r = mp_len(m, 2, &l)) != MP_OK) return r;
        return mp_bytes(m, l + 1);
    case 0xc9:
        if ((r = mp_len(m, 4, &l)) != MP_OK) return r;
        return mp_bytes(m, l + 1);
    case 0xca: return mp_bytes(m, 4);
    case 0xcb: return mp_bytes(m, 8);
    case 0xcc: case 0xd0: return mp_bytes(m, 1);
    case 0xcd: case 0xd1: return mp_bytes(m, 2);
    case 0xce: case 0xd2: return mp_bytes(m, 4);
    case 0xcf: case 0xd3: return mp_bytes(m, 8);
    case 0xd4: return mp_bytes(m, 2);
    case 0xd5: return mp_bytes(m, 3);
    case 0xd6: return mp_bytes(m, 5);
    case 0xd7: return mp_bytes(m, 9);
    case 0xd8: return mp_bytes(m, 17);
    case 0xdc:
        if ((r = mp_len(m, 2, &l)) != MP_OK) return r;
        return mp_skip_n(m, l, depth);
    case 0xdd:
        if ((r = mp_len(m, 4, &l)) != MP_OK) return r;
        return mp_skip_n(m, l, depth);
    case 0xde:
        if ((r = mp_len(m, 2, &l)) != MP_OK) return r;
        return mp_skip_n(m, 2 * l, depth);
    case 0xdf:
        if ((r = mp_len(m, 4, &l)) != MP_OK) return r;
        return mp_skip_n(m, 2 * l, depth);
    default:
        return MP_BAD; /* 0xc1 */
    }
}

/* The following run on an object already known to be well formed. */

static int mp_array_hdr(struct mp *m, uint64_t *n)
{
    uint8_t c = m->p[m->off];
    if ((c & 0xf0) == 0x90) {
        m->off++;
        *n = c & 0x0f;
        return 1;
    }
    if (c == 0xdc || c == 0xdd) {
        int k = c == 0xdc ? 2 : 4;
        m->off++;
        *n = mp_be(m->p + m->off, k);
        m->off += (size_t) k;
        return 1;
    }
    return 0;
}

static int mp_is_map(struct mp *m)
{
    uint8_t c = m->p[m->off];
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* A timestamp Fluent Bit accepts: EventTime (ext 0, 8 bytes), a
 * non-negative integer, or a float. */
static int mp_is_ts(struct mp *m)
{
    const uint8_t *p = m->p + m->off;
    uint8_t c = p[0];

    if (c <= 0x7f || (c >= 0xcc && c <= 0xcf) || c == 0xca || c == 0xcb) {
        return 1;
    }
    if (c == 0xd7) {
        return p[1] == 0x00;
    }
    if (c == 0xc7) {
        return p[1] == 8 && p[2] == 0x00;
    }
    if (c == 0xd0) {
        return (int8_t) p[1] >= 0;
    }
    if (c == 0xd1) {
        return (int16_t) mp_be(p + 1, 2) >= 0;
    }
    if (c == 0xd2) {
        return (int32_t) mp_be(p + 1, 4) >= 0;
    }
    if (c == 0xd3) {
        return (int64_t) mp_be(p + 1, 8) >= 0;
    }
    return 0;
}

/* [ts, {body}] or [[ts, {meta}], {body}] */
static int mp_event_ok(struct mp *m, const char **why)
{
    uint64_t n;

    if (!mp_array_hdr(m, &n) || n != 2) {
        *why = "event is not an array of 2";
        return 0;
    }
    if (mp_array_hdr(m, &n)) {
        if (n != 2) {
            *why = "event header is not [timestamp, metadata]";
            return 0;
        }
        if (!mp_is_ts(m)) {
            *why = "invalid timestamp";
            return 0;
        }
        (void) mp_skip(m, 0);
        if (!mp_is_map(m)) {
            *why = "metadata is not a map";
            return 0;
        }
        (void) mp_skip(m, 0);
    }
    else {
        if (!mp_is_ts(m)) {
            *why = "invalid timestamp";
            return 0;
        }
        (void) mp_skip(m, 0);
    }
    if (!mp_is_map(m)) {
        *why = "body is not a map";
        return 0;
    }
    return 1;
}

/* Counts valid and invalid events in buf. A malformed or truncated
 * remainder counts as one invalid event. */
static void validate_buffer(const void *buf, size_t len, uint64_t *valid,
                            uint64_t *invalid, const char **first_why)
{
    struct mp m = {buf, len, 0};

    *valid = 0;
    *invalid = 0;
    *first_why = NULL;
    while (m.off < m.n) {
        size_t start = m.off;
        int r = mp_skip(&m, 0);
        if (r != MP_OK) {
            (*invalid)++;
            if (!*first_why) {
                *first_why = r == MP_SHORT ? "truncated msgpack object"
                                           : "malformed msgpack";
            }
            return;
        }
        {
            struct mp ev = {m.p, m.off, start};
            const char *why = NULL;
            if (mp_event_ok(&ev, &why)) {
                (*valid)++;
            }
            else {
                (*invalid)++;
                if (!*first_why) {
                    *first_why = why;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Input thread                                                             */
/* ------------------------------------------------------------------------ */

static void do_pause(void)
{
    if (sym.pause) {
        sym.pause();
    }
}

/* flb_proxy_input_cb_pause/resume (src/flb_plugin_proxy.c) call the
 * plugin, then flb_input_collector_pause/resume(ctx->coll_fd,
 * ctx->proxy->instance): proxy->instance is shared by every instance of
 * the .so and was last set by the last instance's init, and collector ids
 * count per instance, so it is that instance's collector that stops or
 * starts, whichever input was paused. */
static void proxy_collector(struct flb_input_instance *self, int stop)
{
    struct flb_input_instance *t = g_proxy_instance;

    pthread_mutex_lock(&g_mu);
    if (!stop && !t->coll_stopped) {
        pthread_mutex_unlock(&g_mu);
        hlog(L_ERROR, "[input] cannot resume collector %s:0, already running",
             t->name);
        return;
    }
    t->coll_stopped = stop;
    if (t != self) {
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
}

/* process pause/resume/shutdown requests; called with g_mu held, returns
 * with it held; *do_exit is set at the exit request (nothing after it is
 * processed) */
static void process_requests(struct flb_input_instance *in, int64_t *next_due,
                             int *do_exit)
{
    while (in->req_seen < g_req_count) {
        int req, bp;
        if (g_req_count - in->req_seen > REQ_RING) {
            in->req_seen = g_req_count - REQ_RING;
        }
        req = g_req_ring[in->req_seen % REQ_RING];
        in->req_seen++;
        if ((req >> 8) != 0 && (req >> 8) - 1 != in->id) {
            continue; /* --signal-input: for another input */
        }
        req &= 0xff;
        if (req == REQ_EXIT) {
            *do_exit = 1;
            return;
        }
        bp = in->bp_paused;
        pthread_mutex_unlock(&g_mu);
        if (req == REQ_SD_PAUSE) {
            /* flb_input_pause_all -> flb_input_pause returns early for an
             * input paused for back-pressure (flb_input_buf_paused) */
            if (bp) {
                hlog(L_INFO, "[input:%s:%s] shutdown: paused for back-pressure, "
                     "FLBPluginInputPause not called again",
                     in->plugin_name, in->name);
            }
            else {
                hlog(L_INFO, "[input:%s:%s] shutdown: FLBPluginInputPause",
                     in->plugin_name, in->name);
                do_pause();
                in->paused = 1;
                proxy_collector(in, 1);
            }
        }
        else if (req == REQ_PAUSE) {
            if (in->paused) {
                hlog(L_INFO, "[input:%s:%s] paused (already paused, "
                     "FLBPluginInputPause not called again)",
                     in->plugin_name, in->name);
            }
            else {
                do_pause();
                in->paused = 1;
                proxy_collector(in, 1);
                hlog(L_INFO, "[input:%s:%s] paused", in->plugin_name, in->name);
            }
        }
        else {
            if (!in->paused) {
                hlog(L_INFO, "[input:%s:%s] resumed (was not paused, "
                     "FLBPluginInputResume not called)",
                     in->plugin_name, in->name);
            }
            else {
                if (sym.resume) {
                    sym.resume();
                }
                in->paused = 0;
                proxy_collector(in, 0);
                /* the collector is restarted: a fresh period */
                *next_due = now_ns() + o_interval_ns;
                hlog(L_INFO, "[input:%s:%s] resumed", in->plugin_name, in->name);
            }
        }
        pthread_mutex_lock(&g_mu);
    }
}

/* ring_write copies a callback's buffer into the input's ring buffer, like
 * append_to_ring_buffer: a full ring is retried 10 x 100 ms, then the data
 * is dropped with an error. The main thread is signalled once 5% of the
 * ring is used. */
static void ring_write(struct flb_input_instance *in, const void *data, size_t len,
                       uint64_t valid)
{
    struct rb_entry *e = xcalloc(1, sizeof(*e));
    int tries, signal_main = 0;

    e->buf = malloc(len);
    if (!e->buf) {
        hlog(L_ERROR, "[flbhost] out of memory");
        exit(1);
    }
    memcpy(e->buf, data, len);
    e->len = len;
    e->valid = valid;
    for (tries = 0; tries <= RB_RETRIES; tries++) {
        pthread_mutex_lock(&in->rb_mu);
        if (in->rb_len < RB_SLOTS) {
            in->rb[(in->rb_head + in->rb_len) % RB_SLOTS] = e;
            in->rb_len++;
            if (in->rb_len >= RB_WINDOW && !in->rb_flush_pending) {
                in->rb_flush_pending = 1;
                signal_main = 1;
            }
            pthread_mutex_unlock(&in->rb_mu);
            if (signal_main) {
                notify_main('B');
            }
            return;
        }
        pthread_mutex_unlock(&in->rb_mu);
        if (tries < RB_RETRIES) {
            usleep(100000);
        }
    }
    hlog(L_ERROR, "[input:%s:%s] could not enqueue records into the ring buffer",
         in->plugin_name, in->name);
    pthread_mutex_lock(&in->rb_mu);
    in->c.dropped += valid;
    in->c.dropped_bytes += len;
    pthread_mutex_unlock(&in->rb_mu);
    free(e->buf);
    free(e);
}

static void handle_callback(struct flb_input_instance *in)
{
    void *data = NULL;
    size_t len = 0;
    int rc;
    uint64_t valid, invalid;
    const char *why;

    if (sym.collect_ctx) {
        /* proxy_go_input_collect: the Ctx callback when the plugin has it */
        rc = sym.collect_ctx(in->ctx.remote_context, &data, &len);
    }
    else {
        rc = sym.collect(&data, &len);
    }
    in->c.callbacks++;

    if (len == 0) {
        hlog(L_DEBUG, "[input:%s:%s] callback #%" PRIu64 " rc=%d: no data",
             in->plugin_name, in->name, in->c.callbacks, rc);
        return;
    }
    if (rc == -1) {
        in->c.errors++;
        hlog(L_ERROR, "[input:%s:%s] callback returned -1 with %zu bytes: "
             "nothing ingested, buffer not released (leaked, like Fluent Bit)",
             in->plugin_name, in->name, len);
        return;
    }
    if (data == NULL) {
        /* Fluent Bit would read from NULL here and crash */
        in->c.errors++;
        hlog(L_ERROR, "[input:%s:%s] callback returned len=%zu with a NULL "
             "buffer (Fluent Bit would crash): ignored",
             in->plugin_name, in->name, len);
        return;
    }
    in->c.nonempty++;
    if (in->paused) {
        /* Fluent Bit takes them (the collector of a paused input may run,
         * see proxy_collector), but they wait in the ring while the input
         * is paused and are discarded at exit */
        hlog(L_WARN, "[input:%s:%s] callback handed over %zu bytes while "
             "paused", in->plugin_name, in->name, len);
    }

    validate_buffer(data, len, &valid, &invalid, &why);
    if (invalid) {
        in->c.invalid += invalid;
        hlog(L_WARN, "[input:%s:%s] %" PRIu64 " invalid event(s) in a "
             "%zu-byte buffer (%s): Fluent Bit would drop them silently",
             in->plugin_name, in->name, invalid, len, why);
    }
    /* flb_input_log_append -> the ring buffer; the cleanup right after */
    ring_write(in, data, len, valid);
    hlog(L_DEBUG, "[input:%s:%s] callback #%" PRIu64 " rc=%d: %zu bytes, "
         "%" PRIu64 " records into the ring buffer", in->plugin_name, in->name,
         in->c.callbacks, rc, len, valid);

    if ((sym.cleanup_ctx || sym.cleanup) && !o_no_cleanup) {
        int crc = sym.cleanup_ctx ? sym.cleanup_ctx(in->ctx.remote_context, data)
                                  : sym.cleanup(data);
        in->c.cleanup_calls++;
        if (crc == -1) {
            hlog(L_ERROR, "[input:%s:%s] cleanup callback returned -1",
                 in->plugin_name, in->name);
        }
    }
    else {
        free(data);
        in->c.free_calls++;
    }
}

static void *input_thread(void *arg)
{
    struct flb_input_instance *in = arg;
    int rc;
    int stopped = 0;
    int64_t next_due;

    /* Init, on this thread. One plugin struct per .so, like Fluent Bit:
     * i_ins is overwritten for every instance. */
    g_plugin->api = &g_api;
    g_plugin->i_ins = in;
    g_plugin->context = &in->ctx;
    g_proxy_instance = in; /* flb_proxy_input_cb_init: pc->proxy->instance = ins */
    hlog(L_DEBUG, "[input:%s:%s] calling FLBPluginInit", in->plugin_name, in->name);
    rc = sym.init(g_plugin);

    pthread_mutex_lock(&g_mu);
    in->init_rc = rc;
    in->init_done = 1;
    pthread_cond_broadcast(&g_cv);
    notify_main('I');
    while (!g_started && !g_abort) {
        pthread_cond_wait(&g_cv, &g_mu);
    }
    if (g_abort || rc <= 0) {
        in->finished = 1;
        pthread_mutex_unlock(&g_mu);
        notify_main('F');
        return NULL;
    }
    pthread_mutex_unlock(&g_mu);

    if (sym.pre_run) {
        int prc = sym.pre_run(0);
        hlog(L_DEBUG, "[input:%s:%s] FLBPluginInputPreRun(0) = %d",
             in->plugin_name, in->name, prc);
    }
    pthread_mutex_lock(&g_mu);
    in->prerun_done = 1;
    pthread_mutex_unlock(&g_mu);
    notify_main('I');

    /* collector: periodic timer with a fixed phase; missed ticks merge */
    next_due = now_ns() + o_interval_ns;
    for (;;) {
        int64_t now;
        int do_exit = 0;

        pthread_mutex_lock(&g_mu);
        for (;;) {
            process_requests(in, &next_due, &do_exit);
            if (do_exit) {
                break;
            }
            if (in->coll_stopped) {
                stopped = 1;
                pthread_cond_wait(&g_cv, &g_mu);
                continue;
            }
            if (stopped) {
                /* the collector was restarted: a fresh period */
                stopped = 0;
                next_due = now_ns() + o_interval_ns;
            }
            now = now_ns();
            if (now >= next_due) {
                break;
            }
            {
                struct timespec ts;
                ts_add(&ts, next_due);
                pthread_cond_timedwait(&g_cv, &g_mu, &ts);
            }
        }
        pthread_mutex_unlock(&g_mu);
        if (do_exit) {
            break;
        }

        /* consume the tick(s): next expiry is the first one after now */
        now = now_ns();
        next_due += o_interval_ns * ((now - next_due) / o_interval_ns + 1);
        handle_callback(in);
    }

    /* flb_input_thread_instance_exit: cb_exit runs on this thread after the
     * pauses queued before it; the Go proxy's cb_exit calls PreExit, then
     * Exit (src/flb_plugin_proxy.c flb_proxy_input_cb_exit) */
    if (sym.pre_exit) {
        hlog(L_INFO, "[input:%s:%s] FLBPluginInputPreExit(0)",
             in->plugin_name, in->name);
        sym.pre_exit(0);
    }
    if (sym.exit) {
        hlog(L_INFO, "[input:%s:%s] FLBPluginExit", in->plugin_name, in->name);
        rc = sym.exit();
        hlog(L_INFO, "[input:%s:%s] FLBPluginExit returned %d",
             in->plugin_name, in->name, rc);
    }

    pthread_mutex_lock(&g_mu);
    in->finished = 1;
    pthread_mutex_unlock(&g_mu);
    notify_main('F');
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Main thread                                                              */
/* ------------------------------------------------------------------------ */

static int64_t g_start_ns;
static int g_max_fired;

/* ingest_write appends chunked data to the ingest file (and a line to the
 * ingest-times file) */
static void ingest_write(struct flb_input_instance *in, const void *buf, size_t len)
{
    int fd = o_ingest_split ? in->ingest_fd : g_ingest_fd;
    if (fd >= 0 && write_all(fd, buf, len) != 0) {
        hlog(L_ERROR, "[flbhost] writing the ingest file failed: %s", strerror(errno));
    }
}

/* chunk_close ends the open chunk (dispatched, or locked over FS_MAX_SIZE):
 * it waits in the input's list for the next flush */
static void chunk_close(struct flb_input_instance *in)
{
    struct hchunk *ch = in->open_chunk;
    if (!ch) {
        return;
    }
    in->open_chunk = NULL;
    g_out.chunks++;
    if (ch->len > g_out.max_bytes) {
        g_out.max_bytes = ch->len;
    }
    if (ch->appends > g_out.max_appends) {
        g_out.max_appends = ch->appends;
    }
    if (in->chunks_tail) {
        in->chunks_tail->next = ch;
    }
    else {
        in->chunks_head = ch;
    }
    in->chunks_tail = ch;
}

/* chunk_append puts one ring entry into a chunk (input_chunk_append_raw):
 * the whole entry (one callback) goes into the open chunk, never split,
 * however large; a chunk over FS_MAX_SIZE after it is locked, so the next
 * entry opens a new one (input_chunk_get). Data is on disk at once for
 * filesystem storage, in memory until the chunk is delivered otherwise. */
static void chunk_append(struct flb_input_instance *in, struct rb_entry *e)
{
    struct hchunk *ch = in->open_chunk;
    in->c.records += e->valid;
    in->c.bytes += e->len;
    if (!ch) {
        ch = in->open_chunk = xcalloc(1, sizeof(*ch));
    }
    if (in->storage_fs) {
        ingest_write(in, e->buf, e->len);
    }
    else {
        /* chunkio's memfs (cio_memfs_open, cio_memfs_write): a new chunk
         * mallocs FLB_INPUT_CHUNK_SIZE, and grows by realloc in steps of
         * eight pages to what the append needs, not by doubling: which of
         * glibc's heaps and mappings the copies land in, and keep, follows */
        if (!ch->buf) {
            ch->cap = CHUNK_SIZE_HINT;
            ch->buf = xrealloc(NULL, ch->cap);
        }
        if (ch->len + e->len > ch->cap) {
            size_t cap = ch->cap + CHUNK_REALLOC_STEP;
            while (cap < ch->len + e->len) {
                cap += CHUNK_REALLOC_STEP;
            }
            ch->buf = xrealloc(ch->buf, cap);
            ch->cap = cap;
        }
        memcpy(ch->buf + ch->len, e->buf, e->len);
    }
    ch->len += e->len;
    ch->records += e->valid;
    ch->appends++;
    if (ch->len > FS_MAX_SIZE) {
        chunk_close(in); /* cio_chunk_lock */
    }
    if (g_times_fd >= 0) {
        struct timespec rt, cpu;
        char line[128];
        int n;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
        n = snprintf(line, sizeof(line), "%lld %" PRIu64 " %zu %lld\n",
                     (long long) rt.tv_sec * 1000000000LL + rt.tv_nsec, e->valid, e->len,
                     (long long) cpu.tv_sec * 1000000000LL + cpu.tv_nsec);
        if (write_all(g_times_fd, line, (size_t) n) != 0) {
            hlog(L_ERROR, "[flbhost] writing the ingest-times file failed: %s",
                 strerror(errno));
        }
    }
}

/* rb_collect is flb_input_chunk_ring_buffer_collector: every input's ring
 * into chunks, skipping inputs paused for back-pressure */
static void rb_collect(void)
{
    int i;
    for (i = 0; i < g_nins; i++) {
        struct flb_input_instance *in = g_ins[i];
        int paused;
        pthread_mutex_lock(&g_mu);
        paused = in->bp_paused;
        pthread_mutex_unlock(&g_mu);
        for (;;) {
            struct rb_entry *e = NULL;
            if (paused) {
                break;
            }
            pthread_mutex_lock(&in->rb_mu);
            if (in->rb_len > 0) {
                e = in->rb[in->rb_head];
                in->rb_head = (in->rb_head + 1) % RB_SLOTS;
                in->rb_len--;
            }
            pthread_mutex_unlock(&in->rb_mu);
            if (!e) {
                break;
            }
            chunk_append(in, e);
            free(e->buf);
            free(e);
        }
        pthread_mutex_lock(&in->rb_mu);
        in->rb_flush_pending = 0;
        pthread_mutex_unlock(&in->rb_mu);
    }
}

/* chunk_deliver sends one chunk to the output as one unit (out_forward:
 * one message). It returns 0 when the chunk stays for a retry. */
static int chunk_deliver(struct flb_input_instance *in, struct hchunk *ch)
{
    if (o_out_max > 0 && (int64_t) ch->len > o_out_max) {
        /* in_forward: "incoming data exceed limit", the connection closed */
        if (!o_out_ack) {
            g_out.dropped_chunks++;
            g_out.dropped_records += ch->records;
            hlog(L_WARN, "[output:forward] the receiver refused a chunk of %zu bytes "
                 "(%" PRIu64 " records, %" PRIu64 " callbacks): over its limit of %"
                 PRId64 " bytes; without acknowledgements the records are lost",
                 ch->len, ch->records, ch->appends, o_out_max);
            return 1;
        }
        g_out.retries++;
        if (!ch->refused) {
            hlog(L_WARN, "[output:forward] the receiver refused a chunk of %zu bytes "
                 "(%" PRIu64 " records, %" PRIu64 " callbacks): over its limit of %"
                 PRId64 " bytes; no acknowledgement, retried at every flush",
                 ch->len, ch->records, ch->appends, o_out_max);
        }
        ch->refused = 1;
        return 0;
    }
    if (!in->storage_fs) {
        ingest_write(in, ch->buf, ch->len);
    }
    hlog(L_DEBUG, "[flbhost] chunk of %zu bytes (%" PRIu64 " records, %" PRIu64
         " callbacks) delivered", ch->len, ch->records, ch->appends);
    return 1;
}

/* flush_memory_chunks is the engine's flush (flb_engine_dispatch): every
 * chunk, the open one included, goes to the output; memory chunks reach
 * the ingest file then */
static void flush_memory_chunks(void)
{
    int i;
    for (i = 0; i < g_nins; i++) {
        struct flb_input_instance *in = g_ins[i];
        struct hchunk **pp = &in->chunks_head;
        chunk_close(in);
        in->chunks_tail = NULL;
        while (*pp) {
            struct hchunk *ch = *pp;
            if (chunk_deliver(in, ch)) {
                *pp = ch->next;
                free(ch->buf);
                free(ch);
            }
            else {
                in->chunks_tail = ch;
                pp = &ch->next;
            }
        }
    }
}

/* chunks_free ends the chunks still held at exit: refused ones were never
 * delivered */
static void chunks_free(struct flb_input_instance *in)
{
    struct hchunk *ch = in->chunks_head;
    uint64_t records = 0;
    while (ch) {
        struct hchunk *next = ch->next;
        records += ch->records;
        free(ch->buf);
        free(ch);
        ch = next;
    }
    in->chunks_head = in->chunks_tail = NULL;
    if (in->open_chunk) {
        free(in->open_chunk->buf);
        free(in->open_chunk);
        in->open_chunk = NULL;
    }
    if (records > 0) {
        g_out.undelivered_records += records;
        hlog(L_WARN, "[output:forward] %" PRIu64 " records in chunks the receiver "
             "refused were never delivered", records);
    }
}

/* ring_discard is flb_input_chunk_ring_buffer_cleanup at input exit: what
 * was never collected into a chunk is lost */
static void ring_discard(void)
{
    int i;
    for (i = 0; i < g_nins; i++) {
        struct flb_input_instance *in = g_ins[i];
        uint64_t records = 0, bytes = 0;
        while (in->rb_len > 0) {
            struct rb_entry *e = in->rb[in->rb_head];
            in->rb_head = (in->rb_head + 1) % RB_SLOTS;
            in->rb_len--;
            records += e->valid;
            bytes += e->len;
            free(e->buf);
            free(e);
        }
        if (bytes > 0) {
            in->c.dropped += records;
            in->c.dropped_bytes += bytes;
            hlog(L_WARN, "[input:%s:%s] %" PRIu64 " records (%" PRIu64 " bytes) "
                 "still in the ring buffer at exit, never put into a chunk: "
                 "discarded", in->plugin_name, in->name, records, bytes);
        }
    }
}

/* timers runs the main thread's ring-buffer collector and memory flush
 * when due (not once the shutdown tick has passed: Fluent Bit's main
 * thread is then stopping the inputs) */
static void timers(void)
{
    int64_t now = now_ns();
    if (g_exit_phase || !g_started) {
        return;
    }
    if (now >= g_next_rb_ns) {
        rb_collect();
        g_next_rb_ns += o_rb_ns * ((now - g_next_rb_ns) / o_rb_ns + 1);
    }
    if (now >= g_next_flush_ns) {
        flush_memory_chunks();
        g_next_flush_ns += o_flush_ns * ((now - g_next_flush_ns) / o_flush_ns + 1);
    }
}

/* Waits up to deadline_ns (absolute, 0 = 1 s) for events on the self-pipe
 * and handles them. Returns after at least one wake-up. */
static void main_wait(int64_t deadline_ns)
{
    struct pollfd pfd = {g_pipe[0], POLLIN, 0};
    int64_t now = now_ns();
    int64_t wait_ns = deadline_ns ? deadline_ns - now : 1000000000LL;
    int timeout_ms;
    char buf[64];
    ssize_t n, i;

    if (wait_ns > 200000000LL) {
        wait_ns = 200000000LL; /* re-check flags regularly */
    }
    if (g_started && !g_exit_phase) {
        int64_t t = (g_next_rb_ns < g_next_flush_ns ? g_next_rb_ns : g_next_flush_ns) - now;
        if (t < wait_ns) {
            wait_ns = t;
        }
    }
    if (wait_ns < 0) {
        wait_ns = 0;
    }
    timeout_ms = (int) ((wait_ns + 999999) / 1000000);

    /* safety nets */
    if (o_max_ns > 0) {
        if (!g_max_fired && now - g_start_ns >= o_max_ns) {
            g_max_fired = 1;
            hlog(L_WARN, "[flbhost] --max-seconds reached: sending SIGTERM to self");
            kill(getpid(), SIGTERM);
        }
        if (now - g_start_ns >= o_max_ns + o_grace_ns + 10000000000LL) {
            hlog(L_ERROR, "[flbhost] still running %.1fs after --max-seconds: "
                 "the plugin is hung, exiting with code 2",
                 (double) (now - g_start_ns - o_max_ns) / 1e9);
            _exit(2);
        }
    }

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        timers();
        return;
    }
    n = read(g_pipe[0], buf, sizeof(buf));
    for (i = 0; i < n; i++) {
        if (buf[i] == 'B' && g_started && !g_exit_phase) {
            rb_collect(); /* the ring is 5% full */
        }
        if (buf[i] == 'P' || buf[i] == 'R') {
            int j;
            pthread_mutex_lock(&g_mu);
            if (g_shutdown) {
                pthread_mutex_unlock(&g_mu);
                hlog(L_INFO, "[flbhost] %s ignored: shutting down",
                     buf[i] == 'P' ? "SIGUSR1 (pause)" : "SIGUSR2 (resume)");
                continue;
            }
            /* flb_input_chunk_protect: the input is marked paused at once,
             * the plugin's Pause runs later on its thread */
            for (j = 0; j < g_nins; j++) {
                if (o_signal_input < 0 || o_signal_input == j) {
                    g_ins[j]->bp_paused = buf[i] == 'P';
                }
            }
            g_req_ring[g_req_count % REQ_RING] =
                (buf[i] == 'P' ? REQ_PAUSE : REQ_RESUME) | ((o_signal_input + 1) << 8);
            g_req_count++;
            pthread_cond_broadcast(&g_cv);
            pthread_mutex_unlock(&g_mu);
            hlog(L_INFO, "[flbhost] %s: %s requested",
                 buf[i] == 'P' ? "SIGUSR1" : "SIGUSR2",
                 buf[i] == 'P' ? "pause" : "resume");
        }
    }
    timers();
}

static int all_done(int what)
{
    int i, ok = 1;
    pthread_mutex_lock(&g_mu);
    for (i = 0; i < g_nins; i++) {
        struct flb_input_instance *in = g_ins[i];
        if (!in->thread_created) {
            continue;
        }
        if ((what == 'I' && !in->prerun_done) || (what == 'F' && !in->finished)) {
            ok = 0;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

/* request queues a request to every input thread */
static void request(int req)
{
    pthread_mutex_lock(&g_mu);
    g_req_ring[g_req_count % REQ_RING] = req;
    g_req_count++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* start_shutdown is flb_engine_stop_ingestion: pause every input */
static void start_shutdown(void)
{
    pthread_mutex_lock(&g_mu);
    g_shutdown = 1;
    pthread_mutex_unlock(&g_mu);
    request(REQ_SD_PAUSE);
}

static void join_all(void)
{
    int i;
    for (i = 0; i < g_nins; i++) {
        if (g_ins[i]->thread_created) {
            pthread_join(g_ins[i]->tid, NULL);
            g_ins[i]->thread_created = 0;
        }
    }
}

static void free_all(void)
{
    int i, j;
    for (i = 0; i < g_nins; i++) {
        for (j = 0; j < g_ins[i]->nprops; j++) {
            free(g_ins[i]->props[j].key);
            free(g_ins[i]->props[j].val);
        }
        free(g_ins[i]->props);
        chunks_free(g_ins[i]);
        if (g_ins[i]->ingest_fd >= 0) {
            close(g_ins[i]->ingest_fd);
        }
        pthread_mutex_destroy(&g_ins[i]->rb_mu);
        free(g_ins[i]);
    }
    free(g_ins);
    g_ins = NULL;
    g_nins = 0;
    if (g_plugin) {
        free(g_plugin->name);
        free(g_plugin);
        g_plugin = NULL;
    }
    free(g_def);
    g_def = NULL;
    if (g_ingest_fd >= 0) {
        close(g_ingest_fd);
        g_ingest_fd = -1;
    }
    if (g_times_fd >= 0) {
        close(g_times_fd);
        g_times_fd = -1;
    }
}

static void unregister(void)
{
    if (sym.unregister && g_def) {
        hlog(L_INFO, "[flbhost] FLBPluginUnregister");
        sym.unregister(g_def);
    }
}

static void print_summary(void)
{
    struct counters t;
    int i;

    memset(&t, 0, sizeof(t));
    for (i = 0; i < g_nins; i++) {
        struct counters *c = &g_ins[i]->c;
        t.callbacks += c->callbacks;
        t.nonempty += c->nonempty;
        t.records += c->records;
        t.bytes += c->bytes;
        t.invalid += c->invalid;
        t.errors += c->errors;
        t.dropped += c->dropped;
        t.dropped_bytes += c->dropped_bytes;
        t.cleanup_calls += c->cleanup_calls;
        t.free_calls += c->free_calls;
    }
    log_always("[flbhost] callbacks=%" PRIu64 " records=%" PRIu64 " bytes=%" PRIu64
               " dropped_after_shutdown=%" PRIu64 " nonempty=%" PRIu64
               " invalid=%" PRIu64 " errors=%" PRIu64 " dropped_bytes=%" PRIu64
               " cleanup_calls=%" PRIu64 " free_calls=%" PRIu64,
               t.callbacks, t.records, t.bytes, t.dropped, t.nonempty, t.invalid,
               t.errors, t.dropped_bytes, t.cleanup_calls, t.free_calls);
    log_always("[flbhost] chunks=%" PRIu64 " max_chunk_bytes=%" PRIu64
               " max_chunk_callbacks=%" PRIu64 " out_dropped_chunks=%" PRIu64
               " out_dropped_records=%" PRIu64 " out_retries=%" PRIu64,
               g_out.chunks, g_out.max_bytes, g_out.max_appends, g_out.dropped_chunks,
               g_out.dropped_records, g_out.retries);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: flbhost -e /abs/plugin.so -i NAME [-p key=value ...] "
        "[-i NAME -p ...] [options]\n"
        "  -e, --plugin PATH      Go input plugin (c-shared object) to load\n"
        "  -i, --input NAME       create an input instance of plugin NAME\n"
        "  -p, --prop KEY=VALUE   property of the last -i (${VAR} expanded)\n"
        "  -t, --tag TAG          tag of the last -i (consumed by the host)\n"
        "      --ingest FILE      append every ingested buffer to FILE\n"
        "      --ingest-times FILE  append \"<unix_ns> <records> <bytes> <cpu_ns>\"\n"
        "                         per ingested buffer to FILE\n"
        "      --interval-ms N    collector period (default 1000)\n"
        "      --grace S          Fluent Bit's Grace (default 5): the most a shutdown\n"
        "                         waits for a running FLBPluginInit\n"
        "      --rb-ms N          ring-buffer collector period (default 250, or\n"
        "                         FLB_DEV_RB_MS like Fluent Bit)\n"
        "      --no-cleanup       ignore FLBPluginInputCleanupCallback, free()\n"
        "      --flush-ms N       the engine's flush: chunks to the output (default 1000)\n"
        "      --out-max-bytes N  the output's receiver refuses a chunk over N bytes\n"
        "                         (in_forward's Buffer_Max_Size; memory storage only)\n"
        "      --out-ack          a refused chunk is retried forever (Require_ack_response,\n"
        "                         Retry_Limit no_limits) instead of dropped\n"
        "      --max-seconds S    SIGTERM self after S seconds (0 = off)\n"
        "      --abi VERSION      5.1 (default: FLBPluginInputCallbackCtx and\n"
        "                         FLBPluginInputCleanupCallbackCtx, v4.1 on) or\n"
        "                         4.0 (v3.2/v4.0: no Ctx callbacks)\n"
        "      --signal-input N   SIGUSR1/SIGUSR2 pause/resume input N only\n"
        "                         (0-based, -i order; default: every input)\n"
        "      --ingest-split     write input N's chunks to FILE.<input name>\n"
        "  -q, --quiet            only warnings, errors, ready and summary\n"
        "  -v, --verbose          debug lines (one per callback)\n"
        "signals: SIGTERM/SIGINT shutdown, SIGUSR1 pause, SIGUSR2 resume\n");
}

/* parse_ms reads a whole number of milliseconds (1 to 3,600,000) into ns */
static int parse_ms(const char *s, int64_t *out_ns)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v <= 0 || v > 3600000) {
        return -1;
    }
    *out_ns = (int64_t) v * 1000000LL;
    return 0;
}

static int parse_seconds(const char *s, int64_t *out)
{
    char *end;
    double d;
    errno = 0;
    d = strtod(s, &end);
    if (errno || end == s || *end != '\0' || d < 0 || d > 1e7) {
        return -1;
    }
    *out = (int64_t) (d * 1e9 + 0.5);
    return 0;
}

static struct flb_input_instance *new_instance(const char *name)
{
    struct flb_input_instance *in = xcalloc(1, sizeof(*in));
    in->id = g_nins;
    snprintf(in->plugin_name, sizeof(in->plugin_name), "%s", name);
    snprintf(in->name, sizeof(in->name), "%s.%d", name, in->id);
    in->ctx.coll_fd = -1;
    in->ingest_fd = -1;
    pthread_mutex_init(&in->rb_mu, NULL);
    g_ins = xrealloc(g_ins, sizeof(*g_ins) * (size_t) (g_nins + 1));
    g_ins[g_nins++] = in;
    return in;
}

static int add_prop(struct flb_input_instance *in, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char *key, *val;
    size_t klen;

    if (!eq || eq == kv) {
        hlog(L_ERROR, "[config] invalid property '%s': expected key=value", kv);
        return -1;
    }
    klen = (size_t) (eq - kv);
    key = xcalloc(1, klen + 1);
    memcpy(key, kv, klen);
    /* trim spaces around the key like the config reader does */
    while (klen > 0 && isspace((unsigned char) key[klen - 1])) {
        key[--klen] = '\0';
    }
    val = expand_env(eq + 1);

    if (is_reserved_key(key)) {
        in->nreserved++;
        if (strcasecmp(key, "alias") == 0 && val[0]) {
            snprintf(in->name, sizeof(in->name), "%s", val);
        }
        if (strcasecmp(key, "storage.type") == 0) {
            in->storage_fs = strcasecmp(val, "filesystem") == 0;
        }
        hlog(L_DEBUG, "[input:%s:%s] property '%s' is consumed by Fluent Bit "
             "(not visible to the plugin)", in->plugin_name, in->name, key);
        free(key);
        free(val);
        return 0;
    }
    in->props = xrealloc(in->props, sizeof(*in->props) * (size_t) (in->nprops + 1));
    in->props[in->nprops].key = key;
    in->props[in->nprops].val = val;
    in->nprops++;
    return 0;
}

static void *load_sym(void *h, const char *name)
{
    void *s;
    dlerror();
    s = dlsym(h, name);
    if (dlerror() != NULL) {
        return NULL;
    }
    return s;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"plugin", required_argument, NULL, 'e'},
        {"input", required_argument, NULL, 'i'},
        {"prop", required_argument, NULL, 'p'},
        {"tag", required_argument, NULL, 't'},
        {"ingest", required_argument, NULL, 1},
        {"ingest-times", required_argument, NULL, 6},
        {"interval-ms", required_argument, NULL, 2},
        {"grace", required_argument, NULL, 3},
        {"no-cleanup", no_argument, NULL, 4},
        {"max-seconds", required_argument, NULL, 5},
        {"rb-ms", required_argument, NULL, 7},
        {"flush-ms", required_argument, NULL, 8},
        {"out-max-bytes", required_argument, NULL, 9},
        {"out-ack", no_argument, NULL, 10},
        {"abi", required_argument, NULL, 11},
        {"signal-input", required_argument, NULL, 12},
        {"ingest-split", no_argument, NULL, 13},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct flb_input_instance *cur = NULL;
    pthread_condattr_t ca;
    sigset_t block, old;
    void *dso;
    const char *base;
    int opt, i, rc;
    int init_failed = 0;

    g_start_ns = now_ns();
    if (getenv("FLB_DEV_RB_MS") &&
        parse_ms(getenv("FLB_DEV_RB_MS"), &o_rb_ns) != 0) {
        /* the same development knob as src/flb_engine.c */
        hlog(L_ERROR, "[flbhost] invalid FLB_DEV_RB_MS '%s'", getenv("FLB_DEV_RB_MS"));
        return 1;
    }

    while ((opt = getopt_long(argc, argv, "e:i:p:t:qvh", lopts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            if (o_plugin) {
                hlog(L_ERROR, "[flbhost] only one -e plugin is supported");
                return 1;
            }
            o_plugin = optarg;
            break;
        case 'i':
            cur = new_instance(optarg);
            break;
        case 'p':
        case 't':
            if (!cur) {
                hlog(L_ERROR, "[config] -%c '%s' must follow an input (-i)", opt,
                     optarg);
                return 1;
            }
            if (opt == 't') {
                cur->nreserved++;
                break;
            }
            if (add_prop(cur, optarg) != 0) {
                return 1;
            }
            break;
        case 1:
            o_ingest = optarg;
            break;
        case 6:
            o_ingest_times = optarg;
            break;
        case 2:
            if (parse_ms(optarg, &o_interval_ns) != 0) {
                hlog(L_ERROR, "[flbhost] invalid --interval-ms '%s'", optarg);
                return 1;
            }
            break;
        case 3:
            if (parse_seconds(optarg, &o_grace_ns) != 0) {
                hlog(L_ERROR, "[flbhost] invalid --grace '%s'", optarg);
                return 1;
            }
            break;
        case 4:
            o_no_cleanup = 1;
            break;
        case 7:
            if (parse_ms(optarg, &o_rb_ns) != 0) {
                hlog(L_ERROR, "[flbhost] invalid --rb-ms '%s'", optarg);
                return 1;
            }
            break;
        case 8:
            if (parse_ms(optarg, &o_flush_ns) != 0) {
                hlog(L_ERROR, "[flbhost] invalid --flush-ms '%s'", optarg);
                return 1;
            }
            break;
        case 9: {
            char *end = NULL;
            errno = 0;
            o_out_max = strtoll(optarg, &end, 10);
            if (errno || !end || *end || o_out_max < 1) {
                hlog(L_ERROR, "[flbhost] invalid --out-max-bytes '%s'", optarg);
                return 1;
            }
            break;
        }
        case 10:
            o_out_ack = 1;
            break;
        case 11:
            if (strcmp(optarg, "4.0") == 0 || strcmp(optarg, "3.2") == 0) {
                o_abi40 = 1;
            }
            else if (strcmp(optarg, "5.1") != 0 && strcmp(optarg, "4.1") != 0) {
                hlog(L_ERROR, "[flbhost] invalid --abi '%s' (5.1, 4.1, 4.0 or 3.2)", optarg);
                return 1;
            }
            break;
        case 12:
            o_signal_input = atoi(optarg);
            break;
        case 13:
            o_ingest_split = 1;
            break;
        case 5:
            if (parse_seconds(optarg, &o_max_ns) != 0) {
                hlog(L_ERROR, "[flbhost] invalid --max-seconds '%s'", optarg);
                return 1;
            }
            break;
        case 'q':
            o_quiet = 1;
            break;
        case 'v':
            o_verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        hlog(L_ERROR, "[flbhost] unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (!o_plugin || g_nins == 0) {
        hlog(L_ERROR, "[flbhost] need -e PLUGIN and at least one -i NAME");
        usage(stderr);
        free_all();
        return 1;
    }
    for (i = 0; o_out_max > 0 && i < g_nins; i++) {
        if (g_ins[i]->storage_fs) {
            /* filesystem chunks reach --ingest when they are made */
            hlog(L_ERROR, "[flbhost] --out-max-bytes models a receiver for memory "
                 "storage only: drop storage.type filesystem");
            free_all();
            return 1;
        }
    }

    setup_signals();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cv, &ca);
    pthread_condattr_destroy(&ca);

    g_api.output_get_property = host_output_get_property;
    g_api.input_get_property = host_input_get_property;

    for (i = 0; o_ingest && o_ingest_split && i < g_nins; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s.%s", o_ingest, g_ins[i]->name);
        g_ins[i]->ingest_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_ins[i]->ingest_fd < 0) {
            hlog(L_ERROR, "[flbhost] cannot open ingest file %s: %s", path,
                 strerror(errno));
            free_all();
            return 1;
        }
    }
    if (o_ingest && !o_ingest_split) {
        g_ingest_fd = open(o_ingest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_ingest_fd < 0) {
            hlog(L_ERROR, "[flbhost] cannot open ingest file %s: %s", o_ingest,
                 strerror(errno));
            free_all();
            return 1;
        }
    }
    if (o_ingest_times) {
        g_times_fd = open(o_ingest_times, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_times_fd < 0) {
            hlog(L_ERROR, "[flbhost] cannot open ingest-times file %s: %s",
                 o_ingest_times, strerror(errno));
            free_all();
            return 1;
        }
    }

    /* ---- load and register (main thread) ---- */
    base = strrchr(o_plugin, '/');
    base = base ? base + 1 : o_plugin;
    if (strncmp(base, "flb-", 4) == 0) {
        hlog(L_ERROR, "[plugin] invalid plugin type: '%s' (the flb- prefix marks "
             "a C plugin)", o_plugin);
        free_all();
        return 1;
    }
    dso = dlopen(o_plugin, RTLD_LAZY);
    if (!dso) {
        hlog(L_ERROR, "[plugin] dlopen() %s", dlerror());
        free_all();
        return 1;
    }
    sym.pre_register = (fn_pre_register) load_sym(dso, "FLBPluginPreRegister");
    sym.reg = (fn_register) load_sym(dso, "FLBPluginRegister");
    sym.init = (fn_init) load_sym(dso, "FLBPluginInit");
    sym.collect = (fn_collect) load_sym(dso, "FLBPluginInputCallback");
    sym.cleanup = (fn_cleanup) load_sym(dso, "FLBPluginInputCleanupCallback");
    if (!o_abi40) {
        /* proxy_go_input_register, v4.1 on */
        sym.collect_ctx = (fn_collect_ctx) load_sym(dso, "FLBPluginInputCallbackCtx");
        sym.cleanup_ctx = (fn_cleanup_ctx) load_sym(dso, "FLBPluginInputCleanupCallbackCtx");
    }
    sym.pre_run = (fn_pre_run) load_sym(dso, "FLBPluginInputPreRun");
    sym.pause = (fn_void) load_sym(dso, "FLBPluginInputPause");
    sym.resume = (fn_void) load_sym(dso, "FLBPluginInputResume");
    sym.pre_exit = (fn_pre_exit) load_sym(dso, "FLBPluginInputPreExit");
    sym.exit = (fn_exit) load_sym(dso, "FLBPluginExit");
    sym.unregister = (fn_unregister) load_sym(dso, "FLBPluginUnregister");

    hlog(L_INFO, "[flbhost] loaded %s (ABI %s; symbols: PreRegister=%s Register=%s "
         "Init=%s InputCallback=%s InputCleanupCallback=%s InputCallbackCtx=%s "
         "InputCleanupCallbackCtx=%s InputPreRun=%s "
         "InputPause=%s InputResume=%s InputPreExit=%s Exit=%s Unregister=%s)",
         o_plugin, o_abi40 ? "4.0" : "5.1", sym.pre_register ? "yes" : "no", sym.reg ? "yes" : "no",
         sym.init ? "yes" : "no", sym.collect ? "yes" : "no",
         sym.cleanup ? "yes" : "no", sym.collect_ctx ? "yes" : "no",
         sym.cleanup_ctx ? "yes" : "no", sym.pre_run ? "yes" : "no",
         sym.pause ? "yes" : "no", sym.resume ? "yes" : "no",
         sym.pre_exit ? "yes" : "no", sym.exit ? "yes" : "no",
         sym.unregister ? "yes" : "no");
    if (o_no_cleanup) {
        hlog(L_INFO, "[flbhost] --no-cleanup: buffers are released with free()");
    }

    g_def = xcalloc(1, sizeof(*g_def));
    {
        int registered = 0;
        rc = 0;
        if (sym.pre_register) {
            rc = sym.pre_register(0);
            if (rc == -1) {
                hlog(L_ERROR, "[plugin] FLBPluginPreRegister returned -1: "
                     "input plugin not registered");
            }
        }
        if (rc != -1) {
            if (!sym.reg) {
                hlog(L_ERROR, "[plugin] no FLBPluginRegister symbol in %s", o_plugin);
            }
            else if ((rc = sym.reg(g_def)) == -1) {
                hlog(L_ERROR, "[plugin] FLBPluginRegister returned -1: input "
                     "plugin not registered");
            }
            else if (g_def->proxy != FLB_PROXY_GOLANG ||
                     g_def->type != FLB_PROXY_INPUT_PLUGIN || !g_def->name) {
                hlog(L_ERROR, "[plugin] registration gave proxy=%d type=%d name=%s"
                     " (want proxy=%d type=%d): input plugin not registered",
                     g_def->proxy, g_def->type, g_def->name ? g_def->name : "(null)",
                     FLB_PROXY_GOLANG, FLB_PROXY_INPUT_PLUGIN);
                registered = -1; /* Register ran: Unregister frees its strings */
            }
            else if (!sym.init) {
                hlog(L_ERROR, "[go proxy]: could not load FLBPluginInit symbol");
                registered = -1;
            }
            else if (!sym.collect) {
                hlog(L_ERROR, "[go proxy]: could not load FLBPluginInputCallback symbol");
                registered = -1;
            }
            else {
                registered = 1;
                hlog(L_INFO, "[flbhost] registered input plugin '%s' (%s)",
                     g_def->name, g_def->description ? g_def->description : "");
            }
        }
        for (i = 0; registered == 1 && i < g_nins; i++) {
            if (strcasecmp(g_ins[i]->plugin_name, g_def->name) != 0) {
                hlog(L_ERROR, "[config] section '%s' tried to instance a plugin "
                     "name that doesn't exist", g_ins[i]->plugin_name);
                registered = -1;
            }
        }
        if (registered != 1) {
            if (registered == -1) {
                unregister();
            }
            else if (g_nins > 0) {
                hlog(L_ERROR, "[config] section '%s' tried to instance a plugin "
                     "name that doesn't exist", g_ins[0]->plugin_name);
            }
            free_all();
            return 1;
        }
    }
    g_plugin = xcalloc(1, sizeof(*g_plugin));
    g_plugin->name = xstrdup(g_def->name);
    if (o_abi40) {
        struct flbgo_input_plugin_v40 *p = (struct flbgo_input_plugin_v40 *) g_plugin;
        p->cb_init = (void *) sym.init;
        p->cb_collect = (void *) sym.collect;
        p->cb_cleanup = (void *) sym.cleanup;
        p->cb_exit = (void *) sym.exit;
    }
    else {
        g_plugin->cb_init = (void *) sym.init;
        g_plugin->cb_collect = (void *) sym.collect;
        g_plugin->cb_collect_ctx = (void *) sym.collect_ctx;
        g_plugin->cb_cleanup = (void *) sym.cleanup;
        g_plugin->cb_cleanup_ctx = (void *) sym.cleanup_ctx;
        g_plugin->cb_exit = (void *) sym.exit;
    }

    /* ---- init each instance on its own thread, one after the other ---- */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);

    for (i = 0; i < g_nins && !init_failed; i++) {
        struct flb_input_instance *in = g_ins[i];
        int64_t term_at = 0;

        /* input threads never take our signals: the main thread (or a Go
         * thread) runs the handler */
        pthread_sigmask(SIG_BLOCK, &block, &old);
        rc = pthread_create(&in->tid, NULL, input_thread, in);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            hlog(L_ERROR, "[flbhost] pthread_create: %s", strerror(rc));
            init_failed = 1;
            break;
        }
        in->thread_created = 1;
        for (;;) {
            int done;
            pthread_mutex_lock(&g_mu);
            done = in->init_done;
            pthread_mutex_unlock(&g_mu);
            if (done) {
                break;
            }
            if (atomic_load(&g_term_flag) && !term_at) {
                term_at = now_ns();
                hlog(L_WARN, "[flbhost] %s received while FLBPluginInit is "
                     "running: waiting up to the grace period for it",
                     signame(atomic_load(&g_term_sig)));
            }
            if (term_at && now_ns() - term_at > o_grace_ns) {
                hlog(L_ERROR, "[input:%s:%s] FLBPluginInit did not return within "
                     "the grace period after a shutdown request: exiting",
                     in->plugin_name, in->name);
                _exit(1);
            }
            main_wait(0);
        }
        if (in->init_rc <= 0) {
            hlog(L_ERROR, "[go proxy]: plugin '%s' failed to initialize",
                 g_plugin->name);
            hlog(L_ERROR, "[input:%s:%s] initialization failed",
                 in->plugin_name, in->name);
            init_failed = 1;
        }
        else {
            hlog(L_INFO, "[input:%s:%s] initialized (FLBPluginInit returned %d)",
                 in->plugin_name, in->name, in->init_rc);
        }
    }

    if (init_failed) {
        /* Fluent Bit does not call FLBPluginExit in this case */
        pthread_mutex_lock(&g_mu);
        g_abort = 1;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
        join_all();
        unregister();
        log_always("[flbhost] initialization failed: exiting with code 1");
        free_all();
        return 1;
    }

    /* ---- start collectors: PreRun on each input thread ---- */
    pthread_mutex_lock(&g_mu);
    g_started = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    while (!all_done('I')) {
        main_wait(0);
    }
    hlog(L_INFO, "[flbhost] %d input instance(s) running: interval=%.3fs grace=%.3fs "
         "ingest=%s%s", g_nins, (double) o_interval_ns / 1e9,
         (double) o_grace_ns / 1e9, o_ingest ? o_ingest : "(none)",
         o_no_cleanup ? " no-cleanup" : "");
    g_next_rb_ns = now_ns() + o_rb_ns;
    g_next_flush_ns = now_ns() + o_flush_ns;
    log_always("[flbhost] ready");

    /* ---- run until SIGTERM/SIGINT ---- */
    while (!atomic_load(&g_term_flag)) {
        main_wait(0);
    }

    /* ---- shutdown, like src/flb_engine.c ---- */
    {
        /* the first shutdown timer tick, 1 s after the signal: Fluent Bit
         * then stops unless output tasks or chunks are pending (flbhost's
         * outputs are instant: memory chunks are flushed at the tick) */
        int64_t tick = atomic_load(&g_shutdown_ns) + 1000000000LL;
        hlog(L_INFO, "[flbhost] caught signal (%s): pausing all inputs, "
             "shutdown tick in 1s", signame(atomic_load(&g_term_sig)));
        start_shutdown();
        while (now_ns() < tick) {
            main_wait(tick);
        }
        flush_memory_chunks();
        hlog(L_INFO, "[flbhost] shutdown tick: stopping inputs");
        /* flb_engine_shutdown: pause all again, then flb_input_exit_all */
        pthread_mutex_lock(&g_mu);
        g_exit_phase = 1;
        pthread_mutex_unlock(&g_mu);
        request(REQ_SD_PAUSE);
        request(REQ_EXIT);
        /* no timeout, like Fluent Bit: a slow FLBPluginExit holds up exit */
        while (!all_done('F')) {
            main_wait(0);
        }
        join_all();
        ring_discard();
        hlog(L_INFO, "[flbhost] all inputs stopped");
        unregister();
        print_summary();
        free_all();
    }
    /* The Go runtime cannot be unloaded: no dlclose(). The self-pipe stays
     * open: a late signal may still run the handler on a Go thread. */
    return 0;
}
